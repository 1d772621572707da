"""The `mdm` command end to end: generate, run through the Dagster job, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from mdm_orchestration.cli import main
from tests.conftest import CONFIG_DIR


def test_generate_run_status(tmp_path, monkeypatch, capsys):
    hub = f"sqlite:///{tmp_path / 'hub.db'}"
    # Set (and so restore afterwards) every variable the CLI exports for the code location.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("MDM_HUB_URL", hub)
    monkeypatch.setenv("MDM_LANDING_DIR", str(tmp_path / "out/landing"))
    monkeypatch.setenv("MDM_CONFIG_DIR", str(CONFIG_DIR))

    assert main(["generate", "--out", str(tmp_path / "out"), "--people", "300", "--seed", "4"]) == 0
    assert (tmp_path / "out/truth.csv").exists()
    # Three extracts, one per format, keep the run count (and the suite's time) small.
    keep = {"crm_export_2026-01-05.csv", "KNA1_20260105.parquet", "signups_2026-01-05.jsonl"}
    for path in list((tmp_path / "out/landing").rglob("*.*")):
        if path.name not in keep:
            path.unlink()
    assert (
        main(
            [
                "run",
                "--landing",
                str(tmp_path / "out/landing"),
                "--hub",
                hub,
                "--config",
                str(CONFIG_DIR),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["status", "--hub", hub, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    for key in (
        "extracts",
        "rejected_extracts",
        "rows_landed",
        "rows_loaded",
        "quarantined_rows",
        "source_records",
        "cleansed_records",
        "golden_records",
        "pending_events",
    ):
        assert key in status
    assert status["extracts"] == 3 and status["rejected_extracts"] == 0
    assert status["rows_loaded"] + status["quarantined_rows"] == status["rows_landed"]
    assert status["rows_landed"] > 200
    assert status["cleansed_records"] + status["cleanse_quarantined_rows"] == status["rows_loaded"]
    assert status["clustered_records"] == status["source_records"] and status["clusters"] > 0
    assert set(status["per_source"]) == {"crm", "ecommerce", "erp"}
    assert status["xref_records"] == status["clustered_records"]
    assert 0 < status["golden_records"] <= status["clusters"]
    assert status["golden_changes"] == status["golden_records"]
    assert status["pending_events"] == {"warehouse": 0, "marketing": 0}

    # The runs went through Dagster and are in its instance (what `dg dev` shows), and they are
    # the daemon's runs: an ingest per file, one reconsolidation, a syndication per subscriber.
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["ingest_job"] * 3 + [
            "reconsolidate_job",
            "syndicate_job",
            "syndicate_job",
        ]
        assert len(instance.get_dynamic_partitions("landed_files")) == 3

    # Running again is idempotent: nothing new, no new runs.
    assert main(["run", "--landing", str(tmp_path / "out/landing"), "--hub", hub]) == 0
    capsys.readouterr()
    assert main(["status", "--hub", hub, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_loaded"] == status["rows_loaded"]
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 6


def test_console_script_reports_status_of_an_empty_hub(tmp_path):
    mdm = Path(sys.executable).parent / "mdm"
    env = {**os.environ, "MDM_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(mdm), "status", "--json"], env=env, capture_output=True, text=True, check=True
    )
    status = json.loads(out.stdout)
    assert status["extracts"] == 0 and status["rows_landed"] == 0
    assert (tmp_path / "hub.db").exists()


def test_bad_configuration_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "sources.yaml").write_text("sources:\n  shop:\n    format: xml\n")
    code = main(
        [
            "run",
            "--landing",
            str(tmp_path),
            "--config",
            str(tmp_path),
            "--hub",
            f"sqlite:///{tmp_path}/h.db",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "sources.yaml: source 'shop': field 'format'" in err


def test_version_help_and_exit_codes(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("mdm ")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "--json" in out and "--hub HUB" in out


def test_init_writes_an_editable_config_folder(tmp_path, capsys):
    from mdm_orchestration.config import load_hub_config

    folder = tmp_path / "cfg"
    assert main(["init", str(folder), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["files"]
    assert (folder / "sources.yaml").exists() and str(folder / "sources.yaml") in written
    assert load_hub_config(folder).sources
    assert main(["init", str(folder)]) == 2  # never overwrites


def test_the_cli_passes_values_and_leaves_the_environment_alone(tmp_path, capsys):
    before = dict(os.environ)
    hub = f"sqlite:///{tmp_path / 'h.db'}"
    (tmp_path / "landing").mkdir()
    args = ["--hub", hub, "--config", str(CONFIG_DIR), "--json"]
    assert main(["run", "--landing", str(tmp_path / "landing"), *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run"]["files"] == 0 and report["status"]["extracts"] == 0
    assert dict(os.environ) == before
    assert (tmp_path / "h.db").exists()


def _steward_hub(tmp_path, sample_silos, hub_config):
    """A SQLite hub of the sample silos, cleansed, with small real models and a rebuilt
    clustering (so a review queue): what `mdm review` reads."""
    import sqlalchemy as sa

    from mdm_orchestration.cleansing.runner import cleanse_pending
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.hub.tables import MODELS, utcnow
    from mdm_orchestration.matching import load_default_labels, rebuild_clusters
    from mdm_orchestration.matching.model import settings_digest, train_model
    from tests.helpers import copy_landing, ingest_all

    url = f"sqlite:///{tmp_path / 'steward.db'}"
    engine = create_hub_engine(url)
    ingest_all(engine, hub_config, copy_landing(sample_silos, tmp_path / "landing"))
    cleanse_pending(engine, hub_config)
    labels = load_default_labels()
    with engine.begin() as conn:
        for party, s in labels.items():
            model = train_model(
                party, [tuple(p) for p in s["match"][:60]], [tuple(p) for p in s["distinct"][:60]]
            )
            settings = model.to_bytes()
            conn.execute(
                sa.insert(MODELS).values(
                    party_type=party,
                    labels_digest="test",
                    threshold=model.threshold,
                    settings=settings,
                    settings_sha256=settings_digest(settings),
                    metrics=model.metrics,
                    created_at=utcnow(),
                )
            )
    rebuild_clusters(engine, hub_config)
    return url, engine


def _pending(engine) -> list[tuple]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT left_record_id, right_record_id, records_digest FROM review_queue "
                "WHERE status = 'pending'"
            )
        ).all()


def test_review_explains_each_pair_and_a_decided_pair_returns_only_when_a_record_changes(
    tmp_path, sample_silos, hub_config, monkeypatch, capsys
):
    import argparse
    import io

    import sqlalchemy as sa

    from mdm_orchestration.cli_steward import cmd_review
    from mdm_orchestration.matching import max_pending, pending_review, rebuild_clusters

    url, engine = _steward_hub(tmp_path, sample_silos, hub_config)
    try:
        with engine.connect() as conn:
            records = conn.execute(sa.text("SELECT count(*) FROM source_records")).scalar_one()
            first = pending_review(conn, 1)[0]
        pending = _pending(engine)
        assert 0 < len(pending) <= max_pending(records)  # at most 1% of the records
        assert all(d is not None and len(d) == 64 for _a, _b, d in pending)

        # --json: the pending items with their explanations, nothing asked
        capsys.readouterr()
        assert cmd_review(argparse.Namespace(hub=url, limit=3, json=True)) == 0
        listed = json.loads(capsys.readouterr().out)["items"]
        assert listed and listed[0]["left_record_id"] == first.left_record_id
        explanation = listed[0]["explanation"]
        assert explanation["party_type"] == first.party_type
        states = {f["field"]: f["state"] for f in explanation["fields"]}
        assert states and set(states.values()) <= {"agree", "near", "disagree", "missing"}
        total = explanation["intercept"] + sum(f["contribution"] for f in explanation["fields"])
        assert abs(explanation["log_odds"] - total) < 1e-4

        # the steward sees why, field by field, and decides the first item
        monkeypatch.setattr("sys.stdin", io.StringIO("m\nq\n"))
        assert main(["review", "--limit", "2", "--hub", url]) == 0
        out = capsys.readouterr().out
        assert "match probability" in out and "why: score" in out and "(intercept)" in out
        for field in states:
            assert field in out
        assert "1 pair(s) labelled" in out
        pair = (first.left_record_id, first.right_record_id)

        # a full rematch does not offer it again: its records did not change
        rebuild_clusters(engine, hub_config)
        assert pair not in {(a, b) for a, b, _d in _pending(engine)}
        with engine.connect() as conn:
            status = conn.execute(
                sa.text(
                    "SELECT status FROM review_queue WHERE left_record_id = :a "
                    "AND right_record_id = :b"
                ),
                {"a": pair[0], "b": pair[1]},
            ).scalar_one()
        assert status == "done"

        # one of its records changes (its current version has new contents): it comes back
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE source_record_versions SET raw_hash = 'changed' WHERE "
                    "(extract_id, row_number) = (SELECT current_extract_id, current_row_number "
                    "FROM source_records WHERE id = :r)"
                ),
                {"r": pair[0]},
            )
        rebuild_clusters(engine, hub_config)
        again = {(a, b): d for a, b, d in _pending(engine)}
        assert pair in again
        assert len(again) <= max_pending(records)
    finally:
        engine.dispose()
