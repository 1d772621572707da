"""The steward's commands: review, merge and split, attribute overrides, lookup, export and
erase.

Each reads or writes the hub directly (no Dagster run); ``mdm match`` and ``mdm syndicate``
carry their effects on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdm_orchestration.cli_output import VERDICTS, emit, show_explanation, show_pair


def _steward() -> str:
    from mdm_orchestration.settings import settings

    return settings().steward


def cmd_review(args: argparse.Namespace) -> int:
    """Show uncertain pairs side by side, with why the model scored them so; record match /
    distinct / unsure. With ``--json``: the pending items and their explanations as one JSON
    document, nothing asked."""
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import (
        NoModel,
        current_cleansed,
        explain_item,
        load_models,
        pending_review,
        record_label,
    )

    as_json = bool(getattr(args, "json", False))
    matching = load_hub_config().matching
    engine = create_hub_engine(args.hub)
    done = 0
    listed: list[dict[str, Any]] = []
    try:
        with engine.connect() as conn:
            items = pending_review(conn, args.limit)
            try:
                models = load_models(conn) if items else {}
            except NoModel:
                models = {}  # no explanation without a model; the pairs still show
        if not items and not as_json:
            print("the review queue is empty")
            return 0
        for item in items:
            with engine.connect() as conn:
                frame = current_cleansed(conn, [item.left_record_id, item.right_record_id])
                explanation = (
                    explain_item(conn, item.left_record_id, item.right_record_id, models, matching)
                    if models
                    else None
                )
            rows = {r["source_record_id"]: r for r in frame.to_dict("records")}
            if item.left_record_id not in rows or item.right_record_id not in rows:
                continue  # a record left the hub (erased or no longer current)
            left, right = rows[item.left_record_id], rows[item.right_record_id]
            if as_json:
                listed.append(_review_json(item, left, right, explanation))
                continue
            show_pair(left, right, item.score)
            if item.priority is not None:
                print(
                    f"priority {item.priority:.2f}: {item.records_affected} record(s) in "
                    + (
                        "one cluster"
                        if item.left_cluster_id == item.right_cluster_id
                        else "two clusters"
                    )
                )
            if explanation is not None:
                print(show_explanation(explanation, item.score))
            answer = ""
            while answer not in ("m", "d", "u", "s", "q"):
                try:
                    answer = (
                        input("[m]atch, [d]istinct, [u]nsure, [s]kip, [q]uit? ").strip().lower()[:1]
                    )
                except EOFError:
                    answer = "q"
            if answer == "q":
                break
            if answer == "s":
                continue
            record_label(
                engine, item.left_record_id, item.right_record_id, VERDICTS[answer], _steward()
            )
            done += 1
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps({"items": listed}, indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    print(f"{done} pair(s) labelled; `mdm match` retrains and reclusters with them")
    return 0


def _review_json(
    item: Any,  # noqa: ANN401 - a review_queue row
    left: dict[str, Any],
    right: dict[str, Any],
    explanation: Any,  # noqa: ANN401 - an Explanation or None
) -> dict[str, Any]:
    def ref(row: dict[str, Any]) -> str:
        return f"{row['source']}:{row['source_key']}"

    return {
        "id": item.id,
        "party_type": item.party_type,
        "left_record_id": item.left_record_id,
        "right_record_id": item.right_record_id,
        "left": ref(left),
        "right": ref(right),
        "score": item.score,
        "priority": item.priority,
        "records_affected": item.records_affected,
        "left_cluster_id": item.left_cluster_id,
        "right_cluster_id": item.right_cluster_id,
        "explanation": None if explanation is None else explanation.as_dict(),
    }


def _override(args: argparse.Namespace, kind: str) -> int:
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import (
        UnknownRecord,
        record_override,
        remove_override,
        resolve_record,
    )

    undo = bool(getattr(args, "undo", False))
    engine = create_hub_engine(args.hub)
    try:
        with engine.connect() as conn:
            left, right = resolve_record(conn, args.left), resolve_record(conn, args.right)
        if undo:
            if not remove_override(engine, left, right, kind, _steward(), args.reason):
                print(f"mdm: no {kind} between {args.left} and {args.right}", file=sys.stderr)
                return 1
        else:
            record_override(engine, left, right, kind, _steward(), args.reason)
    except (UnknownRecord, ValueError) as exc:
        print(f"mdm: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    verb = "always together" if kind == "must_link" else "never together"
    if undo:
        verb = f"the {kind.replace('_', '-')} is removed"
    text = f"{args.left} and {args.right}: {verb}; `mdm match` applies it"
    emit(args, text, kind=kind, left=args.left, right=args.right, removed=undo)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    return _override(args, "must_link")


def cmd_split(args: argparse.Namespace) -> int:
    return _override(args, "cannot_link")


def cmd_lookup(args: argparse.Namespace) -> int:
    """Golden records by email, phone, name, source record or golden id, as JSON."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.survivorship import lookup

    engine = create_hub_engine(args.hub)
    if args.as_of is not None:
        return _lookup_as_of(engine, args)
    try:
        with engine.connect() as conn:
            found = lookup(
                conn,
                golden_id=args.golden,
                email=args.email,
                phone=args.phone,
                name=args.name,
                source=args.source,
                key=args.key,
                country=args.country,
            )
    except ValueError as exc:
        print(f"mdm lookup: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(found, indent=2, ensure_ascii=False, default=str))
    return 0 if found else 1


def _lookup_as_of(engine: Any, args: argparse.Namespace) -> int:  # noqa: ANN401
    """A golden record's version as it was at a past time (its history)."""
    from datetime import UTC, datetime

    from mdm_orchestration.survivorship import golden_as_of

    try:
        if args.golden is None:
            raise ValueError("--as-of reads one golden record's history: give --golden")
        at = datetime.fromisoformat(args.as_of)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        with engine.connect() as conn:
            version = golden_as_of(conn, args.golden, at)
    except ValueError as exc:
        print(f"mdm lookup: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if version is None:
        print(f"mdm lookup: {args.golden} did not exist at {args.as_of}", file=sys.stderr)
        return 1
    print(json.dumps(version, indent=2, ensure_ascii=False, default=str))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """golden, xref or changes as CSV, safe to open in a spreadsheet."""
    from mdm_orchestration.hub.store import create_hub_engine, private_dir
    from mdm_orchestration.survivorship import export_csv

    # Customer data: a folder created for it is 0700 (the file itself is written 0600).
    private_dir(Path(args.out).parent)
    engine = create_hub_engine(args.hub)
    try:
        with engine.connect() as conn:
            n = export_csv(conn, args.kind, Path(args.out))
    finally:
        engine.dispose()
    emit(
        args, f"{n} {args.kind} row(s) written to {args.out}", kind=args.kind, rows=n, out=args.out
    )
    return 0


def _erasure_files(args: argparse.Namespace) -> dict[str, Any]:
    """Where an erasure finds the files outside the hub: ``--config`` (the archive) and
    ``--landing``; unset, the erasure's own defaults (MDM_CONFIG_DIR, MDM_LANDING_DIR)."""
    from mdm_orchestration.config import load_hub_config

    return {
        "config": load_hub_config(Path(args.config)) if args.config else None,
        "landing": Path(args.landing) if args.landing else None,
    }


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase a person from the hub; subscribers that received them are told at the next
    syndication (``mdm syndicate`` or the syndication sensor)."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.syndication import NothingToErase, erase

    engine = create_hub_engine(args.hub)
    try:
        result = erase(
            engine,
            golden_id=args.golden,
            source=args.source,
            key=args.key,
            by=_steward(),
            **_erasure_files(args),
        )
    except (NothingToErase, ValueError) as exc:
        print(f"mdm erase: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    emit(
        args,
        f"erasure {result.erasure_id}: golden record {result.golden_id or '(none)'}, "
        f"{result.records} source record(s) removed, {result.golden_records_blanked} golden "
        "record(s) blanked; subscribers hear of it at the next syndication",
        erasure_id=result.erasure_id,
        golden_id=result.golden_id,
        records=result.records,
        golden_records_blanked=result.golden_records_blanked,
    )
    return 0


def cmd_erasure_replay(args: argparse.Namespace) -> int:
    """After restoring a backup of the hub: redo every erasure of the outside ledger that the
    hub lacks (records, golden records, history, the subscribers' erased events)."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.syndication import erasure_ledger_path, replay_erasures

    ledger = Path(args.ledger) if args.ledger else erasure_ledger_path()
    if not ledger.exists():
        print(
            f"mdm erasure replay: no erasure ledger at {ledger} (nothing was erased from "
            "this MDM_HOME, or pass --ledger)",
            file=sys.stderr,
        )
        return 2
    engine = create_hub_engine(args.hub)
    try:
        result = replay_erasures(engine, ledger=ledger, by=_steward(), **_erasure_files(args))
    finally:
        engine.dispose()
    emit(
        args,
        f"{result.entries} erasure(s) in {ledger}: {result.redone} redone, {result.records} "
        f"source record(s) removed again, {result.golden_records} golden record(s) retired "
        f"again; {result.events} erased event(s) for the subscribers at the next syndication",
        ledger=str(ledger),
        entries=result.entries,
        redone=result.redone,
        records=result.records,
        golden_records=result.golden_records,
        events=result.events,
    )
    return 0


__all__ = [
    "cmd_erase",
    "cmd_erasure_replay",
    "cmd_export",
    "cmd_lookup",
    "cmd_merge",
    "cmd_review",
    "cmd_split",
]


# --- attribute overrides ------------------------------------------------------------------------


def _pin_values(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--set takes FIELD=VALUE, not {pair!r}")
        out[name.strip()] = value
    return out


def cmd_override_pin(args: argparse.Namespace) -> int:
    """Pin one attribute group of a golden record to values (``--set FIELD=VALUE``) or to a
    member record (``--record SOURCE:KEY``); the next consolidation applies it."""
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.survivorship import OverrideError, pin_attribute

    engine = create_hub_engine(args.hub)
    try:
        config = load_hub_config(Path(args.config) if args.config else None)
        values = _pin_values(args.set) if args.set else None
        oid = pin_attribute(
            engine,
            config,
            args.golden,
            args.group,
            values=values,
            record=args.record,
            by=_steward(),
            reason=args.reason,
        )
    except (OverrideError, ValueError) as exc:
        print(f"mdm: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    text = (
        f"override {oid}: {args.group} of {args.golden} pinned; the next consolidation applies it"
    )
    emit(args, text, override_id=oid, golden_id=args.golden, group=args.group, state="pending")
    return 0


def _change_override(args: argparse.Namespace, change: Callable[..., str]) -> str | None:
    """Run ``change(engine, override_id, steward, reason)`` on the hub: the golden id it
    returns, or None once a refusal is printed."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.survivorship import OverrideError

    engine = create_hub_engine(args.hub)
    try:
        return change(engine, args.override_id, _steward(), args.reason)
    except OverrideError as exc:
        print(f"mdm: {exc}", file=sys.stderr)
        return None
    finally:
        engine.dispose()


def cmd_override_remove(args: argparse.Namespace) -> int:
    """Remove an active override; the next consolidation gives the group back to the rules."""
    from mdm_orchestration.survivorship import remove_attribute_override

    gid = _change_override(args, remove_attribute_override)
    if gid is None:
        return 2
    text = f"override {args.override_id} of {gid} removed; the next consolidation applies it"
    emit(args, text, override_id=args.override_id, golden_id=gid, state="removal pending")
    return 0


def cmd_override_reviewed(args: argparse.Namespace) -> int:
    """Mark a retired override as looked at (its review item is done)."""
    from mdm_orchestration.survivorship import review_retired_override

    gid = _change_override(args, review_retired_override)
    if gid is None:
        return 2
    emit(args, f"override {args.override_id} of {gid}: reviewed", override_id=args.override_id)
    return 0


def cmd_override_list(args: argparse.Namespace) -> int:
    """The overrides (of one golden record, or the retired ones waiting for a review), newest
    first, with their state: pending, applied, retired, removed, removal pending."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.survivorship import attribute_overrides

    engine = create_hub_engine(args.hub)
    try:
        with engine.connect() as conn:
            found = attribute_overrides(
                conn, golden_id=args.golden, status=args.status, to_review=args.to_review
            )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([o.as_dict() for o in found], indent=2, sort_keys=True, default=str))
        return 0
    for o in found:
        pinned = (
            f"record {o.source}:{o.source_key}"
            if o.kind == "record"
            else ", ".join(f"{k}={v}" for k, v in o.pinned.items())
        )
        review = " (to review)" if o.review_status == "pending" else ""
        print(f"{o.id}  {o.golden_id}  {o.group}  {o.state}{review}  {pinned}  by {o.created_by}")
        if o.end_reason:
            print(f"      {o.ended_by}: {o.end_reason}")
    if not found:
        print("no override")
    return 0


def add_override_commands(sub: Any, command: Any) -> None:  # noqa: ANN401
    """Register ``mdm override`` on the CLI's sub-parsers (``command`` adds the shared flags)."""
    from mdm_orchestration.survivorship import ATTRIBUTE_GROUPS

    p = sub.add_parser(
        "override",
        help="pin attribute groups of golden records (pin, remove, list, reviewed)",
        description="Attribute overrides: a value, or a member record, pinned for one "
        "attribute group of a golden record. Survivorship applies them last, at the next "
        "consolidation; one whose sources change under it is retired for review.",
    )
    overrides = p.add_subparsers(dest="override_command", required=True)
    p = command(
        overrides,
        "pin",
        cmd_override_pin,
        "pin one attribute group of a golden record",
        "hub",
        "config",
        "json",
    )
    p.add_argument("golden", help="the golden id")
    p.add_argument("group", choices=list(ATTRIBUTE_GROUPS), help="the attribute group")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="a pinned value")
    p.add_argument("--record", help="pin to this member's values instead (SOURCE:KEY)")
    p.add_argument("--reason", required=True, help="why, kept with the override")
    p = command(
        overrides, "remove", cmd_override_remove, "remove an active override", "hub", "json"
    )
    p.add_argument("override_id", type=int, help="the override's number (mdm override list)")
    p.add_argument("--reason", required=True, help="why, kept with the override")
    p = command(
        overrides,
        "reviewed",
        cmd_override_reviewed,
        "a retired override was looked at",
        "hub",
        "json",
    )
    p.add_argument("override_id", type=int, help="the override's number")
    p.add_argument("--reason", required=True, help="what was decided")
    p = command(
        overrides, "list", cmd_override_list, "list overrides and their state", "hub", "json"
    )
    p.add_argument("--golden", help="of this golden id only")
    p.add_argument("--status", choices=["active", "retired", "removed"], help="of this status")
    p.add_argument("--to-review", action="store_true", help="retired ones waiting for a review")
