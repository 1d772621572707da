"""Attribute overrides through the hub (survivorship's ``pin_attribute`` face, as the workbench
and ``mdm override`` call it): applied by the next consolidation with ``override`` lineage,
retired with a review item when the pinned record changes, kept by a full rebuild, undone by a
removal; the incremental path agrees with a clean rebuild throughout (``check_convergence``).

Here rather than in tests/unit: each test works on a copy of the workbench's mastered hub (the
session fixture the pages already build), so they cost seconds, not another hub build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.ingestion import ingest_file
from mdm_orchestration.matching import rebuild_clusters
from mdm_orchestration.survivorship import (
    OverrideError,
    attribute_overrides,
    consolidate,
    lookup,
    needs_consolidation,
    override_history,
    pin_attribute,
    remove_attribute_override,
    review_retired_override,
)
from tests.conftest import CONFIG_DIR
from tests.helpers import check_convergence, check_invariants, write_file
from tests.workbench.conftest import copy_hub, reconsolidate

CONFIG = load_hub_config(CONFIG_DIR)


@pytest.fixture(scope="module")
def settled(workbench_hub, tmp_path_factory) -> str:
    """The workbench hub, copied once and settled (what other tests decided on the shared hub
    reconsolidated): each test starts from a copy of this."""
    url = copy_hub(workbench_hub, tmp_path_factory.mktemp("overrides_hub") / "hub.db")
    engine = create_hub_engine(url)
    reconsolidate(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(settled, tmp_path):
    engine = create_hub_engine(copy_hub(settled, tmp_path / "hub.db"))
    yield engine
    engine.dispose()


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def golden(engine, gid: str) -> dict:
    with engine.connect() as conn:
        return lookup(conn, golden_id=gid)[0]


def override(engine, oid: int):
    with engine.connect() as conn:
        (found,) = [o for o in attribute_overrides(conn) if o.id == oid]
        return found


def billing_member(engine) -> tuple[str, str, str, dict]:
    """A golden record with a billing member and others, the billing key, and its raw row."""
    gid, key, raw = rows(
        engine,
        "SELECT x.golden_id, s.source_key, v.raw FROM golden_xref x "
        "JOIN source_records s ON s.id = x.record_id "
        "JOIN source_record_versions v ON v.extract_id = s.current_extract_id "
        "AND v.row_number = s.current_row_number "
        "JOIN golden_records g ON g.golden_id = x.golden_id "
        "WHERE s.source = 'billing' AND g.member_count >= 2 AND g.party_type = 'person' "
        "ORDER BY x.golden_id LIMIT 1",
    )[0]
    values = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return gid, key, f"billing:{key}", values


def land_billing_row(engine, tmp_path: Path, values: dict, name: str) -> None:
    header = list(values)
    path = write_file(
        tmp_path / "landing" / "billing" / name,
        ";".join(header) + "\n" + ";".join(values[h] or "" for h in header) + "\n",
    )
    ingest_file(engine, CONFIG, path, tmp_path / "landing")


def test_a_record_pin_is_applied_then_retired_with_a_review_item_when_the_record_changes(
    engine, tmp_path
):
    gid, key, ref, values = billing_member(engine)
    oid = pin_attribute(engine, CONFIG, gid, "address", record=ref, by="stella", reason="moved")
    assert override(engine, oid).state == "pending"
    with engine.connect() as conn:
        assert needs_consolidation(conn, CONFIG)
    counts = reconsolidate(engine)
    assert counts["updated"] <= 1
    doc = golden(engine, gid)
    lineage = doc["lineage"]["street"]
    assert (lineage["rule"], lineage["source"], lineage["source_key"]) == (
        "override",
        "billing",
        key,
    )
    assert override(engine, oid).state == "applied"
    check_invariants(engine)
    check_convergence(engine, CONFIG)  # the clean rebuild applies the pin too

    # The billing customer moves: the pinned record's address changed under the pin.
    values.update(
        addr_line1="77 Newhome Avenue",
        addr_line2="",
        city="Lakeview",
        zip="60613",
        state="IL",
        last_updated="2026-11-20 08:00:00",
    )
    land_billing_row(engine, tmp_path, values, "move.csv")
    reconsolidate(engine)
    retired = override(engine, oid)
    assert retired.status == "retired" and retired.review_status == "pending"
    assert "pinned source record" in retired.end_reason
    assert golden(engine, gid)["lineage"]["street"]["rule"] != "override"
    with engine.connect() as conn:
        assert [o.id for o in attribute_overrides(conn, to_review=True)] == [oid]
        actions = [e.action for e in override_history(conn, override_id=oid)]
    assert actions == ["pinned", "applied", "retired"]
    check_invariants(engine)
    check_convergence(engine, CONFIG)  # incremental path == rebuild, once retired
    review_retired_override(engine, oid, "stella", "the new address is right")
    assert override(engine, oid).review_status == "done"
    with pytest.raises(OverrideError, match="not waiting"):
        review_retired_override(engine, oid, "stella", "again")


def test_a_value_pin_survives_a_full_rebuild_and_its_removal_gives_the_value_back(engine):
    gid, _key, _ref, _values = billing_member(engine)
    before = golden(engine, gid)
    oid = pin_attribute(
        engine,
        CONFIG,
        gid,
        "email",
        values={"email": "pinned.by.steward@example.org"},
        by="stella",
        reason="confirmed on the phone",
    )
    reconsolidate(engine)
    doc = golden(engine, gid)
    assert doc["attributes"]["email"] == "pinned.by.steward@example.org"
    assert doc["lineage"]["email"]["rule"] == "override"
    assert override(engine, oid).applied_version == doc["version"]
    change = rows(
        engine,
        "SELECT event_type, changed FROM golden_changes WHERE golden_id = :g "
        "ORDER BY version DESC LIMIT 1",
        g=gid,
    )[0]
    assert change[0] == "updated" and "email" in json.loads(change[1])

    # A full rebuild (every record re-paired and reclustered), then a full consolidation.
    rebuild_clusters(engine, CONFIG)
    consolidate(engine, CONFIG, "rebuild")
    consolidate(engine, CONFIG, "full", full=True)
    again = golden(engine, gid)
    assert again["attributes"]["email"] == "pinned.by.steward@example.org"
    assert again["version"] == doc["version"]  # nothing to change: the pin was kept as it was
    check_invariants(engine)
    check_convergence(engine, CONFIG)

    remove_attribute_override(engine, oid, "stella", "customer withdrew it")
    assert override(engine, oid).state == "removal pending"
    reconsolidate(engine)
    after = golden(engine, gid)
    assert after["attributes"].get("email") == before["attributes"].get("email")
    assert after["lineage"]["email"]["rule"] != "override"
    assert override(engine, oid).state == "removed"
    with engine.connect() as conn:
        actions = [e.action for e in override_history(conn, golden_id=gid)]
    assert actions == ["pinned", "applied", "removed"]
    check_convergence(engine, CONFIG)


def test_pins_that_cannot_be_made_say_why(engine):
    gid, _key, ref, _values = billing_member(engine)
    other = rows(
        engine,
        "SELECT golden_id FROM golden_records WHERE status = 'active' AND golden_id != :g "
        "ORDER BY golden_id LIMIT 1",
        g=gid,
    )[0][0]
    cases = [
        ({"group": "shoe_size", "values": {"x": 1}}, "no attribute group"),
        ({"group": "email", "values": {"phone": "1"}}, "not in the email group"),
        ({"group": "email", "record": ref, "golden": other}, "is not a source record"),
        ({"group": "email", "values": {"email": "a@b.example"}, "reason": " "}, "give a reason"),
        (
            {"group": "email", "values": {"email": "a@b.example"}, "golden": "G9999999999"},
            "no golden",
        ),
        ({"group": "email"}, "either values or a source record"),
    ]
    for case, message in cases:
        with pytest.raises(OverrideError, match=message):
            pin_attribute(
                engine,
                CONFIG,
                case.get("golden", gid),
                case["group"],
                values=case.get("values"),
                record=case.get("record"),
                by="stella",
                reason=case.get("reason", "because"),
            )
    # A second pin of one group replaces the first.
    first = pin_attribute(
        engine, CONFIG, gid, "phone", values={"phone": "+15550001"}, by="s", reason="a"
    )
    second = pin_attribute(
        engine, CONFIG, gid, "phone", values={"phone": "+15550002"}, by="s", reason="b"
    )
    assert override(engine, first).status == "removed"
    assert override(engine, first).end_reason == f"replaced by override {second}"
    reconsolidate(engine)
    assert golden(engine, gid)["attributes"]["phone"] == "+15550002"


def test_mdm_override_pin_list_remove_and_split_undo(engine, capsys):
    from mdm_orchestration.cli import main

    hub = engine.url.render_as_string(hide_password=False)
    gid, _key, ref, _values = billing_member(engine)

    def mdm(*args: str) -> int:
        return main([*args, "--hub", hub])

    assert (
        mdm("override", "pin", gid, "email", "--set", "email=cli@example.org", "--reason", "r") == 0
    )
    assert mdm("override", "pin", gid, "email", "--set", "phone=1", "--reason", "r") == 2
    assert mdm("override", "pin", gid, "address", "--record", ref, "--reason", "r", "--json") == 0
    capsys.readouterr()
    assert mdm("override", "list", "--golden", gid, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(o["group"], o["state"]) for o in listed] == [
        ("address", "pending"),
        ("email", "pending"),
    ]
    reconsolidate(engine)
    assert mdm("override", "list", "--golden", gid) == 0
    assert capsys.readouterr().out.count("applied") == 2
    assert mdm("override", "remove", str(listed[1]["id"]), "--reason", "wrong") == 0
    assert mdm("override", "remove", str(listed[1]["id"]), "--reason", "again") == 2
    assert mdm("override", "reviewed", str(listed[0]["id"]), "--reason", "x") == 2

    members = rows(engine, "SELECT source, source_key FROM golden_xref WHERE golden_id = :g", g=gid)
    a, b = (f"{s}:{k}" for s, k in members[:2])
    assert mdm("split", a, b, "--reason", "different") == 0
    assert mdm("split", a, b, "--undo", "--reason", "the same after all") == 0
    assert mdm("split", a, b, "--undo") == 1
    removed = rows(engine, "SELECT kind, removed_reason FROM match_override_removals")
    assert ("cannot_link", "the same after all") in [tuple(r) for r in removed]


def test_an_erasure_takes_the_persons_overrides_with_it(engine, tmp_path):
    from mdm_orchestration.hub.tables import OVERRIDE_REMOVALS, utcnow
    from mdm_orchestration.syndication import erase
    from mdm_orchestration.workbench.audit import audit

    gid, _key, _ref, _values = billing_member(engine)
    pin_attribute(
        engine, CONFIG, gid, "email", values={"email": "erase.me@example.org"}, by="s", reason="r"
    )
    # What else a steward left about the person: an audited pin with their data in its reason
    # and details, and a cannot-link taken back (kept with its reason).
    audit(engine, "stella", "attribute_pin", f"golden:{gid}", "erase.me said so", email="erase.me")
    (member, other) = [
        r[0]
        for r in rows(
            engine,
            "SELECT record_id FROM golden_xref WHERE golden_id = :g ORDER BY record_id LIMIT 2",
            g=gid,
        )
    ]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(OVERRIDE_REMOVALS).values(
                left_record_id=member,
                right_record_id=other,
                kind="cannot_link",
                reason="erase.me is two people",
                created_by="stella",
                created_at=now,
                removed_by="stella",
                removed_at=now,
                removed_reason="erase.me is one person",
            )
        )
    (tmp_path / "landing").mkdir()
    erase(
        engine,
        golden_id=gid,
        by="dpo",
        ledger=tmp_path / "erasures.jsonl",
        config=CONFIG,
        landing=tmp_path / "landing",
        home=tmp_path,
    )
    assert rows(engine, "SELECT count(*) FROM attribute_overrides WHERE golden_id = :g", g=gid) == [
        (0,)
    ]
    assert rows(
        engine, "SELECT count(*) FROM attribute_override_history WHERE golden_id = :g", g=gid
    ) == [(0,)]
    # Who did what stays; the reasons go (other tests on the shared hub may have audited this
    # golden record too).
    audited = rows(
        engine,
        "SELECT actor, action, reason FROM workbench_audit WHERE target = :t",
        t=f"golden:{gid}",
    )
    assert ("stella", "attribute_pin", None) in audited
    assert all(reason is None for _actor, _action, reason in audited)
    dump = repr(rows(engine, "SELECT * FROM workbench_audit")) + repr(
        rows(engine, "SELECT * FROM match_override_removals")
    )
    assert "erase.me" not in dump
    reconsolidate(engine)
    check_invariants(engine)
