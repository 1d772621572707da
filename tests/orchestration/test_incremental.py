"""Incremental reconsolidation: a new extract touches only what it reaches, and agrees with a
full rebuild; updates move golden records, stable ids survive a rebuild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdm_orchestration.cleansing import cleanse_pending
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.models import source_record_id as record_id
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import ingest_file
from mdm_orchestration.matching import (
    match_incremental,
    needs_full_rematch,
    rebuild_clusters,
    term_frequencies,
    train_models,
)
from mdm_orchestration.matching.evaluation import pairwise_scores
from mdm_orchestration.survivorship import (
    consolidate,
    rebuild_households,
    refresh_households,
)
from mdm_orchestration.syndication import syndicate
from tests.conftest import CONFIG_DIR
from tests.helpers import check_invariants, copy_landing, ingest_all, write_file
from tests.outbox import deliver_changes_from_start

CONFIG = load_hub_config(CONFIG_DIR)


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def clusters(engine) -> dict[str, str]:
    return dict(rows(engine, "SELECT record_id, cluster_id FROM match_clusters"))


def golden_of(engine) -> dict[str, str]:
    return dict(rows(engine, "SELECT record_id, golden_id FROM golden_xref"))


def reconsolidate(engine, config=CONFIG) -> dict:
    """What reconsolidate_job does: cleanse what is new, match it (a full rebuild when none was
    made yet), re-survive what changed."""
    cleanse_pending(engine, config)
    with engine.connect() as conn:
        full = needs_full_rematch(conn)
    counts = (
        rebuild_clusters(engine, config).stats["run"]
        if full
        else match_incremental(engine, config).counts
    )
    return {"match": counts, "golden": consolidate(engine, config, "test").counts}


def load_one_at_a_time(root: Path, sample_silos: Path, config=CONFIG) -> tuple[object, list]:
    """A new hub under ``root`` fed the generated silos' ten files one at a time,
    reconsolidating after each: the engine and each load's counts."""
    landing = copy_landing(sample_silos, root / "landing")
    engine = create_hub_engine(f"sqlite:///{root / 'hub.db'}")
    train_models(engine)
    files = sorted(
        (p for p in landing.rglob("*") if p.is_file()),
        key=lambda p: (p.name.split("_")[-1], p.parent.name),
    )
    assert len(files) == 10
    steps = []
    for path in files:
        ingest_file(engine, config, path, landing)
        steps.append(reconsolidate(engine, config))
    return engine, steps


@pytest.fixture(scope="module")
def incremental_hub(tmp_path_factory, sample_silos) -> tuple[Path, list[dict]]:
    """The generated silos' ten files loaded one at a time, reconsolidating after each."""
    root = tmp_path_factory.mktemp("incremental")
    engine, steps = load_one_at_a_time(root, sample_silos)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return root, steps


def test_ten_incremental_loads_agree_with_one_full_load(incremental_hub, tmp_path, sample_silos):
    root, steps = incremental_hub
    assert steps[0]["match"]["arrived"] > 0
    assert all(s["match"]["arrived"] > 0 for s in steps)
    # After the first file, each load re-matches only the part of the hub it reaches.
    later = [s["match"] for s in steps[1:]]
    assert all(m["records"] < m["arrived"] * 10 for m in later), later
    incremental = create_hub_engine(f"sqlite:///{root / 'hub.db'}")
    check_invariants(incremental)

    landing = copy_landing(sample_silos, tmp_path / "landing")
    full = create_hub_engine(f"sqlite:///{tmp_path / 'full.db'}")
    train_models(full)
    ingest_all(full, CONFIG, landing)
    cleanse_pending(full, CONFIG)
    rebuild_clusters(full, CONFIG)
    consolidate(full, CONFIG, "full")
    a, b = clusters(incremental), clusters(full)
    assert set(a) == set(b)
    ids = sorted(a)
    agreement = pairwise_scores([a[r] for r in ids], [b[r] for r in ids])
    assert agreement["f1"] >= 0.999, agreement  # measured: 1.0
    assert len(set(golden_of(incremental).values())) == len(set(golden_of(full).values()))
    # The hub-wide value counts the incremental path kept equal the full rebuild's recount.
    with incremental.connect() as conn_a, full.connect() as conn_b:
        kept, recount = term_frequencies(conn_a), term_frequencies(conn_b)
    assert kept == recount
    assert sum(kept.values()) > len(a) and any(c > 1 for c in kept.values())
    # ... and some loads had to score again the holders of a value whose count changed level.
    assert any(m.get("frequency_shifted", 0) for m in later), later
    incremental.dispose()
    full.dispose()


