"""RELIABILITY.md row 2: the sensor daemon killed mid-tick asks at most one run per extract, and
the extract is still ingested.

Dagster's own pattern (``dagster_tests/daemon_sensor_tests/test_sensor_failure_recovery.py``):
one iteration of the sensor daemon (``execute_sensor_iteration``, what ``dagster-daemon``'s
sensor loop calls every few seconds) runs in a child process with ``debug_crash_flags``, which
SIGKILL it at the named point of the tick:

- ``TICK_CREATED``: the tick is stored (STARTED), the sensor not yet evaluated;
- ``RUN_CREATED``: the sensor asked for the run, the run is stored, not yet launched;
- ``RUN_LAUNCHED``: the run was launched (here it has already ingested the file: the instance's
  run launcher runs it synchronously), the tick not marked done.

Then the daemon iterates again, as a restarted ``dagster-daemon`` would, and runs the ingest run
if that is still to do: one run for the ``run_key`` (``source:sha256``), one ledger row, the
extract's rows in the hub; a further tick asks nothing more. On SQLite (hub and Dagster storage)
and on the local PostgreSQL (both, in databases of the test's own).

The daemon's sensor iteration and its crash flags have no public API: they are imported from
``dagster._daemon`` and ``dagster._core`` here only, as Dagster's own recovery tests do.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.sensor import execute_sensor_iteration

# Imported here, before any fork: a child process then starts with the code location loaded.
import tests.reliability.landing_location  # noqa: F401
from tests.conftest import CONFIG_DIR, PG_ADMIN_URL, REPO
from tests.helpers import write_file

SENSOR = "landing_sensor"
CRASH_POINTS = ["TICK_CREATED", "RUN_CREATED", "RUN_LAUNCHED"]
#: The daemon evaluates a sensor at most once per its minimum interval (1 s for this one).
INTERVAL = 1.1

BILLING = (
    "cust_no;full_name;addr_line1;addr_line2;city;state;zip;phone;email;dob;ssn;last_updated\n"
    "B1;Doe, Jane;1 Main St;;Springfield;IL;62701;217-555-0100;jane@example.com;1980-02-03;"
    "123-45-6789;2026-01-01 10:00:00\n"
    "B2;Roe, Rick;2 Elm St;;Springfield;IL;62702;217-555-0101;rick@example.com;1975-05-06;"
    "987-65-4321;2026-01-01 10:00:00\n"
    "B3;Poe, Anna;3 Oak St;;Springfield;IL;62703;217-555-0102;anna@example.com;1990-07-08;"
    "555-44-3333;2026-01-01 10:00:00\n"
)

#: Runs go straight to the launcher (no queue), which runs them in the daemon's process: a run
#: launched before the kill has done its work, as a fast run would have in production.
INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher.sync_in_memory_run_launcher
  class: SyncInMemoryRunLauncher
"""


class DaemonLogger(logging.Logger):
    """The sensor daemon still calls the stdlib's deprecated ``Logger.warn``."""

    def warn(self, msg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def, override]
        self.warning(msg, *args, **kwargs)


def wait_for_interval() -> None:
    """Sleep until the sensor's last tick began a minimum interval ago (else the next
    iteration skips it), as the daemon's loop would before evaluating it again."""
    with dg.DagsterInstance.get() as instance:
        started = max(
            (
                s.instigator_data.last_tick_start_timestamp or 0.0
                for s in instance.all_instigator_state()
            ),
            default=0.0,
        )
    time.sleep(max(0.0, started + INTERVAL - time.time()))


def daemon_iteration(crash_at: str | None = None) -> None:
    """One sensor-daemon iteration over tests/reliability/landing_location.py, on the instance
    of ``DAGSTER_HOME``; with ``crash_at``, SIGKILL at that point of the landing sensor's tick."""
    flags = {SENSOR: {crash_at: signal.SIGKILL}} if crash_at else None
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="tests.reliability.landing_location",
            working_directory=str(REPO),
        )
    )
    with (
        dg.DagsterInstance.get() as instance,
        WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace,
    ):
        for _ in execute_sensor_iteration(
            workspace,
            DaemonLogger("tests.sensor_daemon"),
            threadpool_executor=None,
            submit_threadpool_executor=None,
            debug_crash_flags=flags,
        ):
            pass


def killed_iteration(crash_at: str) -> int:
    """Run :func:`daemon_iteration` in a forked child that kills itself at ``crash_at``; its
    exit code (the code location is imported already, so the child starts in milliseconds)."""
    child = multiprocessing.get_context("fork").Process(target=daemon_iteration, args=(crash_at,))
    child.start()
    child.join(timeout=120)
    if child.exitcode is None:
        child.kill()
        child.join()
    return child.exitcode


def _throwaway_database() -> tuple[str, object]:
    name = f"mdm_dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A hub and a Dagster instance of the test's own, both on SQLite or both on PostgreSQL
    (in two databases: Dagster's table names clash with the hub's); the daemon finds them
    through the environment, as dagster-daemon would."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    body = INSTANCE_YAML
    drop = None
    if request.param == "sqlite":
        hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        hub_url = request.getfixturevalue("postgres_url")
        dagster_url, drop = _throwaway_database()
        body += f"storage:\n  postgres:\n    postgres_url: {dagster_url}\n"
    (home / "dagster.yaml").write_text(body)
    landing = tmp_path / "landing"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MDM_HUB_URL", hub_url)
    monkeypatch.setenv("MDM_LANDING_DIR", str(landing))
    monkeypatch.setenv("MDM_CONFIG_DIR", str(CONFIG_DIR))
    try:
        yield hub_url, landing
    finally:
        if drop is not None:
            drop()


def _ledger(hub_url: str, sha: str) -> tuple[list[str], int]:
    engine = sa.create_engine(hub_url)
    try:
        with engine.connect() as conn:
            statuses = list(
                conn.execute(
                    sa.text("SELECT status FROM extracts WHERE content_hash = :sha"), {"sha": sha}
                ).scalars()
            )
            records = conn.execute(sa.text("SELECT count(*) FROM source_records")).scalar_one()
        return statuses, records
    finally:
        engine.dispose()


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_sensor_tick_killed_mid_way_asks_one_run_and_the_extract_is_ingested(storage, crash_at):
    hub_url, landing = storage
    extract = write_file(landing / "billing" / "customers_2026-01-01.csv", BILLING)
    settled = time.time() - 3600  # complete by age: ready on the first look
    os.utime(extract, (settled, settled))
    sha = hashlib.sha256(extract.read_bytes()).hexdigest()
    run_key = f"billing:{sha}"

    assert killed_iteration(crash_at) == -signal.SIGKILL
    with dg.DagsterInstance.get() as instance:
        before = instance.get_runs()
    # What the kill left: no run before the sensor asked for one, one run after.
    assert len(before) == (0 if crash_at == "TICK_CREATED" else 1)
    if crash_at == "RUN_LAUNCHED":  # launched, the run did its work before the kill
        assert before[0].status == dg.DagsterRunStatus.SUCCESS
        assert _ledger(hub_url, sha) == (["loaded"], 3)

    wait_for_interval()
    daemon_iteration()  # the restarted daemon: resumes or redoes the tick

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert [r.tags.get("dagster/run_key") for r in runs] == [run_key]
        assert [r.run_id for r in runs] == [r.run_id for r in before] or not before
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
    assert _ledger(hub_url, sha) == (["loaded"], 3)

    wait_for_interval()
    daemon_iteration()  # and later ticks ask nothing more for the same bytes
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 1
    assert _ledger(hub_url, sha) == (["loaded"], 3)
