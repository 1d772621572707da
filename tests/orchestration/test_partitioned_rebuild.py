"""The partitioned full rebuild (issue 21): split by blocking-key hash, run by Dagster's
multiprocess executor (each partition its own process) in a persistent instance, exchanging
only through the hub; it must give exactly what the single-step rebuild gives."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching import (
    IncompleteRebuild,
    current_cleansed,
    finish_partitioned_rebuild,
    rebuild_clusters,
    stage_partition,
    start_partitioned_rebuild,
)
from mdm_orchestration.matching.blocking import candidate_pairs
from mdm_orchestration.matching.engine import party_frames
from tests.orchestration.conftest import build_trained_hub

PARTITIONS = 3
#: Partitions of the Dagster runs (two steps at once on this two-core machine).
RUN_PARTITIONS = 2


def partitioned_rebuild_job() -> dg.JobDefinition:
    """The code location's job with its resources (what a run worker loads)."""
    from mdm_orchestration.definitions import defs

    return defs.resolve_job_def("partitioned_rebuild_job")


def outcome(engine: sa.Engine) -> dict[str, object]:
    """What a full rebuild writes (times left out)."""
    queries = {
        "clusters": "SELECT record_id, party_type, cluster_id, confidence, "
        "organisation_cluster_id, extract_id, row_number FROM match_clusters",
        "pairs": "SELECT left_record_id, right_record_id, party_type, score, by_rule "
        "FROM match_pairs",
        "review": "SELECT party_type, left_record_id, right_record_id, score, priority "
        "FROM review_queue WHERE status = 'pending'",
        "index": "SELECT record_id, key_name, key_hash FROM blocking_index",
        "queue": "SELECT record_id FROM consolidation_queue",
        "frequencies": "SELECT party_type, field, value_key, count FROM term_frequencies",
    }
    with engine.connect() as conn:
        out: dict[str, object] = {
            k: sorted(conn.execute(sa.text(q)).all()) for k, q in queries.items()
        }
        counts = conn.execute(sa.text("SELECT counts FROM match_runs ORDER BY id DESC")).first()
        out["run"] = counts[0]
    return out


def staged_rows(engine: sa.Engine, token: str | None = None) -> int:
    where = "" if token is None else f" WHERE token = '{token}'"
    with engine.connect() as conn:
        return sum(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}{where}")).scalar_one()
            for t in ("match_stage_pairs", "match_stage_partitions")
        )


