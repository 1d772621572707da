"""Delivering the outbox to one subscriber: snapshot first, then changes, at least once.

State lives in the hub, never only in Dagster: ``subscriber_state`` holds the cursor (the last
outbox event dealt with), ``deliveries`` what the subscriber holds of each golden record. A
batch is sent, then its ledger rows and the cursor are committed together: a crash in between
resends the batch (same event ids, so receivers drop the duplicates); nothing is skipped.
Events are read in outbox order, so each golden record's changes arrive in order. After
``max_attempts`` failures in a row the subscriber is marked failing and the run fails; the next
run resumes at the first undelivered event.

Poison events. A failure the transport calls permanent (an HTTP 400, a constraint the SQL
target refuses: see ``transports``) concerns one message. After ``dead_letter_after`` tries of
it the event is *dead-lettered* (a ``dead_letters`` row, state ``dead``, in the transaction
that moves the cursor onto it) and delivery goes on. Order per golden record is kept by
*holding*: every later event of that golden record becomes a ``held`` row as the cursor passes
it, unsent. So the cursor always advances safely, and every outbox event ends delivered (or
nothing for the subscriber), dead-lettered or held; nothing is lost. Other golden records flow
on. ``mdm syndicate dlq retry`` turns the golden record's dead and held rows into ``queued``
ones: the next delivery sends them first, in outbox order, re-deciding each against the
ledger (if the event is refused again it is dead again and the rest held again); ``drop``
resolves them with a reason, and the golden record's next events flow. An ``erased`` event is
never held: it is delivered and supersedes the held ones (nothing older may follow an
erasure, and the erasure must not wait on an operator). A snapshot row refused permanently is
dead-lettered the same way (no seq; its retry sends the version it held). The rows themselves
are in ``dead_letters`` (that module has the states, list, retry and drop).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, and_, func, select, tuple_

from mdm_orchestration.config import HubConfig, Subscriber
from mdm_orchestration.hub.bulk import bulk_upsert
from mdm_orchestration.hub.crash import crash_point
from mdm_orchestration.hub.store import mdm_home, write_transaction
from mdm_orchestration.hub.tables import (
    CHANGES,
    DEAD_LETTERS,
    DELIVERIES,
    GOLDEN,
    HISTORY,
    HOUSEHOLD_MEMBERS,
    SUBSCRIBERS,
    XREF,
    chunks,
    in_chunks,
    utcnow,
)
from mdm_orchestration.survivorship import ACTIVE, event_id
from mdm_orchestration.syndication.dead_letters import (
    DEAD,
    DELIVERED,
    HELD,
    QUEUED,
    SUPERSEDED,
    UNRESOLVED,
    blocked_goldens,
    dead_letter_counts,
    unblock_orphans,
)
from mdm_orchestration.syndication.messages import (
    UPSERT_TYPES,
    Extras,
    GoldenVersion,
    Held,
    Message,
    OutboxEvent,
    expand,
    upsert,
    why_not,
    with_extras,
)
from mdm_orchestration.syndication.transports import DeliveryError, Transport, make_transport

LEDGER_COLUMNS = ("subscriber", "golden_id", "version", "event_id", "present", "delivered_at")

#: The outbox columns an ``OutboxEvent`` is built from, in its fields' order.
OUTBOX_COLUMNS = (
    CHANGES.c.seq,
    CHANGES.c.event_id,
    CHANGES.c.golden_id,
    CHANGES.c.version,
    CHANGES.c.event_type,
    CHANGES.c.changed,
    CHANGES.c.related,
    CHANGES.c.created_at,
    CHANGES.c.business_events,
)


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
    #: Events dead-lettered in this run, held behind a dead one, and retried from the queue.
    dead_lettered: int = 0
    held: int = 0
    retried: int = 0


class Step(NamedTuple):
    """One planned step of a delivery."""

    seq: int | None  # the outbox seq it settles (None in a snapshot)
    #: What it sends, in order: the change event's message and one per business event it
    #: carries; empty: the event is nothing for this subscriber (or held). A step is settled
    #: only once all of them are delivered, so none is lost.
    messages: tuple[Message, ...]
    entry: tuple[str, Held] | None  # the ledger entry afterwards (golden id, what is held)
    #: Not sent: held behind a dead letter of its golden record (``held`` or ``queued``).
    hold: tuple[OutboxEvent, str] | None = None
    #: An erasure: once delivered, the golden record's dead and held rows are superseded.
    supersedes: str | None = None
    #: The dead-letter row it replays (a retry), resolved once delivered.
    dead_letter: int | None = None

    @property
    def event_id(self) -> str:
        """The change event's id (a business event's message names it in ``caused_by``)."""
        head = self.messages[0]
        return head.caused_by or head.event_id


class Refused(NamedTuple):
    """The step the subscriber refused permanently ``attempts`` times, and the last error."""

    step: Step
    error: DeliveryError
    attempts: int


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


def _events(conn: Connection, seqs: list[int]) -> dict[int, OutboxEvent]:
    """The outbox events with these seqs."""
    out = {}
    for i in range(0, len(seqs), 500):
        rows = conn.execute(select(*OUTBOX_COLUMNS).where(CHANGES.c.seq.in_(seqs[i : i + 500])))
        for r in rows:
            out[int(r.seq)] = OutboxEvent(*r)
    return out


def _version_columns(members: bool) -> list[Any]:
    columns = [
        HISTORY.c.golden_id,
        HISTORY.c.version,
        HISTORY.c.status,
        HISTORY.c.party_type,
        HISTORY.c.attributes,
        HISTORY.c.consents,
        HISTORY.c.lifecycle,
        HISTORY.c.sources,
        HISTORY.c.merged_into,
        HISTORY.c.organisation_golden_id,
        HISTORY.c.household_id,
    ]
    if members:
        columns.append(HISTORY.c.members)
    return columns


def _add_versions(
    out: dict[tuple[str, int], GoldenVersion], rows: Iterable[Any], members: bool
) -> None:
    for r in rows:
        values = list(r)
        if members:
            values[-1] = tuple(values[-1] or ())
        version = GoldenVersion(*values)
        out[(version.golden_id, version.version)] = version


def _versions(
    conn: Connection, keys: set[tuple[str, int]], *, members: bool = False
) -> dict[tuple[str, int], GoldenVersion]:
    """The history rows of these (golden id, version) pairs; with ``members``, their source
    records too (for a subscriber's ``source_keys``)."""
    columns = _version_columns(members)
    out: dict[tuple[str, int], GoldenVersion] = {}
    for chunk in chunks(keys):  # type: ignore[arg-type]
        # The golden ids bound the search: on the pairs alone, SQLite read the whole history
        # for each chunk (SCAN golden_history, the pairs a list to probe).
        rows = conn.execute(
            select(*columns).where(
                HISTORY.c.golden_id.in_(sorted({g for g, _ in chunk})),
                tuple_(HISTORY.c.golden_id, HISTORY.c.version).in_(chunk),
            )
        )
        _add_versions(out, rows, members)
    return out


def _versions_of_range(
    conn: Connection, after: int, upto: int, *, members: bool = False
) -> dict[tuple[str, int], GoldenVersion]:
    """:func:`_versions` of the outbox events with ``after < seq <= upto``: one join on the
    outbox instead of a list of pairs (about three times less work per version)."""
    out: dict[tuple[str, int], GoldenVersion] = {}
    rows = conn.execute(
        select(*_version_columns(members))
        .join(
            CHANGES,
            and_(
                CHANGES.c.golden_id == HISTORY.c.golden_id, CHANGES.c.version == HISTORY.c.version
            ),
        )
        .where(CHANGES.c.seq > after, CHANGES.c.seq <= upto)
    )
    _add_versions(out, rows, members)
    return out


class ExtrasByVersion:
    """The subscriber's keys and the household for each message of a batch, as of the version
    it announces: the household recorded on the version (the current membership until the
    households refresh has recorded it), the keys of the version's source records. Without
    a version (a snapshot reads the current record) both are as they stand now."""

    def __init__(
        self,
        conn: Connection,
        sub: Subscriber,
        wanted: Iterable[tuple[str, int | None]],
        versions: Mapping[tuple[str, int], GoldenVersion] | None = None,
    ) -> None:
        """``wanted``: the (golden id, version) of each message to build (version ``None``:
        the current record); ``versions``: the history rows read for them."""
        self._versions = versions = versions or {}
        now_household: set[str] = set()
        now_keys: set[str] = set()
        for golden_id, number in wanted:
            v = versions.get((golden_id, number)) if number is not None else None
            if v is None:
                now_keys.add(golden_id)
            if v is None or v.household_id is None:
                now_household.add(golden_id)
        self._households: dict[str, str] = {}
        for cond in in_chunks(HOUSEHOLD_MEMBERS.c.golden_id, sorted(now_household)):
            rows = conn.execute(
                select(HOUSEHOLD_MEMBERS.c.golden_id, HOUSEHOLD_MEMBERS.c.household_id).where(cond)
            )
            self._households.update(dict(rows.all()))
        self._current_keys: dict[str, dict[str, list[str]]] = {}
        self._record_keys: dict[str, tuple[str, str]] = {}
        if not sub.source_keys:
            return
        # The sources are kept in Python, not in the WHERE: given ``source IN (...)``, SQLite
        # searched the (source, source_key) index, every xref row of those sources for each
        # chunk, instead of the chunk's golden ids (or record ids).
        sources = frozenset(sub.source_keys)
        for cond in in_chunks(XREF.c.golden_id, sorted(now_keys)):
            rows = conn.execute(
                select(XREF.c.golden_id, XREF.c.source, XREF.c.source_key)
                .where(cond)
                .order_by(XREF.c.source_key)
            )
            for g, source, key in rows:
                if source in sources:
                    self._current_keys.setdefault(g, {}).setdefault(source, []).append(key)
        records = sorted({r for v in versions.values() for r in v.members})
        for cond in in_chunks(XREF.c.record_id, records):
            rows = conn.execute(
                select(XREF.c.record_id, XREF.c.source, XREF.c.source_key).where(cond)
            )
            self._record_keys.update(
                {r: (source, key) for r, source, key in rows if source in sources}
            )

    def get(self, golden_id: str, version: int | None = None) -> Extras:
        v = self._versions.get((golden_id, version)) if version is not None else None
        if v is None:
            return Extras(self._current_keys.get(golden_id, {}), self._households.get(golden_id))
        household = v.household_id
        if household is None:
            household = self._households.get(golden_id)
        keys: dict[str, list[str]] = {}
        for record_id in v.members:
            found = self._record_keys.get(record_id)
            if found is not None:
                keys.setdefault(found[0], []).append(found[1])
        for listed in keys.values():
            listed.sort()
        return Extras(keys, household or None)


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
        refused: Refused | None = None,
    ) -> None:
        """The ledger entries of ``steps``, their dead-letter rows (held, resolved) and the
        subscriber's state in one transaction; with ``refused``, that step dead-lettered."""
        now = utcnow()
        ledger: dict[str, tuple[Any, ...]] = {}
        delivered = 0
        for step in steps:
            entry = step.entry
            if entry is not None:
                golden_id, held = entry
                ledger[golden_id] = (
                    self.name,
                    golden_id,
                    held.version,
                    step.event_id if step.messages else "",
                    held.present,
                    now,
                )
            delivered += len(step.messages)
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
            self._settle_dead_letters(conn, steps, now)
            if refused is not None:
                self._dead_letter(conn, refused, now)
        self.result.delivered += delivered

    def _settle_dead_letters(self, conn: Connection, steps: list[Step], now: Any) -> None:  # noqa: ANN401
        held = [s.hold for s in steps if s.hold is not None]
        for event, state in held:
            exists = conn.execute(
                select(DEAD_LETTERS.c.id).where(
                    DEAD_LETTERS.c.subscriber == self.name,
                    DEAD_LETTERS.c.event_id == event.event_id,
                )
            ).first()
            if exists is None:  # a batch read again after a crash holds its events once
                conn.execute(
                    DEAD_LETTERS.insert().values(
                        subscriber=self.name,
                        event_id=event.event_id,
                        seq=event.seq,
                        golden_id=event.golden_id,
                        version=event.version,
                        state=state,
                        attempts=0,
                        dead_lettered_at=now,
                    )
                )
        self.result.held += len(held)
        replayed = [s.dead_letter for s in steps if s.dead_letter is not None]
        for i in range(0, len(replayed), 500):
            conn.execute(
                DEAD_LETTERS.update()
                .where(DEAD_LETTERS.c.id.in_(replayed[i : i + 500]))
                .values(state=DELIVERED, resolved_at=now, resolved_by="retry")
            )
        self.result.retried += len(replayed)
        for golden_id in {s.supersedes for s in steps if s.supersedes is not None}:
            conn.execute(
                DEAD_LETTERS.update()
                .where(
                    DEAD_LETTERS.c.subscriber == self.name,
                    DEAD_LETTERS.c.golden_id == golden_id,
                    DEAD_LETTERS.c.state.in_(UNRESOLVED),
                )
                .values(state=SUPERSEDED, resolved_at=now, resolved_by="erasure")
            )

    def _dead_letter(self, conn: Connection, refused: Refused, now: Any) -> None:  # noqa: ANN401
        """The refused step's event dead; on a retry, the rest of its golden record held."""
        step, error = refused.step, refused.error
        assert step.messages, "only a sent message can be refused"
        message = step.messages[0]
        refused_id = step.event_id
        values = {
            "state": DEAD,
            "error_class": (error.error_class or "")[:40] or None,
            "error_status": error.status,
            "dead_lettered_at": now,
        }
        row_id = step.dead_letter
        if row_id is None:  # a snapshot row's event id may come again in the outbox
            row_id = conn.execute(
                select(DEAD_LETTERS.c.id).where(
                    DEAD_LETTERS.c.subscriber == self.name,
                    DEAD_LETTERS.c.event_id == refused_id,
                )
            ).scalar()
        if row_id is not None:
            conn.execute(
                DEAD_LETTERS.update()
                .where(DEAD_LETTERS.c.id == row_id)
                .values(attempts=DEAD_LETTERS.c.attempts + refused.attempts, **values)
            )
            conn.execute(
                DEAD_LETTERS.update()
                .where(
                    DEAD_LETTERS.c.subscriber == self.name,
                    DEAD_LETTERS.c.golden_id == message.golden_id,
                    DEAD_LETTERS.c.state == QUEUED,
                )
                .values(state=HELD)
            )
        else:
            conn.execute(
                DEAD_LETTERS.insert().values(
                    subscriber=self.name,
                    event_id=refused_id,
                    seq=step.seq,
                    golden_id=message.golden_id,
                    version=message.version,
                    attempts=refused.attempts,
                    **values,
                )
            )
        self.result.dead_lettered += 1

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
    ) -> Refused | None:
        """Send the steps' messages with retries; ``settle`` commits a delivered prefix. A
        message refused permanently ``dead_letter_tries`` times is returned, unsettled, and
        nothing after it is sent: the caller dead-letters it and plans again from there."""
        remaining = steps
        failures = refusals = 0
        while True:
            messages = [m for step in remaining for m in step.messages]
            try:
                self.transport.send(messages, batch_name)
            except DeliveryError as exc:
                cut = self._prefix(remaining, exc.delivered)
                if cut:
                    settle(remaining[:cut])
                    remaining = remaining[cut:]
                    failures = refusals = 0
                failures += 1
                refusals += 1 if exc.permanent else 0
                if refusals >= self.sub.dead_letter_tries and remaining:
                    return Refused(remaining[0], exc, refusals)
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
            return None

    @staticmethod
    def _prefix(steps: list[Step], delivered: int) -> int:
        """How many steps are settled when the first ``delivered`` messages got through."""
        if delivered <= 0:
            # Steps before the first message need no delivery.
            return next((i for i, s in enumerate(steps) if s.messages), len(steps))
        seen = 0
        for i, step in enumerate(steps):
            if step.messages:
                if seen + len(step.messages) > delivered:
                    return i  # not all of its messages got through: it is sent again whole
                seen += len(step.messages)
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
                        GOLDEN.c.organisation_golden_id,
                    )
                    .where(GOLDEN.c.status == ACTIVE, GOLDEN.c.golden_id > after)
                    .order_by(GOLDEN.c.golden_id)
                    .limit(self.sub.batch_size)
                ).all()
                extras = ExtrasByVersion(conn, self.sub, [(r.golden_id, None) for r in rows])
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
                    message = with_extras(self.sub, message, extras.get(v.golden_id))
                    steps.append(Step(None, (message,), (v.golden_id, Held(v.version, True))))
            last = rows[-1].golden_id
            refused = self.deliver(
                steps, f"snapshot-{after or 'G0'}-{last}", self._snapshot_settle(steps, last)
            )
            if refused is None:
                after = last
            else:  # dead-letter it and go on after it
                after = refused.step.entry[0] if refused.step.entry else after
                self.commit([], snapshot_after=after, refused=refused)
        self.commit([], cursor=upto, snapshot_done=True)

    def _snapshot_settle(self, steps: list[Step], last: str) -> Callable[[list[Step]], None]:
        """Commit a delivered part of a snapshot batch: resume after its last golden record
        (after the batch's last row once the whole batch is through)."""

        def settle(done: list[Step]) -> None:
            whole = len(done) == len(steps)
            entry = done[-1].entry if done else None
            self.commit(done, snapshot_after=last if whole else (entry[0] if entry else None))
            self.result.snapshot += sum(len(step.messages) for step in done)

        return settle

    # --- changes -------------------------------------------------------------------------

    def changes(self, cursor: int) -> int:
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(*OUTBOX_COLUMNS)
                    .where(CHANGES.c.seq > cursor)
                    .order_by(CHANGES.c.seq)
                    .limit(self.sub.batch_size)
                ).all()
                if not rows:
                    return cursor
                events = [OutboxEvent(*r) for r in rows]
                held = _held(conn, self.name, {e.golden_id for e in events})
                wanted = {(e.golden_id, e.version) for e in events}
                versions = _versions_of_range(
                    conn, cursor, events[-1].seq, members=bool(self.sub.source_keys)
                )
                blocked = blocked_goldens(conn, self.name, {e.golden_id for e in events})
                extras = ExtrasByVersion(conn, self.sub, wanted, versions)
            steps: list[Step] = []
            for e in events:
                waiting = blocked.get(e.golden_id)
                if waiting is not None and e.event_type != "erased":
                    steps.append(Step(e.seq, (), None, hold=(e, waiting)))
                    continue
                supersedes = e.golden_id if waiting is not None else None
                before = held.get(e.golden_id)
                messages, after = expand(
                    self.sub, e, versions.get((e.golden_id, e.version)), before
                )
                sent = tuple(
                    with_extras(self.sub, m, extras.get(e.golden_id, e.version)) for m in messages
                )
                if after is not None and after != before:
                    held[e.golden_id] = after
                    steps.append(Step(e.seq, sent, (e.golden_id, after), supersedes=supersedes))
                else:
                    steps.append(Step(e.seq, sent, None, supersedes=supersedes))
                if not sent:
                    self.result.skipped += 1

            def settle(done: list[Step]) -> None:
                self.commit(done, cursor=done[-1].seq)

            refused = self.deliver(steps, f"{events[0].seq:012d}-{events[-1].seq:012d}", settle)
            if refused is None:
                cursor = events[-1].seq
            else:
                # Everything before it is settled: the cursor moves onto the dead letter, and
                # the rest is planned again, holding that golden record's later events.
                cursor = int(refused.step.seq or cursor)
                self.commit([], cursor=cursor, refused=refused)

    # --- retries from the dead-letter queue ----------------------------------------------

    def replay(self) -> None:
        """Send the queued dead letters (``dlq retry``) in outbox order, each decided again
        against the ledger; one refused again is dead again, its successors held again."""
        with write_transaction(self.engine) as conn:
            unblock_orphans(conn, self.name)
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        DEAD_LETTERS.c.id,
                        DEAD_LETTERS.c.seq,
                        DEAD_LETTERS.c.event_id,
                        DEAD_LETTERS.c.golden_id,
                        DEAD_LETTERS.c.version,
                    )
                    .where(DEAD_LETTERS.c.subscriber == self.name, DEAD_LETTERS.c.state == QUEUED)
                    .order_by(DEAD_LETTERS.c.seq.asc().nulls_first(), DEAD_LETTERS.c.id)
                    .limit(self.sub.batch_size)
                ).all()
                if not rows:
                    return
                events = _events(conn, [int(r.seq) for r in rows if r.seq is not None])
                held = _held(conn, self.name, {r.golden_id for r in rows})
                wanted = {(r.golden_id, int(r.version)) for r in rows}
                versions = _versions(conn, wanted, members=bool(self.sub.source_keys))
                extras = ExtrasByVersion(conn, self.sub, wanted, versions)
            steps: list[Step] = []
            now = utcnow()
            for r in rows:
                before = held.get(r.golden_id)
                messages, after = self._replayed(r, events, versions, before, now)
                sent = tuple(
                    with_extras(self.sub, m, extras.get(r.golden_id, int(r.version)))
                    for m in messages
                )
                entry = None
                if after is not None and after != before:
                    held[r.golden_id] = after
                    entry = (r.golden_id, after)
                steps.append(Step(r.seq, sent, entry, dead_letter=r.id))

            def settle(done: list[Step]) -> None:
                self.commit(done)

            refused = self.deliver(steps, f"retry-{rows[0].id}-{rows[-1].id}", settle)
            if refused is not None:
                self.commit([], refused=refused)

    def _replayed(
        self,
        row: Any,  # noqa: ANN401
        events: dict[int, OutboxEvent],
        versions: dict[tuple[str, int], GoldenVersion],
        before: Held | None,
        now: Any,  # noqa: ANN401
    ) -> tuple[list[Message], Held | None]:
        """What a queued dead letter sends now (nothing: nothing for the subscriber any more)."""
        if row.seq is None:  # a snapshot row: the version it held, unless the ledger is past it
            v = versions.get((row.golden_id, int(row.version)))
            if v is None or why_not(self.sub, v) is not None:
                return [], before
            if before is not None and before.version >= v.version:
                return [], before
            message = upsert(self.sub, v, "snapshot", row.event_id, None, now)
            return [message], Held(v.version, True)
        e = events.get(int(row.seq))
        if e is None:
            return [], before
        version = versions.get((e.golden_id, e.version))
        if version is None and e.event_type in UPSERT_TYPES:
            return [], before  # its version is gone from the history
        return expand(self.sub, e, version, before)


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
        run.replay()
        run.result.cursor = run.changes(int(state.cursor_seq))
    finally:
        transport.close()
    with engine.connect() as conn:
        run.result.pending = pending_for(conn, name)
    return run.result


