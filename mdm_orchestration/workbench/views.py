"""What the pages show, gathered through the domain faces: the review queue and its
explanations (matching's ``pending_review`` / ``explain_item``, as ``mdm review`` shows them),
the golden record's whole story (survivorship's ``lookup``, what ``mdm lookup --golden``
prints), and the corrections (matching's ``record_override`` / ``remove_overrides``, as
``mdm merge`` / ``mdm split``; survivorship's ``pin_attribute`` for attribute overrides).

The few reads no face answers yet (one review item by id, a household's members, which
subscribers hold a golden record) are single-table selects here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from mdm_orchestration.config import MatchingConfig
from mdm_orchestration.hub.store import as_utc
from mdm_orchestration.hub.tables import DELIVERIES, HOUSEHOLD_MEMBERS, REVIEW
from mdm_orchestration.matching import (
    NoModel,
    UnknownRecord,
    current_cleansed,
    explain_item,
    load_models,
    pending_review,
    record_override,
    remove_overrides,
    resolve_record,
)
from mdm_orchestration.survivorship import (
    ATTRIBUTE_GROUPS,
    OverrideError,
    attribute_overrides,
    golden_as_of,
    golden_history,
    lookup,
    override_counts,
    override_history,
    pin_attribute,
    remove_attribute_override,
    review_retired_override,
)
from mdm_orchestration.workbench.masking import masked, masked_mapping

#: The record fields shown side by side, in this order (the cleansed form the model compares).
PAIR_FIELDS = (
    "source",
    "source_key",
    "party_type",
    "given_name",
    "middle_name",
    "family_name",
    "suffix",
    "company_key",
    "legal_form",
    "birth_date",
    "email_key",
    "phone",
    "street",
    "unit",
    "postcode",
    "city",
    "country",
    "national_id",
    "web_domain",
)
MEMBER_FIELDS = ("given_name", "family_name", "company_key", "email_key", "phone", "street", "city")
STATE_WORDS = {
    "agree": "agreed",
    "near": "nearly agreed",
    "disagree": "disagreed",
    "missing": "missing on a side",
}


class CorrectionError(ValueError):
    """A merge or split that cannot be done as asked (the message says why)."""


def _text(value: Any) -> str:  # noqa: ANN401
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


# --- review -----------------------------------------------------------------------------------


def review_item(conn: Connection, item_id: int) -> Any | None:  # noqa: ANN401 - a review row
    return conn.execute(select(REVIEW).where(REVIEW.c.id == item_id)).first()


def queue(conn: Connection, limit: int = 50) -> list[Any]:
    """The pending items, ranked as ``mdm review`` ranks them."""
    return list(pending_review(conn, limit))


@dataclass(frozen=True)
class PairView:
    item: Any
    rows: list[dict[str, Any]]  # field, left, right, same
    explanation: dict[str, Any] | None
    left_ref: str
    right_ref: str


def pair_view(
    conn: Connection, item: Any, matching: MatchingConfig, models: dict[str, Any], show: bool
) -> PairView | None:
    """The two records side by side and the explanation per field (None: a record left)."""
    frame = current_cleansed(conn, [item.left_record_id, item.right_record_id])
    records = {r["source_record_id"]: r for r in frame.to_dict("records")}
    if item.left_record_id not in records or item.right_record_id not in records:
        return None
    left = masked_mapping(records[item.left_record_id], show)
    right = masked_mapping(records[item.right_record_id], show)
    rows = []
    for name in PAIR_FIELDS:
        a, b = _text(left.get(name)), _text(right.get(name))
        if a or b:
            same = _text(records[item.left_record_id].get(name)) == _text(
                records[item.right_record_id].get(name)
            )
            rows.append({"field": name, "left": a, "right": b, "same": same})
    explanation = None
    if models:
        found = explain_item(conn, item.left_record_id, item.right_record_id, models, matching)
        if found is not None:
            explanation = found.as_dict()
            for f in explanation["fields"]:
                f["left"] = _text(masked(f["field"], f["left"]) if not show else f["left"])
                f["right"] = _text(masked(f["field"], f["right"]) if not show else f["right"])
                f["words"] = STATE_WORDS.get(f["state"], f["state"])
            explanation["fields"].sort(
                key=lambda f: (f["state"] == "missing", -abs(f["contribution"]), f["field"])
            )
    return PairView(
        item=item,
        rows=rows,
        explanation=explanation,
        left_ref=f"{left['source']}:{left['source_key']}",
        right_ref=f"{right['source']}:{right['source_key']}",
    )


def models_of(state: Any, conn: Connection) -> dict[str, Any]:  # noqa: ANN401
    """The stored match models (the service's cache when it has one); empty without a model."""
    try:
        cached = getattr(state, "models", None)
        return cached(conn) if callable(cached) else load_models(conn)
    except NoModel:
        return {}


# --- the golden record --------------------------------------------------------------------------


def golden_view(
    conn: Connection, golden_id: str, show: bool, as_of: datetime | None = None
) -> dict[str, Any] | None:
    """Everything the 360 page shows of a golden record: ``mdm lookup --golden``'s document
    (values, lineage, consents, members, links), its history, its household's other members,
    the subscribers that hold it, and, with ``as_of``, the version current then."""
    found = lookup(conn, golden_id=golden_id)
    if not found:
        return None
    doc = found[0]
    gid = doc["golden_id"]
    lineage = doc.get("lineage") or {}
    attributes = [
        {
            "name": name,
            "value": _text(masked(name, value) if not show else value),
            "lineage": lineage.get(name) or {},
        }
        for name, value in sorted((doc.get("attributes") or {}).items())
    ]
    if "lifecycle" in lineage:
        attributes.append(
            {
                "name": "lifecycle",
                "value": doc.get("lifecycle") or "",
                "lineage": lineage["lifecycle"],
            }
        )
    record_ids = [x["record_id"] for x in doc["xref"]]
    frame = current_cleansed(conn, record_ids)
    cleansed = {r["source_record_id"]: r for r in frame.to_dict("records")}
    members = []
    for x in doc["xref"]:
        values = masked_mapping(cleansed.get(x["record_id"], {}), show)
        members.append(
            {
                **x,
                "values": {f: _text(values.get(f)) for f in MEMBER_FIELDS},
                "supplies": sorted(
                    a
                    for a, lin in lineage.items()
                    if (lin or {}).get("record_id") == x["record_id"]
                ),
            }
        )
    history = [
        {
            "version": v["version"],
            "change": v["change"],
            "status": v["status"],
            "changed": list(v.get("changed") or []),
            "recorded_at": as_utc(v["recorded_at"]).isoformat(timespec="seconds"),
            "members": len(v.get("members") or []),
            "merged_into": v.get("merged_into"),
        }
        for v in golden_history(conn, gid)
    ]
    household = []
    if doc.get("household_id"):
        household = sorted(
            conn.execute(
                select(HOUSEHOLD_MEMBERS.c.golden_id).where(
                    HOUSEHOLD_MEMBERS.c.household_id == doc["household_id"],
                    HOUSEHOLD_MEMBERS.c.golden_id != gid,
                )
            ).scalars()
        )
    subscribers = [
        {
            "subscriber": r.subscriber,
            "version": r.version,
            "present": bool(r.present),
            "delivered_at": as_utc(r.delivered_at).isoformat(timespec="seconds"),
        }
        for r in conn.execute(
            select(DELIVERIES)
            .where(DELIVERIES.c.golden_id == gid)
            .order_by(DELIVERIES.c.subscriber)
        )
    ]
    consents = [
        {"purpose": purpose, **(c or {})}
        for purpose, c in sorted((doc.get("consents") or {}).items())
    ]
    past = None
    if as_of is not None:
        version = golden_as_of(conn, gid, as_of)
        if version is not None:
            past = {
                "version": version["version"],
                "status": version["status"],
                "recorded_at": as_utc(version["recorded_at"]).isoformat(timespec="seconds"),
                "attributes": [
                    {
                        "name": k,
                        "value": _text(masked(k, v) if not show else v),
                        "lineage": (version.get("lineage") or {}).get(k) or {},
                    }
                    for k, v in sorted((version.get("attributes") or {}).items())
                ],
            }
    current = doc.get("attributes") or {}
    pins = [_override_row(o, show) for o in attribute_overrides(conn, golden_id=gid)]
    pin_forms = [
        {
            "group": group,
            "fields": [{"name": f, "value": _text(current.get(f)) if show else ""} for f in fields],
        }
        for group, fields in ATTRIBUTE_GROUPS.items()
        if doc["party_type"] != "organisation" or group in ORGANISATION_GROUPS
    ]
    return {
        "doc": doc,
        "requested_id": golden_id,
        "overrides": pins,
        "override_history": [
            {**vars(e), "at": e.at.isoformat(timespec="seconds")}
            for e in override_history(conn, golden_id=gid)
        ],
        "pin_forms": pin_forms,
        "splits": splits_of(conn, gid),
        "attributes": attributes,
        "members": members,
        "history": history,
        "household": household,
        "subscribers": subscribers,
        "consents": consents,
        "as_of": past,
    }


def search(conn: Connection, kind: str, text: str, country: str = "US") -> list[dict[str, Any]]:
    """Golden records by name, email, phone or source key (``source:key``), as lookup finds
    them; at most 50."""
    text = text.strip()
    if not text:
        return []
    if kind == "source_key":
        if ":" not in text:
            raise ValueError("a source key is written SOURCE:KEY (crm:003A00000173)")
        source, key = text.split(":", 1)
        return lookup(conn, source=source.strip(), key=key.strip())[:50]
    if kind == "golden_id":
        return lookup(conn, golden_id=text)
    if kind not in ("name", "email", "phone"):
        raise ValueError("search by name, email, phone, source key or golden id")
    return lookup(conn, country=country, **{kind: text})[:50]


def search_rows(docs: list[dict[str, Any]], show: bool) -> list[dict[str, Any]]:
    out = []
    for d in docs:
        a = d.get("attributes") or {}
        out.append(
            {
                "golden_id": d["golden_id"],
                "party_type": d["party_type"],
                "name": a.get("full_name") or a.get("company_name") or "",
                "email": _text(masked("email", a.get("email")) if not show else a.get("email")),
                "phone": _text(masked("phone", a.get("phone")) if not show else a.get("phone")),
                "city": a.get("city") or "",
                "sources": ", ".join(d.get("sources") or []),
                "records": len(d.get("xref") or []),
            }
        )
    return out


# --- corrections ------------------------------------------------------------------------------

#: The attribute groups an organisation has (a person's are all of them).
ORGANISATION_GROUPS = frozenset({"organisation", "email", "phone", "address", "national_id"})
STATE_TEXT = {
    "pending": "pending: the next reconsolidation applies it",
    "applied": "applied",
    "retired": "retired: the sources changed under it",
    "removed": "removed",
    "removal pending": "removed: the next reconsolidation gives the value back",
}


def _override_row(o: Any, show: bool) -> dict[str, Any]:  # noqa: ANN401 - an override view
    pinned = (
        f"record {o.source}:{o.source_key}"
        if o.kind == "record"
        else ", ".join(f"{k}={_text(v if show else masked(k, v))}" for k, v in o.pinned.items())
    )
    state = STATE_TEXT.get(o.state, o.state)
    if o.state == "applied" and o.applied_version:
        state = f"applied in version {o.applied_version}"
    return {
        **o.as_dict(),
        "pinned_text": pinned,
        "state_text": state,
        "to_review": o.review_status == "pending",
    }


def pin_from_form(
    engine: Engine,
    config: Any,
    golden_id: str,
    form: dict[str, str],
    by: str,
    reason: str,  # noqa: ANN401
) -> dict[str, Any]:
    """Pin one attribute group from the 360 page's form: ``group``, ``pin_to`` (``values``, or
    a member record as ``SOURCE:KEY``) and ``value_<field>`` for each of the group's fields."""
    group = form.get("group", "")
    if group not in ATTRIBUTE_GROUPS:
        raise CorrectionError(f"no attribute group {group!r}")
    pin_to = form.get("pin_to", "values").strip() or "values"
    try:
        if pin_to == "values":
            values = {f: form.get(f"value_{f}", "") for f in ATTRIBUTE_GROUPS[group]}
            oid = pin_attribute(
                engine, config, golden_id, group, values=values, by=by, reason=reason
            )
        else:
            oid = pin_attribute(
                engine, config, golden_id, group, record=pin_to[:200], by=by, reason=reason
            )
    except OverrideError as exc:
        raise CorrectionError(str(exc)) from None
    return {
        "override_id": oid,
        "group": group,
        "kind": "values" if pin_to == "values" else "record",
    }


def _on_own_override(
    engine: Engine,
    golden_id: str,
    override_id: int,
    by: str,
    reason: str,
    change: Callable[[Engine, int, str, str], str],
) -> dict:
    """Apply ``change`` to an override once it is known to be one of this golden record's."""
    with engine.connect() as conn:
        mine = {o.id for o in attribute_overrides(conn, golden_id=golden_id)}
    if override_id not in mine:
        raise CorrectionError(f"golden record {golden_id} has no override {override_id}")
    try:
        change(engine, override_id, by, reason)
    except OverrideError as exc:
        raise CorrectionError(str(exc)) from None
    return {"override_id": override_id}


def remove_pin(engine: Engine, golden_id: str, override_id: int, by: str, reason: str) -> dict:
    """Remove an active override of this golden record."""
    return _on_own_override(engine, golden_id, override_id, by, reason, remove_attribute_override)


def pin_reviewed(engine: Engine, golden_id: str, override_id: int, by: str, reason: str) -> dict:
    """A steward has looked at a retired override of this golden record."""
    return _on_own_override(engine, golden_id, override_id, by, reason, review_retired_override)


def overrides_to_review(conn: Connection, show: bool) -> list[dict[str, Any]]:
    """Retired overrides waiting for a steward (the sources changed under them)."""
    return [_override_row(o, show) for o in attribute_overrides(conn, to_review=True, limit=50)]


def splits_of(conn: Connection, golden_id: str) -> list[dict[str, Any]]:
    """The splits made on this golden record (from the audit trail), each with how many of
    its cannot-links still stand (none: undone) and the split-off record's reference."""
    from mdm_orchestration.hub.tables import OVERRIDES, SOURCES
    from mdm_orchestration.workbench.audit import SPLIT, audit_trail

    out = []
    for e in audit_trail(conn, action=SPLIT, target=f"golden:{golden_id}", limit=50):
        pairs = [tuple(sorted(p)) for p in e.details.get("cannot_link") or []]
        standing = sum(
            conn.execute(
                select(OVERRIDES.c.id).where(
                    OVERRIDES.c.left_record_id == a,
                    OVERRIDES.c.right_record_id == b,
                    OVERRIDES.c.kind == "cannot_link",
                )
            ).first()
            is not None
            for a, b in pairs
        )
        ref = conn.execute(
            select(SOURCES.c.source, SOURCES.c.source_key).where(
                SOURCES.c.id == e.details.get("record_id")
            )
        ).first()
        out.append(
            {
                "audit_id": e.id,
                "at": e.at.isoformat(timespec="seconds"),
                "actor": e.actor,
                "reason": e.reason,
                "record": f"{ref.source}:{ref.source_key}" if ref else e.details.get("record_id"),
                "links": len(pairs),
                "standing": standing,
            }
        )
    return out


def undo_split(engine: Engine, golden_id: str, audit_id: int, by: str, reason: str) -> dict:
    """Undo a split made on this golden record: its cannot-links are removed (kept as removed
    links, with who and why), and the next reconsolidation may join the record again."""
    from mdm_orchestration.workbench.audit import SPLIT, audit_entry

    with engine.connect() as conn:
        entry = audit_entry(conn, audit_id)
    if entry is None or entry.action != SPLIT or entry.target != f"golden:{golden_id}":
        raise CorrectionError(f"no split {audit_id} of golden record {golden_id}")
    links = [(a, b) for a, b in entry.details.get("cannot_link") or []]
    # All of the split's cannot-links in one transaction: never a split half undone.
    removed = [list(p) for p in remove_overrides(engine, links, "cannot_link", by, reason)]
    if not removed:
        raise CorrectionError("this split was undone already")
    return {
        "golden_id": golden_id,
        "split": audit_id,
        "record_id": entry.details.get("record_id"),
        "removed_cannot_link": removed,
    }


def merge_golden(
    engine: Engine, golden_id: str, other: str, by: str, reason: str
) -> dict[str, Any]:
    """Merge two golden records: a must-link between a record of each (``mdm merge``), which
    the next reconsolidation applies. ``other`` is a golden id or ``SOURCE:KEY``."""
    with engine.connect() as conn:
        this = lookup(conn, golden_id=golden_id)
        if ":" in other:
            try:
                resolve_record(conn, other)
            except UnknownRecord as exc:
                raise CorrectionError(str(exc)) from None
            source, key = other.split(":", 1)
            that = lookup(conn, source=source, key=key)
        else:
            that = lookup(conn, golden_id=other.strip())
    if not this:
        raise CorrectionError(f"no golden record {golden_id!r}")
    if not that:
        raise CorrectionError("no golden record holds that id or source record")
    a, b = this[0], that[0]
    if a["golden_id"] == b["golden_id"]:
        raise CorrectionError("these are one golden record already")
    if a["party_type"] != b["party_type"]:
        raise CorrectionError("a person and an organisation cannot be merged")
    if not a["xref"] or not b["xref"]:
        raise CorrectionError("a golden record without source records cannot be merged")
    left, right = a["xref"][0]["record_id"], b["xref"][0]["record_id"]
    record_override(engine, left, right, "must_link", by, reason)
    return {"golden_ids": [a["golden_id"], b["golden_id"]], "must_link": [[left, right]]}


def split_record(
    engine: Engine, golden_id: str, record: str, by: str, reason: str
) -> dict[str, Any]:
    """Unmerge one source record out of its golden record: a cannot-link to every co-member
    (``mdm split`` with each), which the next reconsolidation applies."""
    with engine.connect() as conn:
        found = lookup(conn, golden_id=golden_id)
        if not found:
            raise CorrectionError(f"no golden record {golden_id!r}")
        try:
            rid = resolve_record(conn, record)
        except UnknownRecord as exc:
            raise CorrectionError(str(exc)) from None
    members = [x["record_id"] for x in found[0]["xref"]]
    if rid not in members:
        raise CorrectionError("that source record is not a member of this golden record")
    others = [m for m in members if m != rid]
    if not others:
        raise CorrectionError("the golden record has no other member to split it from")
    for other in others:
        record_override(engine, rid, other, "cannot_link", by, reason)
    return {
        "golden_id": found[0]["golden_id"],
        "record_id": rid,
        "cannot_link": [[rid, o] for o in others],
    }


# --- overview, and whether decisions were applied ---------------------------------------------

#: The counts of the overview, stage by stage (keys of ``hub_status``, what ``mdm status`` shows).
STAGES = (
    ("landed", ("extracts", "rejected_extracts", "rows_landed", "rows_loaded", "quarantined_rows")),
    ("cleansed", ("source_records", "cleansed_records", "versions_pending_cleansing")),
    ("matched", ("clustered_records", "clusters", "review_queue")),
    (
        "mastered",
        (
            "golden_records",
            "golden_persons",
            "golden_organisations",
            "golden_merged",
            "golden_retired",
        ),
    ),
    ("syndicated", ("golden_changes", "dead_lettered_events")),
)


def overview(engine: Engine, config: Any) -> dict[str, Any]:  # noqa: ANN401
    """Counts per stage, quarantine reasons, the review backlog and the subscribers' lag."""
    from mdm_orchestration.hub.status import hub_status
    from mdm_orchestration.syndication import subscriber_status

    status = hub_status(engine)
    with engine.connect() as conn:
        pins = override_counts(conn)
    stages = [(name, [(k, status.get(k)) for k in keys if k in status]) for name, keys in STAGES]
    subscribers = [
        {"name": name, **s} for name, s in sorted(subscriber_status(engine, config).items())
    ]
    return {
        "stages": stages,
        "quarantine": sorted((status.get("quarantine_reasons") or {}).items()),
        "backlog": status.get("review_queue", 0),
        "subscribers": subscribers,
        "last_match_run": status.get("last_match_run"),
        "overrides": pins,
    }


def last_match_run_at(conn: Connection) -> datetime | None:
    from sqlalchemy import func

    from mdm_orchestration.hub.tables import MATCH_RUNS

    at = conn.execute(select(func.max(MATCH_RUNS.c.finished_at))).scalar()
    return as_utc(at) if at else None


def recent_decisions(conn: Connection, actor: str, limit: int = 10) -> list[dict[str, Any]]:
    """The user's latest decisions, each with whether a matching run has finished since (the
    run that retrains with the label and reclusters applies it)."""
    from mdm_orchestration.workbench.audit import DECIDE, audit_trail

    applied_upto = last_match_run_at(conn)
    return [
        {
            "target": e.target,
            "verdict": e.details.get("verdict"),
            "at": e.at.isoformat(timespec="seconds"),
            "applied": applied_upto is not None and applied_upto >= e.at,
        }
        for e in audit_trail(conn, limit=limit, actor=actor, action=DECIDE)
    ]