def run_partitioned(tmp_path: Path, monkeypatch, url: str) -> dg.JobExecutionResult:  # type: ignore[no-untyped-def]
    """The job under the multiprocess executor in a persistent instance; the hub URL reaches
    the step processes as it does in production (MDM_HUB_URL)."""
    monkeypatch.setenv("MDM_HUB_URL", url)
    (tmp_path / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.execute_job(
            dg.reconstructable(partitioned_rebuild_job),
            instance=instance,
            run_config={
                "ops": {"plan_rebuild_partitions": {"config": {"partitions": RUN_PARTITIONS}}},
                # Every partition at once, each in a process of its own (spawned: a
                # forkserver would keep the environment of the first run it served).
                "execution": {"config": {"max_concurrent": RUN_PARTITIONS}},
            },
        )
        if result.success:
            # Each partition ran as a step of its own, each in a process of its own.
            steps = {
                e.step_key: e.pid
                for e in result.all_events
                if e.event_type == dg.DagsterEventType.STEP_START
            }
            partitions = [k for k in steps if k.startswith("score_rebuild_partition")]
            assert len(partitions) == RUN_PARTITIONS
            assert len({steps[k] for k in partitions}) == RUN_PARTITIONS
        return result


def _same_as_single_step(url: str, tmp_path: Path, monkeypatch, hub_config) -> None:  # type: ignore[no-untyped-def]
    result = run_partitioned(tmp_path, monkeypatch, url)
    assert result.success
    engine = create_hub_engine(url)
    try:
        partitioned = outcome(engine)
        assert staged_rows(engine) == 0
        rebuild_clusters(engine, hub_config)
        single = outcome(engine)
    finally:
        engine.dispose()
    assert len(partitioned["clusters"]) > 1000 and len(partitioned["pairs"]) > 100
    for what in single:
        assert partitioned[what] == single[what], what


def test_partitioned_rebuild_on_sqlite_equals_single_step(
    sqlite_hub, tmp_path, monkeypatch, hub_config
):  # type: ignore[no-untyped-def]
    _same_as_single_step(sqlite_hub, tmp_path, monkeypatch, hub_config)


@pytest.mark.postgres
def test_partitioned_rebuild_on_postgres_equals_single_step(
    postgres_url, tmp_path, monkeypatch, sample_silos, hub_config
):  # type: ignore[no-untyped-def]
    build_trained_hub(postgres_url, sample_silos, tmp_path / "landing", hub_config)
    _same_as_single_step(postgres_url, tmp_path, monkeypatch, hub_config)


def _stage_until_killed(url: str, part) -> None:  # type: ignore[no-untyped-def]
    from mdm_orchestration.config import load_hub_config
    from tests.conftest import CONFIG_DIR

    os.environ["MDM_CRASH_AT"] = "match:after_stage_batch"  # this child's only
    stage_partition(create_hub_engine(url), load_hub_config(CONFIG_DIR), part)


def test_a_killed_partition_stages_nothing(sqlite_hub, hub_config):  # type: ignore[no-untyped-def]
    engine = create_hub_engine(sqlite_hub)
    try:
        parts = start_partitioned_rebuild(engine, PARTITIONS)
        for part in parts[:1] + parts[2:]:  # every partition but the one to be killed
            stage_partition(engine, hub_config, part)
        before = staged_rows(engine)
        # Killed (SIGKILL) after writing a batch, inside its one transaction.
        child = multiprocessing.get_context("fork").Process(
            target=_stage_until_killed, args=(sqlite_hub, parts[1])
        )
        child.start()
        child.join(120)
        assert child.exitcode == -signal.SIGKILL
        assert staged_rows(engine) == before
        with pytest.raises(IncompleteRebuild):
            finish_partitioned_rebuild(engine, hub_config, parts[0].token, PARTITIONS)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM match_clusters")).scalar_one() == 0
    finally:
        engine.dispose()


def test_partitions_candidates_union_is_the_single_step_candidates(sqlite_hub):  # type: ignore[no-untyped-def]
    engine = create_hub_engine(sqlite_hub)
    with engine.connect() as conn:
        cleansed = current_cleansed(conn)
    engine.dispose()
    _frame, subs = party_frames(cleansed)
    # A small cap makes giant blocks: each lies wholly in one partition, skipped there.
    for max_block in (3, 50):
        for party, sub in subs.items():
            whole = candidate_pairs(sub, party, max_block)
            parts = [candidate_pairs(sub, party, max_block, partition=(i, 4)) for i in range(4)]
            union = np.unique(np.concatenate([p.left * len(sub) + p.right for p in parts]))
            assert np.array_equal(union, whole.left * len(sub) + whole.right)
            for key in whole.giant_blocks:
                assert sum(p.giant_blocks.get(key, 0) for p in parts) == whole.giant_blocks[key]
            for key in whole.pairs_by_key:
                assert sum(p.pairs_by_key.get(key, 0) for p in parts) == whole.pairs_by_key[key]
            if max_block == 3 and party == "person":
                assert sum(whole.giant_blocks.values()) > 0
                # Some pair shares keys of two partitions: found twice, joined once.
                assert sum(len(p) for p in parts) > len(whole)


def test_staging_cleared_and_a_stale_runs_rows_ignored_then_cleared(sqlite_hub, hub_config):  # type: ignore[no-untyped-def]
    engine = create_hub_engine(sqlite_hub)
    try:
        rebuild_clusters(engine, hub_config)
        single = outcome(engine)
        # A run whose last partition never finished writes nothing.
        stale = start_partitioned_rebuild(engine, PARTITIONS)
        for part in stale[:-1]:
            stage_partition(engine, hub_config, part)
        with pytest.raises(IncompleteRebuild):
            finish_partitioned_rebuild(engine, hub_config, stale[0].token, PARTITIONS)
        assert outcome(engine) == single
        # A new run clears it; the stale run's partition that finishes late stages under its
        # own token, which the new run does not read.
        fresh = start_partitioned_rebuild(engine, PARTITIONS)
        assert staged_rows(engine, stale[0].token) == 0
        for part in fresh:
            stage_partition(engine, hub_config, part)
        stage_partition(engine, hub_config, stale[-1])
        with engine.begin() as conn:  # and a stray pair of the stale run that scores 1
            ids = [r for (r,) in conn.execute(sa.text("SELECT record_id FROM match_clusters"))]
            conn.execute(
                sa.text(
                    "INSERT INTO match_stage_pairs VALUES (:t, 0, :a, :b, 'person', 1.0, 1, 0, 1)"
                ),
                {"t": stale[0].token, "a": min(ids[:2]), "b": max(ids[:2])},
            )
        stale_rows = staged_rows(engine, stale[0].token)
        assert stale_rows > 0 and staged_rows(engine, fresh[0].token) > 0
        finish_partitioned_rebuild(engine, hub_config, fresh[0].token, PARTITIONS)
        again = outcome(engine)
        # The clustering step clears every run's rows, the stale run's too.
        assert staged_rows(engine) == 0
    finally:
        engine.dispose()
    assert {k: v for k, v in again.items()} == single


def test_an_erasure_clears_every_runs_staging(sqlite_hub, hub_config, tmp_path):  # type: ignore[no-untyped-def]
    from mdm_orchestration.syndication.erasure import erase

    engine = create_hub_engine(sqlite_hub)
    try:
        parts = start_partitioned_rebuild(engine, PARTITIONS)
        for part in parts:
            stage_partition(engine, hub_config, part)
        assert staged_rows(engine) > 0
        with engine.connect() as conn:
            source, key = conn.execute(
                sa.text("SELECT source, source_key FROM source_records LIMIT 1")
            ).one()
        (tmp_path / "landing").mkdir()
        erase(
            engine,
            source=source,
            key=key,
            by="test",
            ledger=tmp_path / "erasures.jsonl",
            config=hub_config,
            landing=tmp_path / "landing",
            home=tmp_path,
        )
        assert staged_rows(engine) == 0
    finally:
        engine.dispose()


def _race_the_reads(monkeypatch, url: str, plain_read: bool) -> list[str]:  # type: ignore[no-untyped-def]
    """Another run's plan step (which clears every other token's staging rows and commits)
    fires between the clustering step's read of the partitions and its first read of pairs,
    as in review H1. ``plain_read``: the clustering step reads at READ COMMITTED, as before."""
    from mdm_orchestration.matching import partitioned

    fired: list[str] = []
    joined = partitioned._joined

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not fired:
            other = create_hub_engine(url)
            fired.append(start_partitioned_rebuild(other, PARTITIONS)[0].token)
            other.dispose()
        return joined(*args, **kwargs)

    monkeypatch.setattr(partitioned, "_joined", racing)
    if plain_read:

        @contextlib.contextmanager
        def read_committed(engine: sa.Engine):  # type: ignore[no-untyped-def]
            with engine.connect() as conn, conn.begin():
                yield conn

        monkeypatch.setattr(partitioned, "_snapshot_read", read_committed)
    return fired


@pytest.mark.postgres
def test_postgres_a_plan_step_clearing_mid_read_is_refused_or_not_seen(
    postgres_url, tmp_path, monkeypatch, sample_silos, hub_config
):  # type: ignore[no-untyped-def]
    build_trained_hub(postgres_url, sample_silos, tmp_path / "landing", hub_config)
    engine = create_hub_engine(postgres_url)
    try:
        rebuild_clusters(engine, hub_config)
        single = outcome(engine)
        with monkeypatch.context() as patch:
            # At READ COMMITTED the pair reads see the rows gone: the counts each partition
            # recorded refuse them, and nothing is written.
            parts = start_partitioned_rebuild(engine, PARTITIONS)
            for part in parts:
                stage_partition(engine, hub_config, part)
            fired = _race_the_reads(patch, postgres_url, plain_read=True)
            with pytest.raises(IncompleteRebuild, match="were read"):
                finish_partitioned_rebuild(engine, hub_config, parts[0].token, PARTITIONS)
            assert fired and staged_rows(engine, parts[0].token) == 0
            assert outcome(engine) == single
        with monkeypatch.context() as patch:
            # The clustering step's one REPEATABLE READ transaction does not see the clearing:
            # it clusters exactly the rows the partitions staged.
            parts = start_partitioned_rebuild(engine, PARTITIONS)
            for part in parts:
                stage_partition(engine, hub_config, part)
            fired = _race_the_reads(patch, postgres_url, plain_read=False)
            finish_partitioned_rebuild(engine, hub_config, parts[0].token, PARTITIONS)
            assert fired and staged_rows(engine) == 0
        assert outcome(engine) == single
    finally:
        engine.dispose()


def test_the_job_in_the_code_location():
    job = partitioned_rebuild_job()
    assert job.executor_def.name == "multiprocess"
    pools = {node.name: node.definition.pool for node in job.nodes}
    # Partitions stage only their own rows, side by side; the clustering step is the writer.
    assert pools == {
        "plan_rebuild_partitions": None,
        "score_rebuild_partition": None,
        "cluster_rebuild_partitions": "hub_writer",
    }
    assert job.resource_defs.keys() >= {"hub", "config"}
