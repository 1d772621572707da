"""Keeping households up to date with the golden records, in the hub (the grouping itself is
the pure :func:`build_households`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, tuple_, update

from mdm_orchestration.hub.bulk import bulk_insert
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import (
    CHANGES,
    CURSORS,
    GOLDEN,
    HISTORY,
    HOUSEHOLD_MEMBERS,
    HOUSEHOLDS,
    PERSON,
    in_chunks,
    utcnow,
)
from mdm_orchestration.survivorship.business_events import (
    HouseholdBefore,
    HouseholdMove,
    household_move,
)
from mdm_orchestration.survivorship.consolidate import UPDATED, Plan
from mdm_orchestration.survivorship.households import Household, build_households
from mdm_orchestration.survivorship.rows import ACTIVE

HOUSEHOLDS_CURSOR = "households"
HOUSEHOLD_COLUMNS = ("household_id", "address_key", "family_key", "member_count", "updated_at")
#: Households joined to their members.
_MEMBERSHIP = HOUSEHOLD_MEMBERS.join(
    HOUSEHOLDS, HOUSEHOLDS.c.household_id == HOUSEHOLD_MEMBERS.c.household_id
)


def rebuild_households(engine: Engine) -> dict[str, int]:
    """Households of every active person golden record, replaced in one transaction."""
    return refresh_households(engine, full=True)


def refresh_households(engine: Engine, *, full: bool = False) -> dict[str, int]:
    """Bring households up to date with the golden records. A household depends only on the
    persons at its address, so only the addresses of golden records changed since the last
    refresh (read from the outbox, ``golden_changes``) are redone: the changed records' old
    and new addresses. The first refresh, or ``full``, redoes every household. One
    transaction; the counts returned are the whole hub's."""
    with engine.connect() as conn, conn.begin():
        upto = int(conn.execute(select(func.coalesce(func.max(CHANGES.c.seq), 0))).scalar_one())
        cursor = conn.execute(
            select(CURSORS.c.value).where(CURSORS.c.name == HOUSEHOLDS_CURSOR)
        ).scalar_one_or_none()
        full = full or cursor is None
        if full:
            persons = conn.execute(
                select(GOLDEN.c.golden_id, GOLDEN.c["keys"]).where(
                    GOLDEN.c.status == ACTIVE, GOLDEN.c.party_type == PERSON
                )
            ).all()
            addresses: set[str] = set()
            changed: set[str] = set()
        else:
            changed = set(
                conn.execute(
                    select(CHANGES.c.golden_id).distinct().where(CHANGES.c.seq > cursor)
                ).scalars()
            )
            persons, addresses = _household_neighbourhood(conn, changed)
    households = build_households(
        (gid, keys.get("address_key"), keys.get("family_key")) for gid, keys in persons
    )
    with write_transaction(engine) as conn:
        if full:
            conn.execute(delete(HOUSEHOLD_MEMBERS))
            conn.execute(delete(HOUSEHOLDS))
        elif addresses or changed:
            _delete_households_at(conn, addresses, changed)
        _insert_households(conn, households)
        _record_version_households(conn, 0 if cursor is None else int(cursor), upto)
        conn.execute(delete(CURSORS).where(CURSORS.c.name == HOUSEHOLDS_CURSOR))
        conn.execute(CURSORS.insert().values(name=HOUSEHOLDS_CURSOR, value=upto))
        totals = _totals(conn)
    return totals | {"households_redone": len(households), "full": int(full)}


def _record_version_households(conn: Connection, after: int, upto: int) -> None:
    """Write, on the version each outbox event in ``(after, upto]`` announces, the household
    its golden record is in now that the households are refreshed ("" for none): a message
    about that version carries it however late it is delivered or replayed."""
    announced = select(CHANGES.c.golden_id, CHANGES.c.version).where(
        CHANGES.c.seq > after, CHANGES.c.seq <= upto
    )
    member = (
        select(HOUSEHOLD_MEMBERS.c.household_id)
        .where(HOUSEHOLD_MEMBERS.c.golden_id == HISTORY.c.golden_id)
        .scalar_subquery()
    )
    conn.execute(
        update(HISTORY)
        .where(tuple_(HISTORY.c.golden_id, HISTORY.c.version).in_(announced))
        .values(household_id=func.coalesce(member, ""))
    )


def _delete_households_at(conn: Connection, addresses: set[str], changed: set[str]) -> None:
    """The households at ``addresses`` and those of the ``changed`` golden records."""
    old: set[str] = set()
    for cond in in_chunks(HOUSEHOLDS.c.address_key, sorted(addresses)):
        old.update(conn.execute(select(HOUSEHOLDS.c.household_id).where(cond)).scalars())
    for cond in in_chunks(HOUSEHOLD_MEMBERS.c.golden_id, sorted(changed)):
        old.update(conn.execute(select(HOUSEHOLD_MEMBERS.c.household_id).where(cond)).scalars())
    for cond in in_chunks(HOUSEHOLD_MEMBERS.c.household_id, sorted(old)):
        conn.execute(delete(HOUSEHOLD_MEMBERS).where(cond))
    for cond in in_chunks(HOUSEHOLDS.c.household_id, sorted(old)):
        conn.execute(delete(HOUSEHOLDS).where(cond))


