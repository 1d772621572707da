"""Replay: send one subscriber a range of the outbox again, for a subscriber rebuilt from
scratch (``mdm syndicate replay --subscriber S --from EVENT_ID | --since TIME``).

The range runs from the event named (or the first event recorded at or after the time) to the
event named by ``to`` / ``until``, and never past the subscriber's cursor: what lies beyond it
is not delivered yet and comes with the next ordinary delivery. Each event is decided as if the
subscriber held the golden record's previous version (it is rebuilding: it wants upserts,
removals, merges and erasures alike), expanded into its business events, and sent in outbox
order under the same ids as the first time, through the same retries. Replay moves no cursor
and writes no ledger row: the subscriber's state is what it was. An erased person's versions
(scrubbed in the history) are not sent again, only its ``erased`` notice. Events of the range
in the dead-letter queue are left to ``mdm syndicate dlq retry``. Run it while the
subscriber's own deliveries are paused, or the two streams interleave.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from mdm_orchestration.config import HubConfig
from mdm_orchestration.hub.store import mdm_home
from mdm_orchestration.hub.tables import CHANGES, DEAD_LETTERS, GOLDEN, SUBSCRIBERS, in_chunks
from mdm_orchestration.syndication.dead_letters import UNRESOLVED
from mdm_orchestration.syndication.delivery import (
    OUTBOX_COLUMNS,
    ExtrasByVersion,
    Step,
    _Run,
    _versions,
)
from mdm_orchestration.syndication.messages import (
    UPSERT_TYPES,
    Held,
    OutboxEvent,
    expand,
    with_extras,
)
from mdm_orchestration.syndication.transports import make_transport


@dataclass
class ReplayRange:
    """What a replay sent: the outbox range (seqs, inclusive) and the counts."""

    subscriber: str
    first_seq: int | None = None
    last_seq: int | None = None
    events: int = 0  # outbox events in the range
    messages: int = 0  # messages sent (change and business events)
    skipped: int = 0  # events that are nothing for the subscriber
    in_dead_letters: int = 0  # events of the range in its dead-letter queue, not sent
    retries: int = 0
    refused: list[str] = field(default_factory=list)  # event ids refused for good

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def _seq_of(conn, event: str) -> int:  # type: ignore[no-untyped-def]  # noqa: ANN001
    seq = conn.execute(select(CHANGES.c.seq).where(CHANGES.c.event_id == event)).scalar()
    if seq is None:
        raise ValueError(f"no outbox event {event!r}")
    return int(seq)


def _erased(conn, golden_ids: set[str]) -> set[str]:  # type: ignore[no-untyped-def]  # noqa: ANN001
    out: set[str] = set()
    for cond in in_chunks(GOLDEN.c.golden_id, sorted(golden_ids)):
        out.update(
            conn.execute(
                select(GOLDEN.c.golden_id).where(cond, GOLDEN.c.status == "erased")
            ).scalars()
        )
    return out


class _ReplayRun(_Run):
    """A delivery run that leaves the subscriber's state alone: a replay that gives up says so
    to its caller (``SubscriberFailing``) without marking the subscriber failing."""

    def fail(self, error: str, attempts: int) -> None:
        return None


def _utc(value: datetime | None) -> datetime | None:
    """The hub stores UTC and SQLite compares times as written: an aware time in UTC, a naive
    one taken as UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def replay_range(
    engine: Engine,
    config: HubConfig,
    name: str,
    *,
    from_event: str | None = None,
    since: datetime | None = None,
    to_event: str | None = None,
    until: datetime | None = None,
    home: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayRange:
    """Send subscriber ``name`` the outbox events from ``from_event`` (or ``since``) to
    ``to_event`` (or ``until``; default: its cursor) again; raises ``ValueError`` for an
    unknown subscriber or event, or a range that is not there to replay."""
    if name not in config.subscriptions.subscribers:
        raise ValueError(f"unknown subscriber {name!r}")
    if (from_event is None) == (since is None):
        raise ValueError("give one of --from EVENT_ID or --since TIME")
    if to_event is not None and until is not None:
        raise ValueError("give at most one of --to EVENT_ID or --until TIME")
    since, until = _utc(since), _utc(until)
    sub = config.subscriptions.subscribers[name]
    out = ReplayRange(name)
    with engine.connect() as conn:
        cursor = conn.execute(
            select(SUBSCRIBERS.c.cursor_seq).where(SUBSCRIBERS.c.subscriber == name)
        ).scalar()
        if cursor is None:
            raise ValueError(f"subscriber {name!r} has had no delivery yet: nothing to replay")
        if from_event is not None:
            low = _seq_of(conn, from_event)
        else:
            low = conn.execute(
                select(func.min(CHANGES.c.seq)).where(CHANGES.c.created_at >= since)
            ).scalar()
        high = int(cursor)
        if to_event is not None:
            high = min(high, _seq_of(conn, to_event))
        elif until is not None:
            last = conn.execute(
                select(func.max(CHANGES.c.seq)).where(CHANGES.c.created_at <= until)
            ).scalar()
            high = min(high, int(last or 0))
    if low is None or int(low) > high:
        return out  # nothing delivered in that range
    out.first_seq, out.last_seq = int(low), high
    transport = make_transport(name, sub, home or mdm_home())
    run = _ReplayRun(engine, config, name, transport, sleep)
    try:
        after = int(low) - 1
        while after < high:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(*OUTBOX_COLUMNS)
                    .where(CHANGES.c.seq > after, CHANGES.c.seq <= high)
                    .order_by(CHANGES.c.seq)
                    .limit(sub.batch_size)
                ).all()
                if not rows:
                    break
                events = [OutboxEvent(*r) for r in rows]
                golden_ids = {e.golden_id for e in events}
                wanted = {(e.golden_id, e.version) for e in events}
                versions = _versions(conn, wanted, members=bool(sub.source_keys))
                extras = ExtrasByVersion(conn, sub, wanted, versions)
                erased = _erased(conn, golden_ids)
                dead = set(
                    conn.execute(
                        select(DEAD_LETTERS.c.seq).where(
                            DEAD_LETTERS.c.subscriber == name,
                            DEAD_LETTERS.c.state.in_(UNRESOLVED),
                            DEAD_LETTERS.c.seq.between(events[0].seq, events[-1].seq),
                        )
                    ).scalars()
                )
            steps = []
            for e in events:
                out.events += 1
                if e.seq in dead:
                    out.in_dead_letters += 1
                    continue
                version = versions.get((e.golden_id, e.version))
                if e.event_type in UPSERT_TYPES and (version is None or e.golden_id in erased):
                    out.skipped += 1  # an erased person's versions are scrubbed: not sent again
                    continue
                messages, _ = expand(sub, e, version, Held(e.version - 1, True))
                if not messages:
                    out.skipped += 1
                    continue
                sent = tuple(
                    with_extras(sub, m, extras.get(e.golden_id, e.version)) for m in messages
                )
                steps.append(Step(e.seq, sent, None))
            _send(run, steps, f"replay-{events[0].seq:012d}-{events[-1].seq:012d}", out)
            after = events[-1].seq
    finally:
        transport.close()
    out.retries = run.result.retries
    return out


def _send(run: _Run, steps: list[Step], batch: str, out: ReplayRange) -> None:
    """Deliver the steps with the delivery loop's retries; a step refused for good is noted
    and the rest go on."""
    done = [0]

    def settle(settled: list[Step]) -> None:
        done[0] += len(settled)
        out.messages += sum(len(s.messages) for s in settled)

    while steps:
        done[0] = 0
        refused = run.deliver(steps, batch, settle)
        if refused is None:
            return
        out.refused.append(refused.step.event_id)
        steps = steps[done[0] + 1 :]


__all__ = ["ReplayRange", "replay_range"]
