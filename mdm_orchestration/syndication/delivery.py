"""Delivering the outbox to one subscriber: snapshot first, then changes, at least once.

State lives in the hub, never only in Dagster: ``subscriber_state`` holds the cursor (the last
outbox event dealt with), ``deliveries`` what the subscriber holds of each golden record. A
batch is sent, then its ledger rows and the cursor are committed together: a crash in between
resends the batch (same event ids, so receivers drop the duplicates); nothing is skipped.
Events are read in outbox order, so each golden record's changes arrive in order. After
``max_attempts`` failures in a row the subscriber is marked failing and the run fails; the next
run resumes at the first undelivered event.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, func, select, tuple_

from mdm_orchestration.config import HubConfig, Subscriber
from mdm_orchestration.hub.bulk import bulk_upsert
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.store import mdm_home, write_transaction
from mdm_orchestration.hub.tables import (
    CHANGES,
    DELIVERIES,
    GOLDEN,
    HISTORY,
    SUBSCRIBERS,
    chunks,
    in_chunks,
    utcnow,
)
from mdm_orchestration.survivorship import ACTIVE, event_id
from mdm_orchestration.syndication.messages import (
    GoldenVersion,
    Held,
    Message,
    OutboxEvent,
    decide,
    upsert,
    why_not,
)
from mdm_orchestration.syndication.transports import DeliveryError, Transport, make_transport

LEDGER_COLUMNS = ("subscriber", "golden_id", "version", "event_id", "present", "delivered_at")


class SubscriberFailing(RuntimeError):
    """Delivery failed ``max_attempts`` times in a row; the subscriber is marked failing."""


@dataclass
class DeliveryResult:
    subscriber: str
    delivered: int = 0
    snapshot: int = 0
    skipped: int = 0
    batches: int = 0
    retries: int = 0
    cursor: int = 0
    pending: int = 0


class Step(NamedTuple):
    """One planned step of a delivery."""

    seq: int | None  # the outbox seq it settles (None in a snapshot)
    message: Message | None  # None: the event is nothing for this subscriber
    entry: tuple[str, Held] | None  # the ledger entry afterwards (golden id, what is held)


def _state(conn: Connection, name: str) -> Any:  # noqa: ANN401
    return conn.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.subscriber == name)).first()


def ensure_state(engine: Engine, name: str, sub: Subscriber) -> Any:  # noqa: ANN401
    """The subscriber's state row, created on its first run. Without a snapshot it starts at
    the end of the outbox (changes from now on)."""
    with write_transaction(engine) as conn:
        row = _state(conn, name)
        if row is None:
            last = conn.execute(select(func.coalesce(func.max(CHANGES.c.seq), 0))).scalar_one()
            conn.execute(
                SUBSCRIBERS.insert().values(
                    subscriber=name,
                    cursor_seq=0 if sub.snapshot else last,
                    snapshot_done=not sub.snapshot,
                    snapshot_seq=None,
                    snapshot_after=None,
                    status="ok",
                    attempts=0,
                    delivered_total=0,
                    updated_at=utcnow(),
                )
            )
            row = _state(conn, name)
    return row


def _held(conn: Connection, name: str, golden_ids: set[str]) -> dict[str, Held]:
    out = {}
    for cond in in_chunks(DELIVERIES.c.golden_id, golden_ids):
        rows = conn.execute(
            select(DELIVERIES.c.golden_id, DELIVERIES.c.version, DELIVERIES.c.present).where(
                DELIVERIES.c.subscriber == name, cond
            )
        )
        out.update({g: Held(v, bool(p)) for g, v, p in rows})
    return out


def _versions(conn: Connection, keys: set[tuple[str, int]]) -> dict[tuple[str, int], GoldenVersion]:
    out = {}
    for chunk in chunks(keys):  # type: ignore[arg-type]
        rows = conn.execute(
            select(
                HISTORY.c.golden_id,
                HISTORY.c.version,
                HISTORY.c.status,
                HISTORY.c.party_type,
                HISTORY.c.attributes,
                HISTORY.c.consents,
                HISTORY.c.lifecycle,
                HISTORY.c.sources,
                HISTORY.c.merged_into,
            ).where(tuple_(HISTORY.c.golden_id, HISTORY.c.version).in_(chunk))
        )
        for r in rows:
            version = GoldenVersion(*r)
            out[(version.golden_id, version.version)] = version
    return out


def backoff_delay(sub: Subscriber, failures: int, rng: random.Random | None = None) -> float:
    """The wait after ``failures`` failures in a row: doubling from ``backoff_seconds``, capped
    at ``max_backoff_seconds``, with equal jitter (between half and all of it) so subscribers
    failing together do not all retry at one instant."""
    if failures <= 0:
        return 0.0
    ceiling = min(sub.max_backoff_seconds, sub.backoff_seconds * 2.0 ** min(failures - 1, 60))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


class _Run:
    def __init__(
        self,
        engine: Engine,
        config: HubConfig,
        name: str,
        transport: Transport,
        sleep: Callable[[float], None],
    ) -> None:
        self.engine, self.name, self.transport, self.sleep = engine, name, transport, sleep
        self.sub = config.subscriptions.subscribers[name]
        self.result = DeliveryResult(name)

    def commit(
        self,
        steps: list[Step],
        *,
        cursor: int | None = None,
        snapshot_after: str | None = None,
        snapshot_done: bool = False,
    ) -> None:
        now = utcnow()
        ledger: dict[str, tuple[Any, ...]] = {}
        delivered = 0
        for _seq, message, entry in steps:
            if entry is not None:
                golden_id, held = entry
                ledger[golden_id] = (
                    self.name,
                    golden_id,
                    held.version,
                    message.event_id if message else "",
                    held.present,
                    now,
                )
            delivered += message is not None
        with write_transaction(self.engine) as conn:
            bulk_upsert(
                conn,
                "deliveries",
                LEDGER_COLUMNS,
                list(ledger.values()),
                conflict="subscriber, golden_id",
                update=("version", "event_id", "present", "delivered_at"),
                only_if="1 = 1",
            )
            values: dict[str, Any] = {
                "status": "ok",
                "failing_since": None,
                "attempts": 0,
                "last_error": None,
                "updated_at": now,
                "delivered_total": SUBSCRIBERS.c.delivered_total + delivered,
            }
            if cursor is not None:
                values["cursor_seq"] = cursor
            if snapshot_after is not None:
                values["snapshot_after"] = snapshot_after
            if snapshot_done:
                values["snapshot_done"] = True
            conn.execute(
                SUBSCRIBERS.update().where(SUBSCRIBERS.c.subscriber == self.name).values(**values)
            )
        self.result.delivered += delivered

    def fail(self, error: str, attempts: int) -> None:
        now = utcnow()
        with write_transaction(self.engine) as conn:
            state = _state(conn, self.name)
            conn.execute(
                SUBSCRIBERS.update()
                .where(SUBSCRIBERS.c.subscriber == self.name)
                .values(
                    status="failing",
                    failing_since=state.failing_since or now,
                    attempts=attempts,
                    last_error=error,
                    updated_at=now,
                )
            )

    def deliver(
        self,
        steps: list[Step],
        batch_name: str,
        settle: Callable[[list[Step]], None],
    ) -> None:
        """Send the steps' messages with retries; ``settle`` commits a delivered prefix."""
        remaining = steps
        failures = 0
        while True:
            messages = [step.message for step in remaining if step.message is not None]
            try:
                self.transport.send(messages, batch_name)
            except DeliveryError as exc:
                cut = self._prefix(remaining, exc.delivered)
                if cut:
                    settle(remaining[:cut])
                    remaining = remaining[cut:]
                    failures = 0
                failures += 1
                if failures >= self.sub.max_attempts:
                    self.fail(str(exc), failures)
                    raise SubscriberFailing(
                        f"subscriber {self.name}: {exc} ({failures} attempts)"
                    ) from None
                self.result.retries += 1
                self.sleep(backoff_delay(self.sub, failures))
                continue
            crash_point("syndication:after_send_before_commit")
            settle(remaining)
            self.result.batches += 1
            return

    @staticmethod
    def _prefix(steps: list[Step], delivered: int) -> int:
        """How many steps are settled when the first ``delivered`` messages got through."""
        if delivered <= 0:
            # Steps before the first message need no delivery.
            return next((i for i, s in enumerate(steps) if s.message is not None), len(steps))
        seen = 0
        for i, step in enumerate(steps):
            if step.message is not None:
                if seen == delivered:
                    return i
                seen += 1
        return len(steps)

    # --- snapshot ------------------------------------------------------------------------

    def snapshot(self, state: Any) -> None:  # noqa: ANN401
        with self.engine.connect() as conn:
            upto = state.snapshot_seq
            if upto is None:
                upto = conn.execute(select(func.coalesce(func.max(CHANGES.c.seq), 0))).scalar_one()
                with write_transaction(self.engine) as w:
                    w.execute(
                        SUBSCRIBERS.update()
                        .where(SUBSCRIBERS.c.subscriber == self.name)
                        .values(snapshot_seq=upto)
                    )
        after = state.snapshot_after or ""
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        GOLDEN.c.golden_id,
                        GOLDEN.c.version,
                        GOLDEN.c.status,
                        GOLDEN.c.party_type,
                        GOLDEN.c.attributes,
                        GOLDEN.c.consents,
                        GOLDEN.c.lifecycle,
                        GOLDEN.c.sources,
                        GOLDEN.c.merged_into,
                    )
                    .where(GOLDEN.c.status == ACTIVE, GOLDEN.c.golden_id > after)
                    .order_by(GOLDEN.c.golden_id)
                    .limit(self.sub.batch_size)
                ).all()
            if not rows:
                break
            now = utcnow()
            steps: list[Step] = []
            for r in rows:
                v = GoldenVersion(*r)
                if why_not(self.sub, v) is None:
                    message = upsert(
                        self.sub, v, "snapshot", event_id(v.golden_id, v.version), None, now
                    )
                    steps.append(Step(None, message, (v.golden_id, Held(v.version, True))))
            last = rows[-1].golden_id
            self.deliver(
                steps, f"snapshot-{after or 'G0'}-{last}", self._snapshot_settle(steps, last)
            )
            self.result.snapshot += sum(1 for step in steps if step.message is not None)
            after = last
        self.commit([], cursor=upto, snapshot_done=True)

    def _snapshot_settle(self, steps: list[Step], last: str) -> Callable[[list[Step]], None]:
        """Commit a delivered part of a snapshot batch: resume after its last golden record
        (after the batch's last row once the whole batch is through)."""

        def settle(done: list[Step]) -> None:
            whole = len(done) == len(steps)
            entry = done[-1].entry if done else None
            self.commit(done, snapshot_after=last if whole else (entry[0] if entry else None))

        return settle

    # --- changes -------------------------------------------------------------------------

    def changes(self, cursor: int) -> int:
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        CHANGES.c.seq,
                        CHANGES.c.event_id,
                        CHANGES.c.golden_id,
                        CHANGES.c.version,
                        CHANGES.c.event_type,
                        CHANGES.c.changed,
                        CHANGES.c.related,
                        CHANGES.c.created_at,
                    )
                    .where(CHANGES.c.seq > cursor)
                    .order_by(CHANGES.c.seq)
                    .limit(self.sub.batch_size)
                ).all()
                if not rows:
                    return cursor
                events = [OutboxEvent(*r) for r in rows]
                held = _held(conn, self.name, {e.golden_id for e in events})
                versions = _versions(conn, {(e.golden_id, e.version) for e in events})
            steps: list[Step] = []
            for e in events:
                before = held.get(e.golden_id)
                message, after = decide(self.sub, e, versions.get((e.golden_id, e.version)), before)
                if after is not None and after != before:
                    held[e.golden_id] = after
                    steps.append(Step(e.seq, message, (e.golden_id, after)))
                else:
                    steps.append(Step(e.seq, message, None))
                if message is None:
                    self.result.skipped += 1

            def settle(done: list[Step]) -> None:
                self.commit(done, cursor=done[-1].seq)

            self.deliver(steps, f"{events[0].seq:012d}-{events[-1].seq:012d}", settle)
            cursor = events[-1].seq


