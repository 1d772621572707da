"""Golden records through Dagster: checks, metadata, stable ids across merges, splits and
retrains, history, households and B2B links, the outbox's atomicity, lookup and export."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.assets.cleansing import cleansed_records
from mdm_orchestration.assets.mastering import consolidate_golden_records, households
from mdm_orchestration.assets.matching import match_clusters, match_model, training_labels
from mdm_orchestration.cli import main
from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.matching import record_label, record_override
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.survivorship import consolidate, golden_as_of
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import check_invariants, copy_landing, ingest_all, write_file

MATCHING = [training_labels, match_model, match_clusters]
MASTERING = [consolidate_golden_records, households]
CANARY_NAME = '=HYPERLINK("http://evil.invalid","x")'


@pytest.fixture(scope="module")
def matched_hub(tmp_path_factory, sample_silos) -> Path:
    """A hub holding the generated silos plus one row with a formula for a name, cleansed and
    matched; each test gets its own copy."""
    root = tmp_path_factory.mktemp("matched")
    landing = copy_landing(sample_silos, root / "landing")
    header = (landing / "loyalty").glob("*.csv").__next__().read_text().splitlines()[0]
    write_file(
        landing / "loyalty" / "members_09-03-2026.csv",
        header
        + "\nL-9999999,"
        + CANARY_NAME.replace('"', '""').join('""')
        + ",Formula,,formula@example.invalid,,,,,,09/03/2026 10:00,N\n",
    )
    url = f"sqlite:///{root / 'hub.db'}"
    engine = create_hub_engine(url)
    config = load_hub_config(CONFIG_DIR)
    ingest_all(engine, config, landing)
    resources = {
        "hub": HubDatabase(url=url),
        "landing": LandingZone(root=str(landing), config_dir=str(CONFIG_DIR)),
    }
    assert dg.materialize([cleansed_records, *MATCHING], resources=resources).success
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return root


@pytest.fixture
def hub(tmp_path, matched_hub):
    shutil.copy(matched_hub / "hub.db", tmp_path / "hub.db")
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    resources = {
        "hub": HubDatabase(url=url),
        "landing": LandingZone(root=str(matched_hub / "landing"), config_dir=str(config)),
    }
    engine = create_hub_engine(url)
    yield {"url": url, "resources": resources, "config": config, "engine": engine}
    engine.dispose()


def master(hub, instance=None) -> dg.ExecuteInProcessResult:
    result = dg.materialize(MASTERING, resources=hub["resources"], instance=instance)
    assert result.success
    return result


def rematch_and_master(hub) -> dg.ExecuteInProcessResult:
    assert dg.materialize(MATCHING, resources=hub["resources"]).success
    return master(hub)


def meta(result, node: str, key: str = "golden_records") -> dict:
    for m in result.get_asset_materialization_events():
        mat = m.event_specific_data.materialization
        if mat.asset_key.to_user_string() == key:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {key} in {node}")


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def xref(engine) -> dict[str, str]:
    return dict(rows(engine, "SELECT record_id, golden_id FROM golden_xref"))


def statuses(engine) -> dict[str, tuple[str, str | None, int]]:
    return {
        g: (s, m, v)
        for g, s, m, v in rows(
            engine, "SELECT golden_id, status, merged_into, version FROM golden_records"
        )
    }


def members_of(mapping: dict[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for rid, gid in mapping.items():
        out[gid].add(rid)
    return out


def test_golden_records_checks_metadata_and_a_rerun_changes_nothing(hub):
    with dg.instance_for_test() as instance:
        first = master(hub, instance)
        checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
        assert set(checks) == {
            "every_source_record_has_one_golden_id",
            "no_golden_record_without_members",
            "golden_ids_unique",
            "lineage_complete",
            "household_members_are_active_persons",
        }
        assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items()}
        m = meta(first, "first")
        assert m["created"] == m["golden_records"] > 500 and m["updated"] == m["merged"] == 0
        assert m["persons"] + m["organisations"] == m["golden_records"]
        assert m["source_records"] > m["golden_records"]
        assert m["contacts_linked_to_organisations"] > 0
        changes = meta(first, "first", "golden_changes")
        assert changes["events_this_run"] == changes["events_total"] == m["golden_records"]
        h = meta(first, "first", "households")
        assert h["multi_person_households"] > 0
        check_invariants(hub["engine"])
        before = rows(hub["engine"], "SELECT * FROM golden_records ORDER BY golden_id")

        second = master(hub, instance)
        m2 = meta(second, "second")
        assert m2["created"] == m2["updated"] == m2["merged"] == m2["split"] == 0
        assert m2["records_considered"] == 0 and m2["full"] == 0  # nothing queued: no work
        assert meta(second, "second", "golden_changes")["events_this_run"] == 0
        # Surviving every cluster again finds nothing to change either.
        third = dg.materialize(
            MASTERING,
            resources=hub["resources"],
            instance=instance,
            run_config={"ops": {"consolidate_golden_records": {"config": {"full": True}}}},
        )
        m3 = meta(third, "third")
        assert m3["full"] == 1 and m3["unchanged"] == m["golden_records"]
        assert meta(third, "third", "golden_changes")["events_this_run"] == 0
        assert rows(hub["engine"], "SELECT * FROM golden_records ORDER BY golden_id") == before
    # Metadata holds counts, never customer values.
    assert CANARY_NAME not in json.dumps([str(v) for v in m.values()])


def test_merge_keeps_the_oldest_id_and_split_mints_a_new_one(hub, capsys):
    master(hub)
    engine = hub["engine"]
    before = xref(engine)
    groups = members_of(before)
    singles = sorted(
        g
        for g, m in groups.items()
        if len(m) == 1
        and rows(engine, "SELECT party_type FROM golden_records WHERE golden_id=:g", g=g)[0][0]
        == "person"
    )
    older, younger = singles[0], singles[-1]
    (a,), (b,) = groups[older], groups[younger]
    stamp = datetime.now(UTC)

    record_override(engine, a, b, "must_link", "test")
    merged = rematch_and_master(hub)
    after = xref(engine)
    state = statuses(engine)
    assert after[a] == after[b] == older
    assert state[younger][:2] == ("merged", older)
    assert meta(merged, "merge")["merged"] >= 1
    event = rows(
        engine,
        "SELECT event_type, related FROM golden_changes WHERE golden_id=:g "
        "ORDER BY seq DESC LIMIT 1",
        g=younger,
    )[0]
    assert event[0] == "merged" and json.loads(event[1]) == [older]
    survivor_event = rows(
        engine,
        "SELECT event_type, changed, related FROM golden_changes "
        "WHERE golden_id=:g ORDER BY seq DESC LIMIT 1",
        g=older,
    )[0]
    assert survivor_event[0] == "updated" and "members" in json.loads(survivor_event[1])
    assert younger in json.loads(survivor_event[2])
    # Unrelated golden records kept their ids and versions.
    untouched = [g for g in groups if g not in (older, younger)]
    assert all(state[g] == ("active", None, 1) for g in untouched)
    check_invariants(engine)

    # History: the survivor as it was before the merge; the merged id now.
    with engine.connect() as conn:
        then = golden_as_of(conn, older, stamp)
        now = golden_as_of(conn, older)
        gone = golden_as_of(conn, younger)
        assert golden_as_of(conn, older, datetime(2000, 1, 1, tzinfo=UTC)) is None
    assert then["version"] == 1 and then["members"] == [a]
    assert now["version"] == 2 and sorted(now["members"]) == sorted([a, b])
    assert gone["status"] == "merged" and gone["merged_into"] == older
    assert (
        main(["lookup", "--golden", older, "--as-of", stamp.isoformat(), "--hub", hub["url"]]) == 0
    )
    as_of = json.loads(capsys.readouterr().out)
    assert as_of["version"] == 1 and as_of["members"] == [a]
    assert main(["lookup", "--golden", older, "--as-of", "2000-01-01", "--hub", hub["url"]]) == 1
    capsys.readouterr()
    # A look-up of the merged id leads to the survivor.
    assert main(["lookup", "--golden", younger, "--hub", hub["url"]]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [d["golden_id"] for d in found] == [older]

    # The steward splits them again: the older record keeps the id (an even split goes to the
    # part holding the smaller record id), the other part gets a new id: never the merged one.
    record_override(engine, a, b, "cannot_link", "test")
    rematch_and_master(hub)
    final = xref(engine)
    assert final[min(a, b)] == older
    new_id = final[max(a, b)]
    assert new_id not in (older, younger) and new_id > max(groups)
    event = rows(
        engine, "SELECT event_type, related FROM golden_changes WHERE golden_id=:g", g=new_id
    )
    assert event == [("split", json.dumps([older]))]
    assert statuses(engine)[younger][0] == "merged"
    check_invariants(engine)


def test_ids_follow_the_rules_through_a_retrain_that_changes_clusters(hub):
    master(hub)
    engine = hub["engine"]
    before = xref(engine)
    state_before = statuses(engine)
    old_groups = members_of(before)
    # Stewards label pairs inside multi-record golden records as distinct, and the matching
    # threshold is raised: a retrain and a reclustering that split clusters.
    multi = sorted(m for m in old_groups.values() if len(m) > 1)
    for members in multi[:15]:
        x, y = sorted(members)[:2]
        record_label(engine, x, y, "distinct", "test")
    path = hub["config"] / "matching.yaml"
    matching = yaml.safe_load(path.read_text())
    matching["threshold"] = 0.995
    path.write_text(yaml.safe_dump(matching))
    result = dg.materialize(MATCHING, resources=hub["resources"])
    model = {
        k: v.value
        for k, v in result.asset_materializations_for_node("match_model")[0].metadata.items()
    }
    assert model["person_retrained"] is True
    counts = meta(master(hub), "retrain")
    assert counts["split"] > 0
    after = xref(engine)
    state = statuses(engine)
    new_groups = members_of(after)
    for gid, old_members in old_groups.items():
        status = state[gid][0]
        if status == "active":
            # The id stayed with the part holding most of its old members.
            here = len(new_groups[gid] & old_members)
            assert all(len(m & old_members) <= here for m in new_groups.values())
            if new_groups[gid] == old_members:
                unchanged_version = state_before[gid][2]
                assert state[gid][2] in (unchanged_version, unchanged_version + 1)
        else:
            assert status == "merged"
            assert state[gid][1] < gid  # merged into an older id
    minted = set(new_groups) - set(old_groups)
    assert minted and all(g > max(old_groups) for g in minted)  # ids only grow
    check_invariants(engine)


def test_households_and_organisation_links_against_the_generators_truth(hub, sample_silos):
    master(hub)
    engine = hub["engine"]
    truth = {}
    with (sample_silos / "truth.csv").open() as fh:
        for r in csv.DictReader(fh):
            truth[(r["source"], r["source_key"])] = r["entity_id"]
    entity_of_record = {
        rid: truth.get((s, k))
        for rid, s, k in rows(engine, "SELECT id, source, source_key FROM source_records")
    }
    votes: dict[str, Counter] = defaultdict(Counter)
    for rid, gid in xref(engine).items():
        if entity_of_record.get(rid):
            votes[gid][entity_of_record[rid]] += 1
    entity_of_golden = {g: c.most_common(1)[0][0] for g, c in votes.items()}
    household = {}
    employer = {}
    settled = set()  # neither moved nor renamed: every silo agrees on address and family name
    with (sample_silos / "relationships.csv").open() as fh:
        for r in csv.DictReader(fh):
            if r["household_id"]:
                household[r["entity_id"]] = r["household_id"]
            if r["organisation_id"]:
                employer[r["entity_id"]] = r["organisation_id"]
            if r["moved"] == r["renamed"] == "0":
                settled.add(r["entity_id"])
    in_hub = set(entity_of_golden.values())

    def pairs(groups) -> set[tuple[str, str]]:
        out = set()
        for members in groups:
            ents = sorted({e for e in members if e})
            out.update((x, y) for i, x in enumerate(ents) for y in ents[i + 1 :])
        return out

    predicted_groups = defaultdict(list)
    for gid, hid in rows(engine, "SELECT golden_id, household_id FROM household_members"):
        predicted_groups[hid].append(entity_of_golden.get(gid))
    true_groups = defaultdict(list)
    for entity, hid in household.items():
        if entity in in_hub:
            true_groups[hid].append(entity)
    predicted, actual = pairs(predicted_groups.values()), pairs(true_groups.values())
    precision = len(predicted & actual) / len(predicted)
    # A household whose move or marriage only some silos know of cannot be seen as one: recall
    # is measured on households that stayed put.
    steady = {(x, y) for x, y in actual if x in settled and y in settled}
    recall = len(predicted & steady) / len(steady)
    # Measured: precision 1.0, recall 0.79; what is missed are people the matcher left in two
    # golden records, one with an address another silo never had.
    assert precision >= 0.95 and recall >= 0.75, (precision, recall)

    links = rows(
        engine,
        "SELECT p.golden_id, p.organisation_golden_id, o.party_type FROM "
        "golden_records p JOIN golden_records o ON o.golden_id = "
        "p.organisation_golden_id WHERE p.status = 'active'",
    )
    assert links and all(party == "organisation" for _p, _o, party in links)
    right = sum(
        1 for p, o, _ in links if employer.get(entity_of_golden.get(p)) == entity_of_golden.get(o)
    )
    assert right / len(links) >= 0.9, right / len(links)


def test_outbox_is_written_with_the_golden_records_or_not_at_all(hub, monkeypatch):
    engine = hub["engine"]
    config = load_hub_config(hub["config"])

    def boom(name: str) -> None:
        if name == "golden:before_outbox":
            raise RuntimeError("crash between golden records and outbox")

    monkeypatch.setattr("mdm_orchestration.survivorship.writing.crash_point", boom)
    with pytest.raises(RuntimeError):
        consolidate(engine, config, run_id="crashed")
    for table in (
        "golden_records",
        "golden_history",
        "golden_xref",
        "golden_changes",
        "golden_runs",
    ):
        assert rows(engine, f"SELECT count(*) FROM {table}") == [(0,)], table
    monkeypatch.undo()
    consolidate(engine, config, run_id="rerun")
    check_invariants(engine)


@pytest.mark.parametrize(
    "point", ["golden:after_golden_write", "golden:before_outbox", "golden:before_commit"]
)
def test_a_killed_consolidation_leaves_the_hub_as_it_was(hub, point):
    """RELIABILITY.md row 1: SIGKILL at each commit boundary, then a rerun converges."""
    engine = hub["engine"]
    master(hub)
    record_override(engine, *sorted(xref(engine))[:2], "must_link", "test")
    assert dg.materialize(MATCHING, resources=hub["resources"]).success
    before = {
        t: rows(engine, f"SELECT count(*) FROM {t}")[0][0]
        for t in ("golden_records", "golden_history", "golden_changes", "golden_runs")
    }
    script = (
        "import sys; from mdm_orchestration.config import load_hub_config;"
        "from mdm_orchestration.hub.store import create_hub_engine;"
        "from mdm_orchestration.survivorship import consolidate;"
        "consolidate(create_hub_engine(sys.argv[1]), load_hub_config(sys.argv[2]), 'killed')"
    )
    env = {**os.environ, "MDM_CRASH_AT": point}
    proc = subprocess.run(
        [sys.executable, "-c", script, hub["url"], str(hub["config"])],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    after = {t: rows(engine, f"SELECT count(*) FROM {t}")[0][0] for t in before}
    assert after == before
    check_invariants(engine)
    counts = meta(master(hub), "rerun")
    assert counts["merged"] + counts["updated"] >= 1
    check_invariants(engine)


def test_lookup_and_formula_safe_exports(hub, tmp_path, capsys):
    master(hub)
    hub_arg = ["--hub", hub["url"]]
    engine = hub["engine"]
    rid, email, phone = rows(
        engine,
        "SELECT source_record_id, email, phone FROM cleansed_records "
        "WHERE email_valid AND phone_valid AND source='billing' "
        "ORDER BY source_record_id LIMIT 1",
    )[0]
    gid = xref(engine)[rid]
    # Lookups normalise like cleansing: upper case email, a national phone number.
    national = phone.removeprefix("+1")
    for args in (
        ["--email", email.upper()],
        ["--phone", f"({national[:3]}) {national[3:6]}-{national[6:]}"],
    ):
        assert main(["lookup", *args, *hub_arg]) == 0
        found = json.loads(capsys.readouterr().out)
        assert gid in [d["golden_id"] for d in found]
    source, key = rows(engine, "SELECT source, source_key FROM source_records WHERE id=:r", r=rid)[
        0
    ]
    assert main(["lookup", "--source", source, "--key", key, *hub_arg]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert (
        doc["golden_id"] == gid
        and {"source": source, "source_key": key, "record_id": rid} in doc["xref"]
    )
    assert set(doc["lineage"]) >= set(doc["attributes"])
    assert all(doc["lineage"][a]["rule"] for a in doc["attributes"])
    assert main(["lookup", "--email", "nobody@nowhere.invalid", *hub_arg]) == 1
    capsys.readouterr()

    out = {}
    for kind in ("golden", "xref", "changes"):
        out[kind] = tmp_path / f"{kind}.csv"
        assert main(["export", kind, "--out", str(out[kind]), *hub_arg]) == 0
    with out["xref"].open() as fh:
        xrows = list(csv.DictReader(fh))
    assert list(xrows[0]) == ["source", "source_key", "golden_id"]
    assert len(xrows) == len(xref(engine))
    with out["golden"].open() as fh:
        grows = list(csv.DictReader(fh))
    assert list(grows[0])[0] == "golden_id"
    assert len(grows) == len({g for g in xref(engine).values()})
    formula = [r for r in grows if "hyperlink" in (r["given_name"] or "").lower()]
    assert formula and all(r["given_name"].startswith("'=") for r in formula)
    assert all(r["phone"].startswith("'+") for r in grows if r["phone"])
    for r in grows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in r.values() if v)
    with out["changes"].open() as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == len(
            rows(engine, "SELECT seq FROM golden_changes")
        )


def test_a_consolidation_planned_on_stale_state_writes_nothing(hub, monkeypatch):
    """Two consolidations overlapping: the one that commits second notices and writes nothing."""
    from mdm_orchestration.survivorship import writing as store

    engine = hub["engine"]
    config = load_hub_config(hub["config"])
    planned = store.plan
    raced = []

    def plan_then_race(conn, cfg, **kwargs):
        out = planned(conn, cfg, **kwargs)
        if not raced:
            raced.append(None)
            raced[0] = consolidate(engine, cfg, "the other run")
        return out

    monkeypatch.setattr(store, "plan", plan_then_race)
    with pytest.raises(store.ConcurrentConsolidation):
        consolidate(engine, config, "stale")
    assert raced[0].counts["created"] > 0
    assert rows(engine, "SELECT DISTINCT run_id FROM golden_changes") == [("the other run",)]
    check_invariants(engine)