def _insert_households(conn: Connection, households: list[Household]) -> None:
    now = utcnow()
    bulk_insert(
        conn,
        "households",
        HOUSEHOLD_COLUMNS,
        [(h.household_id, h.address_key, h.family_key, len(h.members), now) for h in households],
    )
    bulk_insert(
        conn,
        "household_members",
        ("golden_id", "household_id"),
        [(g, h.household_id) for h in households for g in h.members],
    )


def _totals(conn: Connection) -> dict[str, int]:
    """The whole hub's household counts."""
    size = HOUSEHOLDS.c.member_count
    totals = conn.execute(
        select(
            func.count().label("households"),
            func.coalesce(func.sum(size), 0).label("persons"),
            func.count().filter(size > 1).label("multi"),
            func.coalesce(func.sum(size).filter(size > 1), 0).label("persons_in_multi"),
            func.coalesce(func.max(size), 0).label("largest"),
        )
    ).one()
    return {
        "persons_in_households": int(totals.persons),
        "households": int(totals.households),
        "multi_person_households": int(totals.multi),
        "persons_in_multi_person_households": int(totals.persons_in_multi),
        "largest_household": int(totals.largest),
    }


def _active_persons(conn: Connection, golden_ids: set[str]) -> list[tuple[str, Any]]:
    """(golden id, keys) of the active persons among ``golden_ids``."""
    query = select(GOLDEN.c.golden_id, GOLDEN.c["keys"], GOLDEN.c.status, GOLDEN.c.party_type)
    persons = []
    for cond in in_chunks(GOLDEN.c.golden_id, sorted(golden_ids)):
        persons += [
            (g, k)
            for g, k, status, party in conn.execute(query.where(cond))
            if status == ACTIVE and party == PERSON
        ]
    return persons


def _household_neighbourhood(
    conn: Connection, changed: set[str]
) -> tuple[list[tuple[str, Any]], set[str]]:
    """The active persons whose households a change of ``changed`` golden records can alter
    (everyone at those records' old and new addresses), and those addresses."""
    addresses: set[str] = set()
    for cond in in_chunks(GOLDEN.c.golden_id, sorted(changed)):
        for keys, status, party in conn.execute(
            select(GOLDEN.c["keys"], GOLDEN.c.status, GOLDEN.c.party_type).where(cond)
        ):
            if status == ACTIVE and party == PERSON and (keys or {}).get("address_key"):
                addresses.add(keys["address_key"])
    for cond in in_chunks(HOUSEHOLD_MEMBERS.c.golden_id, sorted(changed)):
        addresses.update(
            conn.execute(
                select(HOUSEHOLDS.c.address_key).select_from(_MEMBERSHIP).where(cond)
            ).scalars()
        )
    ids = set(changed)
    for cond in in_chunks(HOUSEHOLDS.c.address_key, sorted(addresses)):
        ids.update(
            conn.execute(
                select(HOUSEHOLD_MEMBERS.c.golden_id).select_from(_MEMBERSHIP).where(cond)
            ).scalars()
        )
    return _active_persons(conn, ids), addresses


def household_moves(engine: Engine, plan: Plan) -> dict[str, HouseholdMove]:
    """For each person a plan updates: whether the update puts it with others in a household
    or takes it out of one (the business events ``joined_household``/``left_household``),
    judged against the households as they stand before the plan is written (the households
    asset refreshes them after each consolidation)."""
    persons = {
        e.golden_id: plan.states[e.golden_id]
        for e in plan.events
        if e.event_type == UPDATED and plan.states[e.golden_id].party_type == PERSON
    }
    if not persons:
        return {}
    columns = (
        HOUSEHOLDS.c.household_id,
        HOUSEHOLDS.c.address_key,
        HOUSEHOLDS.c.family_key,
        HOUSEHOLDS.c.member_count,
    )
    before: dict[str, HouseholdBefore] = {}
    at: dict[str, list[HouseholdBefore]] = {}
    # Each state's keys decoded once (a plan keeps them as JSON).
    keys = {g: s.keys for g, s in persons.items()}
    addresses = sorted({k for ks in keys.values() if (k := ks.get("address_key"))})
    with engine.connect() as conn:
        for cond in in_chunks(HOUSEHOLD_MEMBERS.c.golden_id, sorted(persons)):
            rows = conn.execute(
                select(HOUSEHOLD_MEMBERS.c.golden_id, *columns).select_from(_MEMBERSHIP).where(cond)
            )
            before.update({r[0]: HouseholdBefore(*r[1:]) for r in rows})
        for cond in in_chunks(HOUSEHOLDS.c.address_key, addresses):
            for r in conn.execute(select(*columns).where(cond).order_by(HOUSEHOLDS.c.household_id)):
                at.setdefault(r.address_key, []).append(HouseholdBefore(*r))
    out = {}
    for golden_id in persons:
        address, family = keys[golden_id].get("address_key"), keys[golden_id].get("family_key")
        move = household_move(before.get(golden_id), address, family, at.get(address or "", []))
        if move.joined or move.left:
            out[golden_id] = move
    return out