def syndicate(
    engine: Engine,
    config: HubConfig,
    name: str,
    *,
    home: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Deliver everything pending to subscriber ``name``; raises :class:`SubscriberFailing`."""
    sub = config.subscriptions.subscribers[name]
    state = ensure_state(engine, name, sub)
    transport = make_transport(name, sub, home or mdm_home())
    run = _Run(engine, config, name, transport, sleep)
    try:
        if not state.snapshot_done:
            run.snapshot(state)
            state = ensure_state(engine, name, sub)
        run.result.cursor = run.changes(int(state.cursor_seq))
    finally:
        transport.close()
    with engine.connect() as conn:
        run.result.pending = pending_for(conn, name)
    return run.result


def pending_for(conn: Connection, name: str) -> int:
    """Outbox events after the subscriber's cursor (all of them before its first run)."""
    cursor = conn.execute(
        select(SUBSCRIBERS.c.cursor_seq).where(SUBSCRIBERS.c.subscriber == name)
    ).scalar()
    return int(
        conn.execute(
            select(func.count()).select_from(CHANGES).where(CHANGES.c.seq > (cursor or 0))
        ).scalar_one()
    )


def subscriber_status(engine: Engine, config: HubConfig) -> dict[str, dict[str, Any]]:
    """Per configured subscriber: pending events, delivered, status, failing since (counts)."""
    out = {}
    with engine.connect() as conn:
        last = int(conn.execute(select(func.coalesce(func.max(CHANGES.c.seq), 0))).scalar_one())
        for name in config.subscriptions.subscribers:
            state = _state(conn, name)
            out[name] = {
                "pending": pending_for(conn, name),
                "snapshot_done": bool(state.snapshot_done) if state else False,
                "delivered_total": int(state.delivered_total) if state else 0,
                "status": state.status if state else "new",
                "failing_since": state.failing_since.isoformat()
                if state and state.failing_since
                else None,
                "last_error": state.last_error if state else None,
                "cursor_seq": int(state.cursor_seq) if state else 0,
                "outbox_seq": last,
            }
    return out


__all__ = [
    "DeliveryResult",
    "SubscriberFailing",
    "backoff_delay",
    "pending_for",
    "subscriber_status",
    "syndicate",
]
