"""RELIABILITY row 17: landed files do not keep an erased person for ever.

With ``ingest.archive`` on, an ingested file leaves the landing zone for the archive (0700
folders, 0600 files, named by content), expired archives are deleted, and an erasure rewrites
the archived files (and the files still in landing) that carry the person, recorded in the
erasure ledger by path hash. Real landing folders, real sensor ticks and asset runs, the
``mdm erase`` command, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.assets.ingestion import source_extracts
from mdm_orchestration.cleansing import cleanse_pending
from mdm_orchestration.cli import main
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import archive_root
from mdm_orchestration.matching import rebuild_clusters, train_models
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.sensors import landing_sensor
from mdm_orchestration.survivorship import consolidate
from mdm_orchestration.syndication import erasure_ledger_path
from mdm_orchestration.syndication.erasure import read_file_entries
from tests.conftest import CONFIG_DIR
from tests.helpers import write_file

BILLING_HEADER = (
    "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
)
LOYALTY_HEADER = (
    "member_no,given_name,surname,birthday,email_address,mobile,street_address,"
    "town,state,postcode,last_update,consent_marketing\n"
)
OTHER_BILLING = (
    "O1;Other, Olga;9 Elm Rd;;Shelbyville;IL;62565;217-555-0111;olga@example.org;"
    "1975-05-06;;2026-01-01 00:00:00\n"
)
OTHER_LOYALTY = "LOTHER,Amy,Otherperson,,amy@example.org,,,,,,01/01/2026 10:00,N\n"


@pytest.fixture(params=["sqlite", "postgres"])
def hub_url(request, sqlite_url) -> str:
    if request.param == "sqlite":
        return sqlite_url
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped configuration with the archive on (default folder, 30 days) and no settle
    time (every file the sensor sees is complete)."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    body = yaml.safe_load((folder / "sources.yaml").read_text())
    body["ingest"]["settle_seconds"] = 0
    body["ingest"]["archive"] = {"enabled": True, "retention_days": 30}
    (folder / "sources.yaml").write_text(yaml.safe_dump(body))
    return folder


def tick(instance, resources, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def tick_and_run(instance, resources, cursor: str | None) -> tuple[str | None, int]:
    """One sensor tick and the runs it requested (each must succeed): (cursor, runs)."""
    result = tick(instance, resources, cursor)
    for request in result.run_requests or []:
        assert dg.materialize(
            [source_extracts],
            partition_key=request.partition_key,
            instance=instance,
            resources=resources,
        ).success
    return result.cursor, len(result.run_requests or [])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def holding(root: Path, needles: list[str]) -> list[str]:
    """Files under ``root`` (any name, dotfiles too) whose bytes hold any of ``needles``."""
    return [
        str(p.relative_to(root))
        for p in files_under(root)
        if any(n.encode() in p.read_bytes() for n in needles)
    ]


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def test_archived_and_landed_files_lose_an_erased_person(
    tmp_path, landing, hub_url, config_dir, monkeypatch
):
    tag = uuid.uuid4().hex[:8]
    name, email = f"Canaryname{tag}", f"zz-canary-{tag}@example.invalid"
    canaries = [name, email, "Canarystreet"]
    billing_row = (
        f"C{tag};Zed {name};1 Canarystreet Rd;;Springfield;IL;62701;217-555-0199;{email};"
        "1980-02-03;;2026-01-01 00:00:00\n"
    )
    loyalty_row = (
        f"LC{tag},Zed,{name},03/02/1980,{email},217-555-0199,1 Canarystreet Rd,"
        "Springfield,IL,62701,01/01/2026 10:00,Y\n"
    )
    # The silos' original extracts, kept aside (as a silo would) for the re-drops below.
    originals = tmp_path / "silo_exports"
    old_billing = write_file(originals / "b1.csv", BILLING_HEADER + billing_row + OTHER_BILLING)
    old_loyalty = write_file(originals / "l1.csv", LOYALTY_HEADER + loyalty_row + OTHER_LOYALTY)
    shutil.copy(old_billing, landing / "billing" / "b1.csv")
    shutil.copy(old_loyalty, landing / "loyalty" / "l1.csv")
    config = load_hub_config(config_dir)
    resources = {
        "hub": HubDatabase(url=hub_url),
        "landing": LandingZone(root=str(landing), config_dir=str(config_dir)),
    }
    archive = archive_root(config)
    assert archive == (Path(os.environ["MDM_HOME"]) / "archive").resolve()
    engine = create_hub_engine(hub_url)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        # Ingest: each file loaded once, then out of the landing zone into the archive.
        cursor, runs = tick_and_run(instance, resources, None)
        assert runs == 2
        assert files_under(landing) == []
        archived = files_under(archive)
        assert [p.relative_to(archive).parts[0] for p in archived] == ["billing", "loyalty"]
        assert all(p.stem not in ("b1", "l1") and len(p.stem) == 64 for p in archived)
        for folder in (archive, archive / "billing", archive / "loyalty"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in archived)
        assert len(holding(archive, canaries)) == 2
        # Nothing is ingested twice: the archive is never scanned, a copy put back is a
        # duplicate of bytes the ledger knows (no run), and it leaves the landing zone again.
        cursor, runs = tick_and_run(instance, resources, cursor)
        assert runs == 0
        shutil.copy(archived[0], landing / "billing" / "put_back.csv")
        cursor, runs = tick_and_run(instance, resources, cursor)
        assert runs == 0 and files_under(landing) == []
        assert rows(engine, "SELECT count(*) FROM extracts") == [(2,)]

        # The person becomes one golden record of both sources.
        cleanse_pending(engine, config)
        train_models(engine)
        rebuild_clusters(engine, config)
        consolidate(engine, config, "canary")
        (golden,) = {
            g
            for (g,) in rows(
                engine,
                "SELECT golden_id FROM golden_xref WHERE source_key IN (:a, :b)",
                a=f"C{tag}",
                b=f"LC{tag}",
            )
        }
        # A later extract with the person is still in the landing zone (not ingested yet).
        pending = write_file(
            landing / "billing" / "b2.csv",
            BILLING_HEADER + OTHER_BILLING.replace("O1;", "O2;") + billing_row,
        )
        manifest = write_file(pending.with_name("b2.csv.manifest"), f"{sha256(pending)}  b2.csv\n")

        # `mdm erase`, as an operator runs it (the landing zone and configuration from the
        # environment).
        monkeypatch.setenv("MDM_LANDING_DIR", str(landing))
        monkeypatch.setenv("MDM_CONFIG_DIR", str(config_dir))
        assert main(["erase", "--golden", golden, "--hub", hub_url]) == 0

        # No trace in the archive or the landing zone; the others' rows are still there.
        assert holding(archive, canaries) == []
        assert holding(landing, canaries) == []
        assert len(holding(archive, ["Olga"])) == 1 and len(holding(archive, ["Amy"])) == 1
        assert holding(landing, ["Olga"]) == ["billing/b2.csv"]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files_under(archive))
        assert not [p for p in files_under(archive) if p.name.startswith(".")]  # no temporaries
        assert (archive / "billing" / archived[0].name).read_text().startswith(BILLING_HEADER)
        # The landed file's manifest vouched for the old bytes: it now vouches for the new.
        assert json.loads(manifest.read_text()) == {"sha256": sha256(pending)}
        # Recorded in the erasure ledger, by path hash: no name, no value.
        ledger = erasure_ledger_path()
        (entry,) = read_file_entries(ledger)
        scrubbed = sorted((f["where"], f["action"], f["rows_removed"]) for f in entry["files"])
        assert scrubbed == [
            ("archive", "rewritten", 1),
            ("archive", "rewritten", 1),
            ("landing", "rewritten", 1),
        ]
        assert all(len(f["path_sha256"]) == 64 for f in entry["files"])
        text = ledger.read_text()
        names = ["b1.csv", "l1.csv", "b2.csv", *(p.name for p in archived)]
        assert not [n for n in [*names, *canaries, f"C{tag}"] if n in text]

        # Re-drops of the old extracts: the same bytes are a duplicate (no run) and leave the
        # landing zone; a re-export with new bytes is ingested without the person (quarantined
        # as erased_subject) and archived without them.
        shutil.copy(old_billing, landing / "billing" / "again.csv")
        write_file(
            landing / "loyalty" / "reexport.csv",
            old_loyalty.read_text()
            + "LNEW,Nia,Newperson,,nia@example.org,,,,,,02/01/2026 10:00,N\n",
        )
        cursor, runs = tick_and_run(instance, resources, cursor)
        assert runs == 2  # the re-export and b2.csv (scrubbed before it was ever ingested)
        assert files_under(landing) == []
        assert holding(archive, canaries) == []
        assert holding(dagster_home, canaries) == []
        reasons = rows(
            engine,
            "SELECT q.reason FROM quarantine q JOIN extracts e ON e.id = q.extract_id "
            "WHERE e.file_name = 'loyalty/reexport.csv'",
        )
        assert reasons == [("erased_subject",)]
        assert rows(
            engine,
            "SELECT count(*) FROM source_records WHERE source_key IN (:a, :b)",
            a=f"C{tag}",
            b=f"LC{tag}",
        ) == [(0,)]
        assert rows(engine, "SELECT count(*) FROM source_records WHERE source_key = 'LNEW'") == [
            (1,)
        ]

        # Retention: archived files past it are deleted by the sensor's next tick.
        kept = files_under(archive)
        assert len(kept) == 4  # b1, l1, reexport, b2
        old = time.time() - 31 * 86400
        for p in kept[:2]:
            os.utime(p, (old, old))
        result = tick(instance, resources, cursor)
        assert "2 archived file(s) past retention deleted" in result.skip_reason.skip_message
        assert files_under(archive) == kept[2:]

    # Nothing of the person in any hub table either.
    dump = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            dump += [str(r) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    assert not [c for c in canaries if c in "\n".join(dump)]
    engine.dispose()


def test_a_restored_archive_loses_the_person_again_at_erasure_replay(
    tmp_path, landing, sqlite_url, config_dir, monkeypatch
):
    """Row 18's companion: an archive restored from a backup taken before the erasure holds the
    person again; `mdm erasure replay` scrubs it again (and records it by path hash)."""
    from mdm_orchestration.ingestion import archive_landed, ingest_file

    tag = uuid.uuid4().hex[:8]
    canaries = [f"Canaryname{tag}", f"zz-canary-{tag}@example.invalid"]
    config = load_hub_config(config_dir)
    engine = create_hub_engine(sqlite_url)
    path = write_file(
        landing / "billing" / "b1.csv",
        BILLING_HEADER
        + f"C{tag};Zed {canaries[0]};1 Canarystreet Rd;;Springfield;IL;62701;;{canaries[1]};"
        "1980-02-03;;2026-01-01 00:00:00\n" + OTHER_BILLING,
    )
    outcome = ingest_file(engine, config, path, landing)
    assert archive_landed(engine, config, path, landing, outcome.content_hash)
    archive = archive_root(config)
    backup = tmp_path / "archive_backup"
    shutil.copytree(archive, backup)

    # The files are found through the flags (no MDM_LANDING_DIR / MDM_CONFIG_DIR set).
    monkeypatch.delenv("MDM_LANDING_DIR", raising=False)
    monkeypatch.delenv("MDM_CONFIG_DIR", raising=False)
    files = ["--config", str(config_dir), "--landing", str(landing)]
    erase = ["erase", "--source", "billing", "--key", f"C{tag}", "--hub", sqlite_url]
    assert main([*erase, *files]) == 0
    assert holding(archive, canaries) == []
    shutil.rmtree(archive)
    shutil.copytree(backup, archive)  # the archive restored from before the erasure
    assert len(holding(archive, canaries)) == 1

    assert main(["erasure", "replay", "--hub", sqlite_url, *files]) == 0
    assert holding(archive, canaries) == []
    assert len(holding(archive, ["Olga"])) == 1
    *_, replayed = read_file_entries(erasure_ledger_path())
    assert replayed["of"] is None
    assert [(f["where"], f["action"]) for f in replayed["files"]] == [("archive", "rewritten")]
    # Replayed again: nothing left to scrub, nothing more recorded.
    before = len(read_file_entries(erasure_ledger_path()))
    assert main(["erasure", "replay", "--hub", sqlite_url, *files]) == 0
    assert len(read_file_entries(erasure_ledger_path())) == before
    engine.dispose()
