"""RELIABILITY row 1, the other two boundaries: PostgreSQL itself crashing
(``pg_ctl stop -m immediate`` on a server of the test's own) while a run is at a crash point
or just after its commit; and the run process killed after its commit but before Dagster
recorded the step's success. Each time the rerun converges (invariants and convergence oracle)
and nothing is done twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.mastering import consolidate_golden_records
from mdm_orchestration.assets.matching import match_clusters, match_model, training_labels
from mdm_orchestration.cleansing import cleanse_pending
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching import match_incremental
from mdm_orchestration.resources import HubDatabase, LandingZone
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import verify_hub
from tests.reliability.pgcluster import throwaway_cluster
from tests.reliability.steps import build_base, counts, reconsolidate

CONFIG = load_hub_config(CONFIG_DIR)
ASSETS = [
    cleansed_records,
    training_labels,
    match_model,
    match_clusters,
    consolidate_golden_records,
]


@pytest.fixture(scope="module")
def cluster():
    with throwaway_cluster() as server:
        yield server


@pytest.fixture(scope="module")
def cluster_base(cluster, small_silos) -> str:
    name = f"base_{uuid.uuid4().hex[:8]}"
    build_base(cluster.create_database(name), small_silos)
    return name


@pytest.fixture
def cluster_hub(cluster, cluster_base) -> str:
    name = f"hub_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{cluster_base}"'))
    admin.dispose()
    return cluster.url(name)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "point",
    [
        "match:after_cluster_write",
        "match:before_commit",
        "golden:after_golden_write",
        "golden:before_commit",
    ],
)
def test_postgres_stopped_hard_at_a_crash_point_loses_nothing_committed(
    cluster, cluster_hub, point
):
    """The run waits at the crash point (``MDM_CRASH_MODE=pause``) while the server is
    stopped without a checkpoint; the run fails; after recovery the hub is as it was before
    the run, and a rerun converges."""
    engine = create_hub_engine(cluster_hub)
    cleanse_pending(engine, CONFIG)
    if point.startswith("golden:"):
        match_incremental(engine, CONFIG)
    operation = "consolidate" if point.startswith("golden:") else "reconsolidate"
    before = counts(engine)
    engine.dispose()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.steps", operation, cluster_hub],
        env={**os.environ, "MDM_CRASH_AT": point, "MDM_CRASH_MODE": "pause"},
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if f"crash point {point} reached" in line:
                break
        else:
            pytest.fail("the run never reached its crash point:\n" + "".join(seen[-40:]))
        cluster.stop_immediate()
        _out, err = proc.communicate("\n", timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode not in (0, None)
    assert "OperationalError" in err or "server closed the connection" in err, err[-2000:]
    cluster.start()
    engine = create_hub_engine(cluster_hub)
    try:
        assert counts(engine) == before  # the interrupted transaction left nothing
        assert verify_hub(cluster_hub) == "committed"
        result = reconsolidate(engine, CONFIG, "rerun")
        assert result["golden"]["created"] + result["golden"]["updated"] > 0
        assert verify_hub(cluster_hub) == "settled"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_stopped_hard_right_after_a_commit_keeps_it(cluster, cluster_hub):
    """The commit boundary itself: once a run returned, a database crash loses none of it."""
    engine = create_hub_engine(cluster_hub)
    reconsolidate(engine, CONFIG, "committed")
    after = counts(engine)
    engine.dispose()
    cluster.stop_immediate()
    cluster.start()
    engine = create_hub_engine(cluster_hub)
    try:
        assert counts(engine) == after
        assert verify_hub(cluster_hub) == "settled"
        again = reconsolidate(engine, CONFIG, "again")
        assert again["golden"]["created"] == again["golden"]["updated"] == 0
        assert counts(engine)["golden_changes"] == after["golden_changes"]
    finally:
        engine.dispose()


KILL_AFTER = textwrap.dedent(
    """
    import os, signal, sys
    import dagster as dg
    import mdm_orchestration.assets.{module} as module
    from mdm_orchestration.assets.cleansing import cleansed_records
    from mdm_orchestration.assets.mastering import consolidate_golden_records
    from mdm_orchestration.assets.matching import match_clusters, match_model, training_labels
    from mdm_orchestration.resources import HubDatabase, LandingZone

    original = module.{function}

    def committed_then_killed(*args, **kwargs):
        result = original(*args, **kwargs)  # the hub transaction has committed
        os.kill(os.getpid(), signal.SIGKILL)  # before the asset returns to Dagster
        return result

    module.{function} = committed_then_killed
    url, landing, config = sys.argv[1:4]
    with dg.DagsterInstance.get() as instance:
        dg.materialize(
            [cleansed_records, training_labels, match_model, match_clusters,
             consolidate_golden_records],
            resources={{"hub": HubDatabase(url=url),
                        "landing": LandingZone(root=landing, config_dir=config)}},
            instance=instance,
        )
    """
)


@pytest.mark.parametrize(
    ("hub", "module", "function"),
    [
        ("sqlite", "matching", "rematch"),
        ("sqlite", "mastering", "consolidate"),
        ("postgres", "mastering", "consolidate"),
    ],
    indirect=["hub"],
)
def test_killed_after_the_commit_before_dagsters_success_event(
    hub, module, function, tmp_path, small_silos, monkeypatch
):
    """Dagster's storage says the run started and the step never succeeded; the hub has the
    step's commit. Materialising again finishes the work without doing any of it twice."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    script = KILL_AFTER.format(module=module, function=function)
    proc = subprocess.run(
        [sys.executable, "-c", script, hub, str(small_silos), str(config_dir)],
        env={**os.environ},
        cwd=REPO,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    engine = create_hub_engine(hub)
    try:
        killed = counts(engine)
        with dg.DagsterInstance.get() as instance:
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED  # no success was ever recorded
            done = {
                key
                for key in ("match_clusters", "golden_records")
                if instance.get_latest_materialization_event(dg.AssetKey(key)) is not None
            }
            assert done == ({"match_clusters"} if module == "mastering" else set())
            rerun = dg.materialize(
                ASSETS,
                resources={
                    "hub": HubDatabase(url=hub),
                    "landing": LandingZone(root=str(small_silos), config_dir=str(config_dir)),
                },
                instance=instance,
            )
            assert rerun.success
        after = counts(engine)
        # The killed step's commit is not done again: no second match run's worth of work, no
        # second set of change events.
        if module == "mastering":
            assert after["golden_changes"] == killed["golden_changes"]
            assert after["golden_history"] == killed["golden_history"]
        else:
            assert after["match_clusters"] == killed["match_clusters"]
            assert after["golden_changes"] > killed["golden_changes"]  # consolidation ran once
        assert verify_hub(hub) == "settled"
    finally:
        engine.dispose()
