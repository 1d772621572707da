"""RELIABILITY row 18 (issue 17, defect 5): a backup from before an erasure is restored; the
erasure ledger kept outside the hub database lets ``mdm erasure replay`` redo the erasure
whole: no trace of the person in golden records, history or cleansed records, the golden
record retired as erased, and an erased event for the subscribers that received them."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.cli import main
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.settings import settings
from mdm_orchestration.syndication import erasure_ledger_path, read_ledger, syndicate
from tests.conftest import CONFIG_DIR
from tests.helpers import build_mastered_hub, check_invariants


@pytest.fixture(scope="module")
def mastered(tmp_path_factory, sample_silos) -> Path:
    root = tmp_path_factory.mktemp("mastered_erasure")
    build_mastered_hub(root, sample_silos)
    return root


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def table_text(engine, *tables: str) -> str:
    out = []
    with engine.connect() as conn:
        for table in tables:
            out += [str(r) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    return "\n".join(out)


def settle(engine) -> None:
    """Everything in the main SQLite file, so copying it is a whole backup."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def restore(backup: Path, db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    shutil.copy(backup, db)


def test_a_restored_backup_loses_the_person_again_after_erasure_replay(tmp_path, mastered, capsys):
    db = tmp_path / "hub.db"
    shutil.copy(mastered / "hub.db", db)
    url = f"sqlite:///{db}"
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    out = tmp_path / "out"
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {"subscribers": {"files": {"transport": "file", "file": {"folder": str(out)}}}}
        ),
        encoding="utf-8",
    )
    config = load_hub_config(config_dir)
    engine = create_hub_engine(url)

    # A person with two source records, and what identifies them.
    golden, attributes = next(
        (g, json.loads(a) if isinstance(a, str) else a)
        for g, a in rows(
            engine,
            "SELECT golden_id, attributes FROM golden_records WHERE status = 'active' "
            "AND party_type = 'person' AND member_count >= 2 ORDER BY golden_id",
        )
        if (json.loads(a) if isinstance(a, str) else a).get("email")
    )
    traces = [attributes["email"], attributes["family_name"]]
    assert all(traces)
    assert all(t in table_text(engine, "golden_records", "golden_history") for t in traces)
    assert attributes["email"] in table_text(engine, "cleansed_records")
    assert syndicate(engine, config, "files", home=tmp_path).snapshot > 0  # the subscriber has it
    settle(engine)
    backup = tmp_path / "backup.db"
    shutil.copy(db, backup)

    assert main(["erase", "--golden", golden, "--hub", url]) == 0
    ledger = erasure_ledger_path()
    assert ledger.parent == settings().home
    (entry,) = read_ledger(ledger)
    assert entry["target"] == golden and len(entry["record_ids"]) >= 2
    text = ledger.read_text(encoding="utf-8")
    assert not [t for t in traces if t in text]  # hashed ids only, never values
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600

    # The backup from before the erasure is restored: the person is back, tombstone and all gone.
    restore(backup, db)
    engine = create_hub_engine(url)
    assert rows(engine, "SELECT status FROM golden_records WHERE golden_id = :g", g=golden) == [
        ("active",)
    ]
    assert rows(engine, "SELECT count(*) FROM erased_records") == [(0,)]
    settle(engine)

    capsys.readouterr()
    assert main(["erasure", "replay", "--hub", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["entries"] == 1 and report["redone"] == 1
    assert report["records"] >= 2 and report["golden_records"] == 1 and report["events"] == 1

    engine = create_hub_engine(url)
    dump = table_text(engine, "golden_records", "golden_history", "cleansed_records")
    assert not [t for t in traces if t in dump]
    assert rows(
        engine, "SELECT status, member_count FROM golden_records WHERE golden_id = :g", g=golden
    ) == [("erased", 0)]
    assert rows(
        engine,
        "SELECT count(*) FROM source_records WHERE id IN ({})".format(
            ",".join(f"'{r}'" for r in entry["record_ids"])
        ),
    ) == [(0,)]
    assert rows(
        engine,
        "SELECT count(*) FROM golden_changes WHERE golden_id = :g AND event_type = 'erased'",
        g=golden,
    ) == [(1,)]
    assert rows(engine, "SELECT count(*) FROM erased_records") == [(len(entry["record_ids"]),)]
    check_invariants(engine)

    # The subscriber that had the person is told.
    syndicate(engine, config, "files", home=tmp_path)
    told = [
        json.loads(line)
        for path in sorted(out.iterdir())
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    kinds = [m["event_type"] for m in told if m["golden_id"] == golden]
    assert "snapshot" in kinds and "erased" in kinds
    engine.dispose()

    # A second replay finds nothing lacking.
    capsys.readouterr()
    assert main(["erasure", "replay", "--hub", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["redone"] == 0


def test_replay_without_a_ledger_says_so(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    assert main(["erasure", "replay", "--hub", url, "--ledger", str(tmp_path / "none.jsonl")]) == 2
    assert "no erasure ledger" in capsys.readouterr().err
