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
