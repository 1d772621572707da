"""What the CLI prints: the hub's status and a review pair side by side."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mdm_orchestration.inprocess import Target


def hub_report(target: Target) -> dict[str, Any]:
    """``hub_status`` and each subscriber's state (none when the configuration is unreadable)."""
    from mdm_orchestration.config import ConfigError
    from mdm_orchestration.hub.status import hub_status
    from mdm_orchestration.syndication import subscriber_status

    engine = target.engine()
    try:
        status = hub_status(engine)
        try:
            subs = subscriber_status(engine, target.hub_config())
        except ConfigError:
            subs = {}
        status["pending_events"] = {name: s["pending"] for name, s in subs.items()}
        status["subscribers"] = subs
        return status
    finally:
        engine.dispose()


def print_status(status: dict[str, Any]) -> None:
    """The human-readable ``mdm status``."""
    print(
        f"extracts loaded {status['extracts']}, rejected {status['rejected_extracts']}, "
        f"duplicate drops {status['duplicate_extracts']}"
    )
    print(
        f"rows landed {status['rows_landed']} = loaded {status['rows_loaded']} "
        f"+ quarantined {status['quarantined_rows']}"
    )
    print(
        f"source records {status['source_records']} (versions {status['source_record_versions']})"
    )
    if status["per_source"]:
        print(
            f"{'source':<12}{'extracts':>9}{'landed':>10}{'loaded':>10}{'quarant.':>10}{'records':>10}"
        )
        for source, s in status["per_source"].items():
            print(
                f"{source:<12}{s.get('extracts', 0):>9}{s.get('rows_landed', 0):>10}"
                f"{s.get('rows_loaded', 0):>10}{s.get('quarantined_rows', 0):>10}"
                f"{s.get('source_records', 0):>10}"
            )
    print(
        f"cleansed records {status['cleansed_records']}, quarantined by cleansing "
        f"{status['cleanse_quarantined_rows']}, pending {status['versions_pending_cleansing']}"
    )
    print(
        f"clusters {status['clusters']} over {status['clustered_records']} records, "
        f"review queue {status['review_queue']}"
    )
    print(
        f"golden records {status['golden_records']} (persons {status['golden_persons']}, "
        f"organisations {status['golden_organisations']}), households "
        f"{status['multi_person_households']} with 2+ persons, change events "
        f"{status['golden_changes']}"
    )
    for skip in status.get("skipped_landing_files", []):
        # repr: a name with control characters is shown escaped, never acted on by the terminal
        print(f"skipped landing file {skip['path']!r}: {skip['reason']}")
    for name, s in status.get("subscribers", {}).items():
        since = f", failing since {s['failing_since']}" if s["failing_since"] else ""
        print(
            f"subscriber {name}: {s['status']}, delivered {s['delivered_total']}, "
            f"pending {s['pending']}{since}"
        )
    for name, d in status.get("dead_letters", {}).items():
        print(
            f"dead letters {name}: {d['dead']} refused, {d['held']} held behind them, "
            f"{d['queued']} queued for retry (mdm syndicate dlq list)"
        )
    if status["quarantine_reasons"]:
        reasons = ", ".join(f"{k} {v}" for k, v in status["quarantine_reasons"].items())
        print(f"quarantine reasons: {reasons}")


REVIEW_FIELDS = (
    "source",
    "source_key",
    "party_type",
    "given_name",
    "middle_name",
    "family_name",
    "suffix",
    "company_key",
    "birth_date",
    "email_key",
    "phone",
    "street_number",
    "street_name",
    "unit",
    "city",
    "region",
    "postcode",
    "national_id",
)
VERDICTS = {"m": "match", "d": "distinct", "u": "unsure"}


def show_pair(left: dict[str, Any], right: dict[str, Any], score: float) -> None:
    print(f"\nmatch probability {score:.2f}")
    print(f"{'':<16}{'left':<36}{'right':<36}")
    for name in REVIEW_FIELDS:
        a, b = left.get(name), right.get(name)
        a = "" if a is None or a != a else str(a)
        b = "" if b is None or b != b else str(b)
        if a or b:
            mark = " " if a == b else "≠"
            print(f"{name:<15}{mark}{a[:35]:<36}{b[:35]:<36}")


def show_explanation(explanation: Any, stored_score: float | None = None) -> str:  # noqa: ANN401
    """Why the model scored the pair so (see ``matching.explain``), field by field; notes when
    the engine's stored score differs from the model's (a rule or a cap moved it)."""
    text = "why: " + explanation.text()
    if stored_score is not None and abs(stored_score - explanation.score) > 0.005:
        text += (
            f"\n  (the queue's score {stored_score:.3f} is the engine's, after its rules and "
            "caps, for the records as they were scored)"
        )
    return text


def emit(args: argparse.Namespace, text: str, **data: Any) -> None:  # noqa: ANN401
    """``text`` for a person, or (``--json``) ``data`` as a JSON object."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str) if args.json else text)


__all__ = [
    "REVIEW_FIELDS",
    "VERDICTS",
    "emit",
    "hub_report",
    "print_hub",
    "print_status",
    "show_explanation",
    "show_pair",
]


def print_hub(args: argparse.Namespace, target: Target) -> None:
    """The hub's status, as text or (``--json``) as JSON."""
    status = hub_report(target)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print_status(status)