def pending_for(conn: Connection, name: str) -> int:
    """Outbox events after the subscriber's cursor (all of them before its first run), and
    dead letters queued for a retry. Dead and held ones wait for an operator, not a run."""
    cursor = conn.execute(
        select(SUBSCRIBERS.c.cursor_seq).where(SUBSCRIBERS.c.subscriber == name)
    ).scalar()
    after = conn.execute(
        select(func.count()).select_from(CHANGES).where(CHANGES.c.seq > (cursor or 0))
    ).scalar_one()
    queued = conn.execute(
        select(func.count())
        .select_from(DEAD_LETTERS)
        .where(DEAD_LETTERS.c.subscriber == name, DEAD_LETTERS.c.state == QUEUED)
    ).scalar_one()
    return int(after) + int(queued)


def subscriber_status(engine: Engine, config: HubConfig) -> dict[str, dict[str, Any]]:
    """Per configured subscriber: pending events, delivered, status, failing since, and its
    dead letters (counts)."""
    out = {}
    with engine.connect() as conn:
        last = int(conn.execute(select(func.coalesce(func.max(CHANGES.c.seq), 0))).scalar_one())
        letters = dead_letter_counts(conn)
        for name in config.subscriptions.subscribers:
            state = _state(conn, name)
            mine = letters.get(name, {})
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
                # The dead-letter queue: refused events, events held behind them, retries due.
                "dead_lettered": mine.get(DEAD, 0),
                "held": mine.get(HELD, 0),
                "requeued": mine.get(QUEUED, 0),
            }
    return out


__all__ = [
    "DeliveryResult",
    "Refused",
    "SubscriberFailing",
    "backoff_delay",
    "pending_for",
    "subscriber_status",
    "syndicate",
]
