"""The daemon end to end: files dropped into the landing zone become golden records, change
events and deliveries with nobody clicking (landing_sensor -> ingest_job ->
reconsolidation_sensor -> reconsolidate_job -> syndication_sensor -> syndicate_job)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import stop_process_group

pytestmark = pytest.mark.slow

#: Queued runs, dequeued every second; one hub writer at a time (the hub_writer pool).
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  pools:
    default_limit: 1
"""


def _count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    except sa.exc.OperationalError:
        return 0  # the hub does not exist yet, or a table is not there yet
    finally:
        engine.dispose()


def _wait(what: str, condition, timeout: float, log: Path) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{tail}")


def _drop(src: Path, landing: Path, folder: str) -> None:
    """Write elsewhere, then rename into the landing zone (what a well-behaved silo does)."""
    target = landing / folder / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def test_dropped_files_become_change_events_and_deliveries(tmp_path, sample_silos):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    sources = yaml.safe_load((config / "sources.yaml").read_text())
    sources["ingest"]["settle_seconds"] = 1
    (config / "sources.yaml").write_text(yaml.safe_dump(sources))
    out = tmp_path / "out"
    (config / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {"subscribers": {"files": {"transport": "file", "file": {"folder": str(out)}}}}
        )
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    hub = f"sqlite:///{tmp_path / 'hub.db'}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MDM_HOME": str(tmp_path / "mdm"),
        "MDM_LANDING_DIR": str(landing),
        "MDM_CONFIG_DIR": str(config),
        "MDM_HUB_URL": hub,
    }
    log = tmp_path / "daemon.log"
    daemon = Path(sys.executable).parent / "dagster-daemon"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(daemon), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        files = {
            p.parent.name: sorted((sample_silos / "landing" / p.parent.name).iterdir())
            for p in (sample_silos / "landing").rglob("*")
            if p.is_file()
        }
        _drop(files["crm"][0], landing, "crm")
        latency = _wait(
            "the first change events",
            lambda: _count(hub, "SELECT count(*) FROM golden_changes") > 0,
            240,
            log,
        )
        print(f"file drop -> change events: {latency:.1f} s")

        # Two silos drop at once: their runs queue behind one writer; neither is lost.
        _drop(files["loyalty"][0], landing, "loyalty")
        _drop(files["ecommerce"][0], landing, "ecommerce")

        def absorbed() -> bool:
            return (
                _count(
                    hub,
                    "SELECT count(*) FROM extracts WHERE status = 'loaded' "
                    "AND cleansed_at IS NOT NULL",
                )
                == 3
                and _count(hub, "SELECT count(*) FROM consolidation_queue") == 0
                and _count(hub, "SELECT count(*) FROM golden_xref")
                == _count(hub, "SELECT count(*) FROM match_clusters")
                > 0
                and _count(
                    hub,
                    "SELECT count(*) FROM match_runs WHERE cleansed_upto >= "
                    "(SELECT max(cleansed_at) FROM extracts)",
                )
                > 0
            )

        _wait("both overlapping drops to be absorbed", absorbed, 300, log)
        sources_seen = {
            s
            for (s,) in sa.create_engine(hub)
            .connect()
            .execute(sa.text("SELECT DISTINCT source FROM golden_xref"))
        }
        assert sources_seen == {"crm", "loyalty", "ecommerce"}
        # The syndication sensor delivers the change events to the subscriber.
        events = _count(hub, "SELECT count(*) FROM golden_changes")
        _wait(
            "the subscriber to catch up",
            lambda: (
                _count(hub, "SELECT cursor_seq FROM subscriber_state")
                >= _count(hub, "SELECT max(seq) FROM golden_changes")
            ),
            240,
            log,
        )
        delivered = sum(len(p.read_text().splitlines()) for p in out.iterdir())
        assert (
            delivered >= _count(hub, "SELECT count(*) FROM golden_records WHERE status = 'active'")
            and events > 0
        )

        def runs() -> list:
            return json.loads(
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import dagster as dg, json; i = dg.DagsterInstance.get(); "
                        "print(json.dumps([(r.job_name, r.status.value) for r in i.get_runs()]))",
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )

        # Later sensor ticks may still start a (no-op) reconsolidation: let the queue drain.
        _wait(
            "every run to finish",
            lambda: all(s in ("SUCCESS", "FAILURE", "CANCELED") for _j, s in runs()),
            240,
            log,
        )
        runs = runs()
        jobs = [j for j, _s in runs]
        assert jobs.count("ingest_job") == 3 and "reconsolidate_job" in jobs
        assert all(status == "SUCCESS" for _j, status in runs), runs
    finally:
        stop_process_group(proc)
