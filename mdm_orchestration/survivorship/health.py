"""What golden_records' and households' checks verify, and the statistics their runs report."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from mdm_orchestration.hub.tables import (
    CHANGES,
    CLEANSED,
    CURRENT_CLEANSED,
    GOLDEN,
    HOUSEHOLD_MEMBERS,
    PERSON,
    SOURCES,
    XREF,
    chunks,
)
from mdm_orchestration.survivorship.rows import ACTIVE


@dataclass
class GoldenHealth:
    active_records: int  # current, cleansed source records
    mapped_records: int  # of those, mapped to an active golden record
    xref_rows: int  # cross-reference rows (each a record id, unique by key)
    xref_to_inactive: int  # rows pointing at a merged or retired golden record
    goldens_without_members: int
    golden_rows: int
    distinct_golden_ids: int
    lineage_gaps: int  # attributes of active golden records without a lineage entry
    checked_for_lineage: int


@dataclass
class _Mapping:
    """How source records map to golden records (over the hub or a scope)."""

    active_records: int
    mapped: int
    xref_rows: int
    to_inactive: int
    empty: int


@dataclass(frozen=True)
class GoldenStatistics:
    """The whole hub's golden records and outbox, as golden_records' metadata shows them."""

    lifecycles: dict[str, int]  # active golden records by lifecycle
    linked_contacts: int  # active contacts linked to an organisation's golden record
    events_total: int
    last_seq: int


def golden_health(
    engine: Engine, run_id: str | None = None, scope: set[str] | None = None
) -> GoldenHealth:
    """The facts behind golden_records' asset checks, over the whole hub, or over ``scope``:
    the source records an incremental consolidation considered and the golden records they
    map to (a check then costs what the run cost, not what the hub holds; a full run checks
    everything). Lineage is checked on the golden records the run wrote (``run_id``), or on
    all of them."""
    with engine.connect() as conn:
        if scope is None:
            mapping = _hub_mapping(conn)
        else:
            mapping = _scope_mapping(conn, sorted(scope), run_id)
        # Golden ids are the primary key: counted over the whole table, from its index.
        golden_rows, distinct = conn.execute(
            select(func.count(), func.count(GOLDEN.c.golden_id.distinct()))
        ).one()
        gaps, checked = _lineage_gaps(conn, run_id)
    return GoldenHealth(
        mapping.active_records,
        mapping.mapped,
        mapping.xref_rows,
        mapping.to_inactive,
        mapping.empty,
        int(golden_rows),
        int(distinct),
        gaps,
        checked,
    )


def _count(conn: Connection, query) -> int:  # type: ignore[no-untyped-def]
    return int(conn.execute(query).scalar_one())


def _hub_mapping(conn: Connection) -> _Mapping:
    count = select(func.count())
    return _Mapping(
        active_records=_count(conn, count.select_from(CURRENT_CLEANSED)),
        mapped=_count(
            conn,
            count.select_from(
                CURRENT_CLEANSED.join(XREF, XREF.c.record_id == CLEANSED.c.source_record_id).join(
                    GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id
                )
            ).where(GOLDEN.c.status == ACTIVE),
        ),
        xref_rows=_count(conn, count.select_from(XREF)),
        to_inactive=_count(
            conn,
            count.select_from(XREF.outerjoin(GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id)).where(
                (GOLDEN.c.status != ACTIVE) | GOLDEN.c.golden_id.is_(None)
            ),
        ),
        empty=_count(
            conn,
            count.select_from(GOLDEN).where(
                GOLDEN.c.status == ACTIVE,
                ~select(XREF.c.record_id).where(XREF.c.golden_id == GOLDEN.c.golden_id).exists(),
            ),
        ),
    )


def _scope_mapping(conn: Connection, scope: list[str], run_id: str | None) -> _Mapping:
    # By record and golden id only, statuses compared here: with a status in the filter
    # the database would start from the status index and read every active record.
    out = _Mapping(0, 0, 0, 0, 0)
    goldens: set[str] = set()
    for chunk in chunks(scope):
        out.active_records += _count(
            conn, select(func.count()).select_from(CURRENT_CLEANSED).where(SOURCES.c.id.in_(chunk))
        )
        out.mapped += sum(
            st == ACTIVE
            for (st,) in conn.execute(
                select(GOLDEN.c.status)
                .select_from(
                    CURRENT_CLEANSED.join(XREF, XREF.c.record_id == SOURCES.c.id).join(
                        GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id
                    )
                )
                .where(SOURCES.c.id.in_(chunk))
            )
        )
        for golden, status in conn.execute(
            select(XREF.c.golden_id, GOLDEN.c.status)
            .select_from(XREF.outerjoin(GOLDEN, GOLDEN.c.golden_id == XREF.c.golden_id))
            .where(XREF.c.record_id.in_(chunk))
        ):
            out.xref_rows += 1
            out.to_inactive += status != ACTIVE
            goldens.add(golden)
    if run_id is not None:
        goldens.update(
            conn.execute(
                select(GOLDEN.c.golden_id).where(GOLDEN.c.updated_run_id == run_id)
            ).scalars()
        )
    for chunk in chunks(sorted(goldens)):
        active = {
            g
            for g, st in conn.execute(
                select(GOLDEN.c.golden_id, GOLDEN.c.status).where(GOLDEN.c.golden_id.in_(chunk))
            )
            if st == ACTIVE
        }
        members = set(
            conn.execute(
                select(XREF.c.golden_id).distinct().where(XREF.c.golden_id.in_(chunk))
            ).scalars()
        )
        out.empty += len(active - members)
    return out


def _lineage_gaps(conn: Connection, run_id: str | None) -> tuple[int, int]:
    """Attributes without a lineage entry, and the active golden records checked."""
    query = select(GOLDEN.c.attributes, GOLDEN.c.lineage, GOLDEN.c.status)
    if run_id is not None:  # by the run's index; the status is compared here
        query = query.where(GOLDEN.c.updated_run_id == run_id)
    gaps = checked = 0
    for attributes, lineage, status in conn.execute(query):
        if status != ACTIVE:
            continue
        checked += 1
        gaps += sum(1 for name in attributes if name not in lineage)
    return gaps, checked


def golden_statistics(engine: Engine) -> GoldenStatistics:
    with engine.connect() as conn:
        lifecycles = conn.execute(
            select(GOLDEN.c.lifecycle, func.count())
            .where(GOLDEN.c.status == ACTIVE)
            .group_by(GOLDEN.c.lifecycle)
        ).all()
        linked = _count(
            conn,
            select(func.count())
            .select_from(GOLDEN)
            .where(GOLDEN.c.status == ACTIVE, GOLDEN.c.organisation_golden_id.is_not(None)),
        )
        total_events, last_seq = conn.execute(select(func.count(), func.max(CHANGES.c.seq))).one()
    return GoldenStatistics(
        lifecycles={str(k): int(v) for k, v in lifecycles},
        linked_contacts=linked,
        events_total=int(total_events),
        last_seq=int(last_seq or 0),
    )


def stray_household_members(engine: Engine) -> int:
    """Household members that are not an active person's golden record (households' check)."""
    with engine.connect() as conn:
        return _count(
            conn,
            select(func.count())
            .select_from(
                HOUSEHOLD_MEMBERS.outerjoin(
                    GOLDEN, GOLDEN.c.golden_id == HOUSEHOLD_MEMBERS.c.golden_id
                )
            )
            .where(
                (GOLDEN.c.status != ACTIVE)
                | (GOLDEN.c.party_type != PERSON)
                | GOLDEN.c.golden_id.is_(None)
            ),
        )


def pending_events(conn: Connection, after_seq: int = 0) -> int:
    """Outbox events after ``after_seq``."""
    return _count(conn, select(func.count()).select_from(CHANGES).where(CHANGES.c.seq > after_seq))
