"""The dead-letter queue: outbox events a subscriber refused permanently, and the events of the
same golden record held behind them (``dead_letters``; the delivery loop is in ``delivery``).

States of a row:

- ``dead``: the event the subscriber refused ``dead_letter_after`` times (at most one per
  subscriber and golden record at a time);
- ``held``: a later event of that golden record, not sent, so that the subscriber never gets a
  golden record's changes out of order;
- ``queued``: ``retry`` asked for it; the next delivery sends it (in outbox order) before
  anything new;
- resolved: ``delivered`` (sent by a retry, or nothing for the subscriber any more),
  ``dropped`` (``drop``, with a reason and who) or ``superseded`` (an erasure of the golden
  record was delivered, which nothing older may follow).

``retry`` and ``drop`` act on whole golden records (the dead event and everything held behind
it), so the order per golden record survives them, and both are idempotent: a second call finds
nothing left to do. Rows hold ids, counts and error classes only, never customer values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, tuple_

from mdm_orchestration.hub.store import as_utc, write_transaction
from mdm_orchestration.hub.tables import DEAD_LETTERS, utcnow

DEAD, HELD, QUEUED = "dead", "held", "queued"
DELIVERED, DROPPED, SUPERSEDED = "delivered", "dropped", "superseded"
#: States that block a golden record's later events.
UNRESOLVED = (DEAD, HELD, QUEUED)


@dataclass(frozen=True)
class DeadLetter:
    """One row of the dead-letter queue (ids and error classes, no customer values)."""

    subscriber: str
    event_id: str
    seq: int | None
    golden_id: str
    version: int
    state: str
    attempts: int
    error_class: str | None
    error_status: int | None
    dead_lettered_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "subscriber": self.subscriber,
            "event_id": self.event_id,
            "seq": self.seq,
            "golden_id": self.golden_id,
            "version": self.version,
            "state": self.state,
            "attempts": self.attempts,
            "error_class": self.error_class,
            "error_status": self.error_status,
            "dead_lettered_at": self.dead_lettered_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "reason": self.reason,
        }


_COLUMNS = (
    DEAD_LETTERS.c.subscriber,
    DEAD_LETTERS.c.event_id,
    DEAD_LETTERS.c.seq,
    DEAD_LETTERS.c.golden_id,
    DEAD_LETTERS.c.version,
    DEAD_LETTERS.c.state,
    DEAD_LETTERS.c.attempts,
    DEAD_LETTERS.c.error_class,
    DEAD_LETTERS.c.error_status,
    DEAD_LETTERS.c.dead_lettered_at,
    DEAD_LETTERS.c.resolved_at,
    DEAD_LETTERS.c.resolved_by,
    DEAD_LETTERS.c.reason,
)


def _row(r: Any) -> DeadLetter:  # noqa: ANN401
    return DeadLetter(
        subscriber=r.subscriber,
        event_id=r.event_id,
        seq=None if r.seq is None else int(r.seq),
        golden_id=r.golden_id,
        version=int(r.version),
        state=r.state,
        attempts=int(r.attempts),
        error_class=r.error_class,
        error_status=r.error_status,
        dead_lettered_at=as_utc(r.dead_lettered_at),
        resolved_at=as_utc(r.resolved_at) if r.resolved_at else None,
        resolved_by=r.resolved_by,
        reason=r.reason,
    )


def _order() -> tuple[Any, ...]:
    """Outbox order within a subscriber: a snapshot row (no seq) before the changes."""
    return (
        DEAD_LETTERS.c.subscriber,
        DEAD_LETTERS.c.seq.asc().nulls_first(),
        DEAD_LETTERS.c.id,
    )


def list_dead_letters(
    engine: Engine,
    *,
    subscriber: str | None = None,
    event_id: str | None = None,
    include_resolved: bool = False,
) -> list[DeadLetter]:
    """The dead-letter rows (unresolved ones unless ``include_resolved``), in outbox order."""
    query = select(*_COLUMNS)
    if subscriber is not None:
        query = query.where(DEAD_LETTERS.c.subscriber == subscriber)
    if event_id is not None:
        query = query.where(DEAD_LETTERS.c.event_id == event_id)
    if not include_resolved:
        query = query.where(DEAD_LETTERS.c.state.in_(UNRESOLVED))
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query.order_by(*_order()))]


def dead_letter_counts(
    conn: Connection, subscriber: str | None = None
) -> dict[str, dict[str, int]]:
    """Per subscriber, unresolved rows by state (``dead``, ``held``, ``queued``)."""
    query = (
        select(DEAD_LETTERS.c.subscriber, DEAD_LETTERS.c.state, func.count())
        .where(DEAD_LETTERS.c.state.in_(UNRESOLVED))
        .group_by(DEAD_LETTERS.c.subscriber, DEAD_LETTERS.c.state)
    )
    if subscriber is not None:
        query = query.where(DEAD_LETTERS.c.subscriber == subscriber)
    out: dict[str, dict[str, int]] = {}
    for name, state, n in conn.execute(query):
        out.setdefault(name, dict.fromkeys(UNRESOLVED, 0))[state] = int(n)
    return out


def _targets(
    conn: Connection, subscriber: str | None, event_id: str | None, states: tuple[str, ...]
) -> list[tuple[str, str]]:
    """The (subscriber, golden id) pairs with a row in ``states`` matching the filters."""
    query = select(DEAD_LETTERS.c.subscriber, DEAD_LETTERS.c.golden_id).where(
        DEAD_LETTERS.c.state.in_(states)
    )
    if subscriber is not None:
        query = query.where(DEAD_LETTERS.c.subscriber == subscriber)
    if event_id is not None:
        query = query.where(DEAD_LETTERS.c.event_id == event_id)
    return sorted({(r.subscriber, r.golden_id) for r in conn.execute(query.distinct())})


def _update(
    conn: Connection, targets: list[tuple[str, str]], states: tuple[str, ...], **values: Any
) -> int:
    changed = 0
    for i in range(0, len(targets), 250):
        chunk = targets[i : i + 250]
        changed += conn.execute(
            DEAD_LETTERS.update()
            .where(
                # The subscribers and golden ids bound the search by the (subscriber,
                # golden_id) index: on the pairs alone, SQLite read every row for each chunk.
                DEAD_LETTERS.c.subscriber.in_(sorted({s for s, _ in chunk})),
                DEAD_LETTERS.c.golden_id.in_(sorted({g for _, g in chunk})),
                tuple_(DEAD_LETTERS.c.subscriber, DEAD_LETTERS.c.golden_id).in_(chunk),
                DEAD_LETTERS.c.state.in_(states),
            )
            .values(**values)
        ).rowcount
    return changed


def retry_dead_letters(
    engine: Engine, *, subscriber: str | None = None, event_id: str | None = None
) -> int:
    """Queue the dead events (one with ``event_id``, or all) and the events held behind them
    for the next delivery; the rows queued (0 when nothing is dead or held: idempotent)."""
    with write_transaction(engine) as conn:
        targets = _targets(conn, subscriber, event_id, (DEAD, HELD))
        return _update(conn, targets, (DEAD, HELD), state=QUEUED)


def drop_dead_letters(
    engine: Engine,
    *,
    reason: str,
    by: str,
    subscriber: str | None = None,
    event_id: str | None = None,
) -> int:
    """Give up on the dead events (one with ``event_id``, or all) and those held behind them:
    marked ``dropped`` with ``reason`` and ``by``; the golden record's later events flow again.
    The rows dropped (0 when nothing is left: idempotent)."""
    if not reason.strip():
        raise ValueError("a reason is required to drop dead letters")
    with write_transaction(engine) as conn:
        targets = _targets(conn, subscriber, event_id, UNRESOLVED)
        return _update(
            conn,
            targets,
            UNRESOLVED,
            state=DROPPED,
            reason=reason.strip(),
            resolved_by=by[:80],
            resolved_at=utcnow(),
        )


def blocked_goldens(conn: Connection, subscriber: str, golden_ids: set[str]) -> dict[str, str]:
    """Of ``golden_ids``, those with unresolved rows for ``subscriber``: ``held`` when one is
    dead (a later event waits behind it), else ``queued`` (a retry is on its way)."""
    out: dict[str, str] = {}
    ids = sorted(golden_ids)
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(DEAD_LETTERS.c.golden_id, DEAD_LETTERS.c.state).where(
                DEAD_LETTERS.c.subscriber == subscriber,
                DEAD_LETTERS.c.golden_id.in_(ids[i : i + 500]),
                DEAD_LETTERS.c.state.in_(UNRESOLVED),
            )
        )
        for golden_id, state in rows:
            if state == DEAD or out.get(golden_id) != HELD:
                out[golden_id] = HELD if state in (DEAD, HELD) else QUEUED
    return out


def unblock_orphans(conn: Connection, subscriber: str) -> int:
    """Queue held rows whose golden record has no dead row any more (a retry or a drop that
    raced a delivery holding a new event): nothing stays held behind nothing."""
    dead = (
        select(DEAD_LETTERS.c.golden_id)
        .where(DEAD_LETTERS.c.subscriber == subscriber, DEAD_LETTERS.c.state == DEAD)
        .scalar_subquery()
    )
    return conn.execute(
        DEAD_LETTERS.update()
        .where(
            and_(
                DEAD_LETTERS.c.subscriber == subscriber,
                DEAD_LETTERS.c.state == HELD,
                DEAD_LETTERS.c.golden_id.not_in(dead),
            )
        )
        .values(state=QUEUED)
    ).rowcount


__all__ = [
    "DEAD",
    "DELIVERED",
    "DROPPED",
    "DeadLetter",
    "HELD",
    "QUEUED",
    "SUPERSEDED",
    "UNRESOLVED",
    "blocked_goldens",
    "dead_letter_counts",
    "drop_dead_letters",
    "list_dead_letters",
    "retry_dead_letters",
    "unblock_orphans",
]