def _pair_scores(engine) -> dict[tuple[str, str], float]:
    return {
        (a, b): s
        for a, b, s in rows(
            engine, "SELECT left_record_id, right_record_id, score FROM match_pairs"
        )
    }


def _partition(assignment: dict[str, str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for record, cluster in assignment.items():
        groups.setdefault(cluster, []).append(record)
    return sorted(sorted(g) for g in groups.values())


def test_incremental_and_full_decide_alike_with_the_frequency_penalty_firing(
    incremental_hub, tmp_path, sample_silos
):
    """In the sample every count stays below the shipped reference counts, so here they are
    lowered until the penalty weighs most agreements (full names, birth dates, postcodes, towns)
    and values cross levels on nearly every load: the kept scores and clusters of ten
    incremental loads still equal a full rebuild's."""
    tf = CONFIG.matching.term_frequencies.model_copy(
        update={"reference_count": 2, "reference_counts": {"birth": 1, "full_name": 1}}
    )
    config = CONFIG.model_copy(
        update={"matching": CONFIG.matching.model_copy(update={"term_frequencies": tf})}
    )
    engine, steps = load_one_at_a_time(tmp_path, sample_silos, config)
    shifted = sum(step["match"].get("frequency_shifted", 0) for step in steps)
    assert shifted > 0
    kept, kept_clusters = _pair_scores(engine), clusters(engine)
    rebuild_clusters(engine, config)
    rebuilt, rebuilt_clusters = _pair_scores(engine), clusters(engine)
    common = set(kept) & set(rebuilt)
    assert len(common) > 0.9 * len(rebuilt)
    assert [k for k in common if abs(kept[k] - rebuilt[k]) > 1e-4] == []
    assert _partition(kept_clusters) == _partition(rebuilt_clusters)
    # The penalty did fire: the same pairs score lower than with the shipped settings.
    shipped = _pair_scores(create_hub_engine(f"sqlite:///{incremental_hub[0] / 'hub.db'}"))
    lower = [k for k in common & set(shipped) if rebuilt[k] < shipped[k] - 1e-3]
    assert len(lower) > 0.1 * len(common)
    engine.dispose()


def test_a_full_rebuild_keeps_the_golden_ids_of_unchanged_clusters(incremental_hub, tmp_path):
    root, _steps = incremental_hub
    shutil.copy(root / "hub.db", tmp_path / "hub.db")
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    before_clusters, before = clusters(engine), golden_of(engine)
    rebuild_clusters(engine, CONFIG)
    counts = consolidate(engine, CONFIG, "rebuild").counts
    after_clusters, after = clusters(engine), golden_of(engine)

    def members(mapping):
        out: dict[str, frozenset] = {}
        for rid, cid in mapping.items():
            out[cid] = out.get(cid, frozenset()) | {rid}
        return set(out.values())

    unchanged = members(before_clusters) & members(after_clusters)
    assert len(unchanged) >= 0.99 * len(members(before_clusters))
    for group in unchanged:
        assert {before[r] for r in group} == {after[r] for r in group}
    assert counts["created"] == 0
    check_invariants(engine)
    engine.dispose()


def test_an_update_moves_the_golden_record_and_touches_nothing_else(incremental_hub, tmp_path):
    root, _steps = incremental_hub
    shutil.copy(root / "hub.db", tmp_path / "hub.db")
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    # A billing customer moves: the newest billing extract row, with a new address.
    key, raw = rows(
        engine,
        "SELECT s.source_key, v.raw FROM source_records s JOIN "
        "source_record_versions v ON v.extract_id = s.current_extract_id AND "
        "v.row_number = s.current_row_number WHERE s.source = 'billing' "
        "ORDER BY s.source_key LIMIT 1",
    )[0]
    values = json.loads(raw) if isinstance(raw, str) else dict(raw)
    values.update(
        addr_line1="77 Newhome Avenue",
        addr_line2="",
        city="Lakeview",
        zip="60613",
        state="IL",
        last_updated="2026-11-20 08:00:00",
    )
    header = list(values)
    write_file(
        tmp_path / "landing" / "billing" / "move.csv",
        ";".join(header) + "\n" + ";".join(values[h] or "" for h in header) + "\n",
    )
    before_versions = dict(rows(engine, "SELECT golden_id, version FROM golden_records"))
    assert refresh_households(engine)["full"] == 1  # the first refresh builds them all
    household_then = rows(
        engine,
        "SELECT m.household_id FROM household_members m JOIN golden_xref x USING (golden_id) "
        "WHERE x.source = 'billing' AND x.source_key = :k",
        k=key,
    )[0][0]
    ingest_file(engine, CONFIG, tmp_path / "landing" / "billing" / "move.csv", tmp_path / "landing")
    pairs_before = rows(engine, "SELECT count(*) FROM match_pairs")[0][0]
    kept = set(rows(engine, "SELECT left_record_id, right_record_id, score FROM match_pairs"))
    counts = reconsolidate(engine)
    assert counts["match"]["arrived"] == 1 and counts["match"]["records"] < 50
    # Only the moved record's pairs were scored; every other kept pair is as it was.
    mover = record_id("billing", key)
    assert 0 < counts["match"]["pairs_scored"] < 60 < pairs_before
    after = set(rows(engine, "SELECT left_record_id, right_record_id, score FROM match_pairs"))
    assert {p for p in kept ^ after if mover not in p[:2]} == set()
    assert counts["match"]["clusters_rewritten"] <= 3 and counts["match"]["queued"] <= 3
    (golden,) = {
        g
        for (g,) in rows(
            engine,
            "SELECT golden_id FROM golden_xref WHERE source = 'billing' AND source_key = :k",
            k=key,
        )
    }
    attributes = json.loads(
        rows(engine, "SELECT attributes FROM golden_records WHERE golden_id = :g", g=golden)[0][0]
    )
    assert attributes["street"].startswith("77 Newhome") and attributes["city"] == "Lakeview"
    event = rows(
        engine,
        "SELECT event_type, changed, business_events FROM golden_changes WHERE golden_id = :g "
        "ORDER BY seq DESC LIMIT 1",
        g=golden,
    )[0]
    assert event[0] == "updated" and "street" in json.loads(event[1])
    # The business event the move carries, written with the change (events.yaml).
    assert "address_changed" in json.loads(event[2])
    after_versions = dict(rows(engine, "SELECT golden_id, version FROM golden_records"))
    changed = {g for g, v in after_versions.items() if before_versions.get(g) != v}
    assert golden in changed and len(changed) <= 3
    assert counts["golden"]["records_considered"] < 50
    # Households follow: only the mover's old and new addresses are redone, and the result is
    # what a full rebuild gives.
    stats = refresh_households(engine)
    assert stats["full"] == 0 and 0 < stats["households_redone"] <= 5
    households = (
        "SELECT h.household_id, h.address_key, h.member_count, m.golden_id FROM "
        "households h JOIN household_members m USING (household_id) ORDER BY 1, 4"
    )
    incremental = rows(engine, households)
    assert any(golden == r[3] for r in incremental)
    rebuild_households(engine)
    assert rows(engine, households) == incremental
    # Each version carries the household the refresh after it found: the move's version the
    # new one, the version before it the one it had then; a subscriber reading the outbox
    # late (here: from the start, after both) gets each message's household as of its
    # version, not the household of today.
    (household_now,) = {r[0] for r in incremental if r[3] == golden}
    assert household_now != household_then
    recorded = dict(
        rows(
            engine,
            "SELECT version, household_id FROM golden_history WHERE golden_id = :g",
            g=golden,
        )
    )
    assert recorded[before_versions[golden]] == household_then
    assert recorded[after_versions[golden]] == household_now
    deliver_changes_from_start(engine, "warehouse")
    syndicate(engine, CONFIG, "warehouse", home=tmp_path)
    sent = [
        json.loads(line)
        for path in sorted((tmp_path / "outbound" / "warehouse").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    households_sent = {(m["version"], m["household_id"]) for m in sent if m["golden_id"] == golden}
    assert (before_versions[golden], household_then) in households_sent
    assert (after_versions[golden], household_now) in households_sent
    assert len(households_sent) == len({v for v, _ in households_sent})  # one per version
    check_invariants(engine)
    engine.dispose()


def test_nothing_new_means_no_work(incremental_hub, tmp_path):
    root, _steps = incremental_hub
    shutil.copy(root / "hub.db", tmp_path / "hub.db")
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    counts = reconsolidate(engine)
    assert counts["match"]["arrived"] == counts["match"]["records"] == 0
    assert counts["golden"]["records_considered"] == 0
    assert sum(counts["golden"][k] for k in ("created", "updated", "merged", "split")) == 0
    engine.dispose()


def test_an_ingest_run_leads_to_a_reconsolidate_run_and_a_retrain_to_a_rebuild(
    tmp_path, sample_silos
):
    import dagster as dg

    from mdm_orchestration.assets.ingestion import source_extracts
    from mdm_orchestration.assets.matching import match_model, training_labels
    from mdm_orchestration.definitions import defs
    from mdm_orchestration.partitions import landed_files
    from mdm_orchestration.resources import HubDatabase, LandingZone
    from mdm_orchestration.sensors import reconsolidation_sensor, retrain_sensor

    landing = copy_landing(sample_silos, tmp_path / "landing")
    resources = {
        "hub": HubDatabase(url=f"sqlite:///{tmp_path / 'hub.db'}"),
        "landing": LandingZone(root=str(landing), config_dir=str(CONFIG_DIR)),
    }
    key = "crm/" + sorted(p.name for p in (landing / "crm").iterdir())[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landed_files.name, [key])
        ingest = dg.materialize(
            [source_extracts], partition_key=key, instance=instance, resources=resources
        )
        context = dg.build_run_status_sensor_context(
            sensor_name=reconsolidation_sensor.name,
            dagster_instance=instance,
            dagster_run=ingest.dagster_run,
            dagster_event=ingest.get_run_success_event(),
        )
        request = reconsolidation_sensor(context)
        assert request.run_key == f"after-ingest:{ingest.run_id}"
        assert reconsolidation_sensor.job_name == "reconsolidate_job"
        # The requested job runs end to end on what was ingested.
        job = defs.resolve_job_def("reconsolidate_job")
        result = job.execute_in_process(instance=instance, resources=resources)
        assert result.success
        golden = result.asset_materializations_for_node("consolidate_golden_records")
        assert {m.asset_key.to_user_string() for m in golden} == {
            "golden_records",
            "golden_changes",
        }

        # The reconsolidation trained the first model and matched in full in the same run: no
        # rebuild. A retrain on its own asks for one; a materialisation without retraining not.
        with dg.build_sensor_context(instance=instance) as ctx:
            (inside,) = list(retrain_sensor(ctx))
            cursor = ctx.cursor
        assert isinstance(inside, dg.SkipReason) and "same run" in inside.skip_message
        # What retrain_job runs: the labels and a forced retrain, and no matching.
        retrain = dg.materialize(
            [training_labels, match_model],
            instance=instance,
            resources=resources,
            run_config={"ops": {"match_model": {"config": {"force": True}}}},
        )
        assert retrain.success
        with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
            (first,) = list(retrain_sensor(ctx))
            cursor = ctx.cursor
        assert isinstance(first, dg.RunRequest) and first.run_key == f"retrain:{retrain.run_id}"
        assert retrain_sensor.job_name == "rebuild_job"
        dg.materialize([training_labels, match_model], instance=instance, resources=resources)
        with dg.build_sensor_context(instance=instance, cursor=cursor) as ctx:
            (again,) = list(retrain_sensor(ctx))
        assert isinstance(again, dg.SkipReason)


def test_a_record_the_source_deletes_leaves_its_cluster_and_golden_record(tmp_path):
    import yaml

    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    sources = yaml.safe_load((config_dir / "sources.yaml").read_text())
    sources["sources"]["support"] = {
        "format": "csv",
        "key_column": "id",
        "trust_rank": 6,
        "updated_at_column": "updated",
        "default_country": "US",
        "date_order": "YMD",
        "mapping": {"full_name": "name", "email": "email", "party_type": {"value": "person"}},
        "deleted_flag": {"column": "deleted"},
    }
    (config_dir / "sources.yaml").write_text(yaml.safe_dump(sources))
    config = load_hub_config(config_dir)
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    train_models(engine)
    landing = tmp_path / "landing"
    header = "id,name,email,deleted,updated\n"
    write_file(
        landing / "support" / "a.csv",
        header
        + "S1,Mara Quist,mara.quist@example.com,,2026-01-01 10:00:00\n"
        + "S2,Mara Quist,mara.quist@example.com,,2026-01-01 10:00:00\n"
        + "S3,Olaf Brandt,olaf.b@example.com,,2026-01-01 10:00:00\n",
    )
    write_file(
        landing / "support" / "b.csv",
        header
        + "S2,Mara Quist,mara.quist@example.com,true,2026-02-01 10:00:00\n"
        + "S3,Olaf Brandt,olaf.b@example.com,yes,2026-02-01 10:00:00\n",
    )

    def step(name: str) -> dict:
        ingest_file(engine, config, landing / "support" / name, landing)
        cleanse_pending(engine, config)
        with engine.connect() as conn:
            full = needs_full_rematch(conn)
        match = (
            rebuild_clusters(engine, config).stats["run"]
            if full
            else match_incremental(engine, config).counts
        )
        return {"match": match, "golden": consolidate(engine, config, name).counts}

    step("a.csv")
    first = golden_of(engine)
    assert first[_rid("S1")] == first[_rid("S2")] != first[_rid("S3")]
    counts = step("b.csv")
    assert counts["match"]["removed"] == 2
    assert set(golden_of(engine)) == {_rid("S1")}
    assert clusters(engine) == {_rid("S1"): _rid("S1")}
    status = dict(rows(engine, "SELECT golden_id, status FROM golden_records"))
    assert status[first[_rid("S1")]] == "active" and status[first[_rid("S3")]] == "retired"
    assert counts["golden"]["updated"] == 1 and counts["golden"]["retired"] == 1
    reasons = rows(engine, "SELECT reason FROM quarantine WHERE stage = 'cleanse'")
    assert reasons == [("deleted_by_source",)] * 2
    check_invariants(engine)
    engine.dispose()


def _rid(key: str) -> str:
    from mdm_orchestration.hub.models import source_record_id

    return source_record_id("support", key)


def test_an_erasure_between_planning_and_writing_stops_the_match_run(
    tmp_path, sample_silos, monkeypatch
):
    """The incremental path plans in one transaction and writes in another: an erasure that
    commits in between would have its records' index entries and counts written back."""
    import mdm_orchestration.matching.incremental as incremental
    from mdm_orchestration.matching import ConcurrentMatch

    landing = copy_landing(sample_silos, tmp_path / "landing")
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    train_models(engine)
    files = sorted(p for p in landing.rglob("*") if p.is_file())
    ingest_file(engine, CONFIG, files[0], landing)
    reconsolidate(engine)
    ingest_file(engine, CONFIG, files[1], landing)
    cleanse_pending(engine, CONFIG)
    planned = incremental._plan

    def plan_then_erase(*args, **kwargs):
        plan = planned(*args, **kwargs)
        with engine.begin() as conn:  # another process's erasure, committed meanwhile
            conn.execute(
                sa.text(
                    "INSERT INTO erasures (golden_id, records, requested_by, erased_at) "
                    "VALUES ('G0000000001', 1, 'test', CURRENT_TIMESTAMP)"
                )
            )
        return plan

    monkeypatch.setattr(incremental, "_plan", plan_then_erase)
    runs_before = rows(engine, "SELECT count(*) FROM match_runs")[0][0]
    with pytest.raises(ConcurrentMatch, match="erasure"):
        match_incremental(engine, CONFIG)
    assert rows(engine, "SELECT count(*) FROM match_runs")[0][0] == runs_before
    monkeypatch.setattr(incremental, "_plan", planned)
    assert match_incremental(engine, CONFIG).counts["arrived"] > 0  # run again: it goes through
    engine.dispose()


def test_a_change_in_matching_settings_calls_for_a_full_rebuild(sqlite_hub, hub_config):
    """Kept pairs and clusters were made with the last full run's matching.yaml: another
    threshold (or rule, or block size) makes the next run a full rebuild, not an incremental
    one over stale pairs."""
    from mdm_orchestration.matching import FULL, INCREMENTAL, rematch

    engine = create_hub_engine(sqlite_hub)
    assert rematch(engine, hub_config).mode == FULL  # never matched
    with engine.connect() as conn:
        assert not needs_full_rematch(conn, hub_config.matching)
    assert rematch(engine, hub_config).mode == INCREMENTAL
    stricter = hub_config.model_copy(
        update={
            "matching": hub_config.matching.model_copy(
                update={"threshold": (hub_config.matching.threshold or 0.5) + 0.05}
            )
        }
    )
    with engine.connect() as conn:
        assert needs_full_rematch(conn, stricter.matching)
        assert not needs_full_rematch(conn, hub_config.matching)
    assert rematch(engine, stricter).mode == FULL
    with engine.connect() as conn:
        assert not needs_full_rematch(conn, stricter.matching)
        assert needs_full_rematch(conn, hub_config.matching)
    engine.dispose()
