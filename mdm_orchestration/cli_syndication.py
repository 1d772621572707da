"""The syndication commands: ``mdm syndicate`` delivers pending changes to the subscribers;
``mdm syndicate dlq list|retry|drop`` works the dead-letter queue (events a subscriber refused
for good, and those held behind them); ``mdm syndicate replay`` sends a subscriber a range of
the outbox again (one rebuilt from scratch)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mdm_orchestration.cli_output import print_hub
from mdm_orchestration.inprocess import Target


def cmd_syndicate(args: argparse.Namespace) -> int:
    """Deliver pending changes to the subscribers (or one) through syndicate_job."""
    from mdm_orchestration.inprocess import dagster_instance, run_syndication

    target = Target(hub=args.hub, config=args.config)
    engine = target.engine()
    try:
        ok = run_syndication(
            dagster_instance(), target, engine, quiet=args.json, only=args.subscriber
        )
    except ValueError as exc:
        print(f"mdm syndicate: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print_hub(args, target)
    return 0 if ok else 1


def cmd_dlq_list(args: argparse.Namespace) -> int:
    """The dead letters (ids, states, error classes: never customer values)."""
    from mdm_orchestration.syndication import list_dead_letters

    engine = Target(hub=args.hub).engine()
    try:
        letters = list_dead_letters(
            engine, subscriber=args.subscriber, event_id=args.event, include_resolved=args.all
        )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([d.as_dict() for d in letters], indent=2))
        return 0
    if not letters:
        print("no dead letters")
        return 0
    print(
        f"{'subscriber':<14}{'event_id':<38}{'seq':>8} {'golden_id':<18}{'ver':>4} "
        f"{'state':<11}{'tries':>5}  error"
    )
    for d in letters:
        error = " ".join(str(p) for p in (d.error_class, d.error_status) if p is not None)
        print(
            f"{d.subscriber:<14}{d.event_id:<38}{'' if d.seq is None else d.seq:>8} "
            f"{d.golden_id:<18}{d.version:>4} {d.state:<11}{d.attempts:>5}  {error}"
        )
    return 0


def cmd_dlq_retry(args: argparse.Namespace) -> int:
    """Queue dead letters and the events held behind them for the next delivery."""
    from mdm_orchestration.syndication import retry_dead_letters

    engine = Target(hub=args.hub).engine()
    try:
        n = retry_dead_letters(engine, subscriber=args.subscriber, event_id=args.event)
    finally:
        engine.dispose()
    _report(args, "queued", n, "queued for the next delivery (mdm syndicate)")
    return 0


def cmd_dlq_drop(args: argparse.Namespace) -> int:
    """Give up on dead letters and the events held behind them, with a reason."""
    from mdm_orchestration.settings import settings
    from mdm_orchestration.syndication import drop_dead_letters

    engine = Target(hub=args.hub).engine()
    try:
        n = drop_dead_letters(
            engine,
            reason=args.reason,
            by=settings().steward,
            subscriber=args.subscriber,
            event_id=args.event,
        )
    except ValueError as exc:
        print(f"mdm syndicate dlq drop: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    _report(args, "dropped", n, "dropped")
    return 0


def _when(text: str | None) -> datetime | None:
    """An ISO 8601 time, in UTC (without a zone it is UTC): the hub stores UTC, and SQLite
    compares the times as written, so ``13:30+02:00`` must become ``11:30+00:00``."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def cmd_replay(args: argparse.Namespace) -> int:
    """Send one subscriber a range of the outbox again (the logic: syndication.replay)."""
    from mdm_orchestration.syndication import replay_range

    target = Target(hub=args.hub, config=args.config)
    engine = target.engine()
    try:
        result = replay_range(
            engine,
            target.hub_config(),
            args.subscriber,
            from_event=args.from_event,
            since=_when(args.since),
            to_event=args.to_event,
            until=_when(args.until),
        )
    except ValueError as exc:
        print(f"mdm syndicate replay: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(result.as_dict()))
    elif result.first_seq is None:
        print(f"nothing to replay: {args.subscriber} has received no event in that range")
    else:
        print(
            f"replayed outbox seq {result.first_seq}..{result.last_seq} to {args.subscriber}: "
            f"{result.events} event(s), {result.messages} message(s) sent, "
            f"{result.skipped} not for it, {result.in_dead_letters} in its dead-letter queue"
        )
    return 1 if result.refused else 0


def _report(args: argparse.Namespace, key: str, n: int, text: str) -> None:
    if args.json:
        print(json.dumps({key: n}))
    elif n:
        print(f"{n} dead-lettered or held event(s) {text}")
    else:
        print("nothing to do: no matching dead letters")


def add_syndicate_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:  # noqa: ANN401
    """Register ``mdm syndicate`` on the CLI's sub-parsers (``command`` adds the shared flags)."""
    p = command(
        sub,
        "syndicate",
        cmd_syndicate,
        "deliver pending golden-record changes (syndicate_job); 'dlq' works the dead letters",
        "hub",
        "config",
        "json",
    )
    p.add_argument("--subscriber", help="only this subscriber")
    actions = p.add_subparsers(dest="syndicate_command", metavar="{dlq,replay}")
    r = command(
        actions,
        "replay",
        cmd_replay,
        "send one subscriber a range of the outbox again (a subscriber rebuilt from scratch)",
        "hub",
        "config",
        "json",
    )
    r.add_argument("--subscriber", required=True, help="the subscriber to send it to")
    start = r.add_mutually_exclusive_group(required=True)
    start.add_argument("--from", dest="from_event", metavar="EVENT_ID", help="from this event")
    start.add_argument("--since", metavar="TIME", help="from this time (ISO 8601; UTC if no zone)")
    end = r.add_mutually_exclusive_group()
    end.add_argument("--to", dest="to_event", metavar="EVENT_ID", help="up to this event")
    end.add_argument("--until", metavar="TIME", help="up to this time (default: its cursor)")
    dlq = actions.add_parser(
        "dlq",
        help="events a subscriber refused for good, and those held behind them",
        description="The dead-letter queue: an event a subscriber refused permanently "
        "(dead_letter_after tries) and the later events of the same golden record, held so "
        "that it never gets them out of order.",
    )
    dlq_actions = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, func, text in (
        ("list", cmd_dlq_list, "list dead and held events (ids and error classes only)"),
        (
            "retry",
            cmd_dlq_retry,
            "queue dead events and those held behind them for the next delivery",
        ),
        ("drop", cmd_dlq_drop, "give up on dead events and those held behind them"),
    ):
        q = command(dlq_actions, name, func, text, "hub", "json")
        q.add_argument("--subscriber", help="only this subscriber's")
        q.add_argument(
            "--event", help="only this event (an event id) and its golden record's held ones"
        )
        if name == "list":
            q.add_argument(
                "--all", action="store_true", help="resolved ones too (delivered, dropped...)"
            )
        if name == "drop":
            q.add_argument("--reason", required=True, help="why (recorded, with who: MDM_STEWARD)")


__all__ = [
    "add_syndicate_commands",
    "cmd_dlq_drop",
    "cmd_dlq_list",
    "cmd_dlq_retry",
    "cmd_replay",
    "cmd_syndicate",
]
