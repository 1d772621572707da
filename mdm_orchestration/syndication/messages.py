"""What a subscriber receives for an outbox event: pure decisions, no I/O.

An outbox event announces a new version of a golden record. For each subscriber the event
becomes an *upsert* (the golden record's values, cut to the attributes it subscribed to), a
*removal* (it held the record and may no longer: consent withdrawn, out of its filter, merged
away, retired), an *erased* notice (it ever received the record), or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mdm_orchestration.config import GOLDEN_ATTRIBUTES, Subscriber

UPSERT_TYPES = ("snapshot", "created", "updated", "split")
#: Changes a subscriber always sees in its payload, whatever attributes it chose.
ALWAYS_SENT = ("lifecycle",)


@dataclass(frozen=True)
class GoldenVersion:
    """One version of a golden record (a ``golden_history`` row, or the current record)."""

    golden_id: str
    version: int
    status: str
    party_type: str
    attributes: dict[str, Any]
    consents: dict[str, Any]
    lifecycle: str | None
    sources: list[str]
    merged_into: str | None = None


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    event_id: str
    golden_id: str
    version: int
    event_type: str
    changed: list[str]
    related: list[str]
    created_at: datetime


@dataclass(frozen=True)
class Held:
    """What the delivery ledger says a subscriber holds of one golden record."""

    version: int
    present: bool


@dataclass
class Message:
    event_id: str
    event_type: str  # snapshot created updated split merged retired removed erased
    golden_id: str
    version: int
    seq: int | None
    occurred_at: str
    party_type: str | None = None
    lifecycle: str | None = None
    sources: list[str] = field(default_factory=list)
    attributes: dict[str, Any] | None = None
    related: list[str] = field(default_factory=list)
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "golden_id": self.golden_id,
            "version": self.version,
            "seq": self.seq,
            "occurred_at": self.occurred_at,
            "party_type": self.party_type,
            "lifecycle": self.lifecycle,
            "sources": self.sources,
            "attributes": self.attributes,
            "related": self.related,
            "reason": self.reason,
        }

    @property
    def removes(self) -> bool:
        return self.event_type not in UPSERT_TYPES


def subscribed_attributes(sub: Subscriber) -> tuple[str, ...]:
    return tuple(sub.attributes) or GOLDEN_ATTRIBUTES


def why_not(sub: Subscriber, v: GoldenVersion) -> str | None:
    """``None`` if the subscriber may hold this version; else the reason it may not."""
    if v.status != "active":
        return v.status
    f = sub.filter
    if f.party_types and v.party_type not in f.party_types:
        return "filtered"
    if f.lifecycles and v.lifecycle not in f.lifecycles:
        return "filtered"
    if f.sources and not set(f.sources) & set(v.sources):
        return "filtered"
    if (
        sub.consent_purpose
        and (v.consents.get(sub.consent_purpose) or {}).get("granted") is not True
    ):
        return "no_consent"
    return None


def upsert(
    sub: Subscriber,
    v: GoldenVersion,
    event_type: str,
    event_id: str,
    seq: int | None,
    at: datetime,
    related: list[str] | None = None,
) -> Message:
    wanted = subscribed_attributes(sub)
    return Message(
        event_id=event_id,
        event_type=event_type,
        golden_id=v.golden_id,
        version=v.version,
        seq=seq,
        occurred_at=at.isoformat(),
        party_type=v.party_type,
        lifecycle=v.lifecycle,
        sources=list(v.sources),
        attributes={a: v.attributes.get(a) for a in wanted},
        related=list(related or []),
    )


def decide(
    sub: Subscriber, event: OutboxEvent, version: GoldenVersion | None, held: Held | None
) -> tuple[Message | None, Held | None]:
    """The message for ``event`` (or ``None``) and what the subscriber holds afterwards."""
    at = event.created_at

    def notice(kind: str, reason: str | None = None) -> Message:
        return Message(
            event_id=event.event_id,
            event_type=kind,
            golden_id=event.golden_id,
            version=event.version,
            seq=event.seq,
            occurred_at=at.isoformat(),
            related=list(event.related),
            reason=reason,
        )

    if held is not None and event.version <= held.version:
        return None, held  # already delivered (a snapshot read a newer version)
    if event.event_type == "erased":
        if held is None:
            return None, None  # never received it: nothing to tell
        return notice("erased"), Held(event.version, False)
    present = held is not None and held.present
    if event.event_type in ("merged", "retired"):
        if not present:
            return None, held
        kind = event.event_type if event.event_type in sub.events else "removed"
        return notice(kind, event.event_type), Held(event.version, False)
    assert version is not None, "a created/updated/split event has its version in the history"
    reason = why_not(sub, version)
    if reason is not None:
        if not present:
            return None, held
        return notice("removed", reason), Held(event.version, False)
    if event.event_type not in sub.events:
        return None, held
    if present and event.event_type == "updated" and not event.related:
        # A survivor of a merge or split is always sent: the golden ids it stands for changed.
        relevant = set(subscribed_attributes(sub)) | set(ALWAYS_SENT)
        if not relevant & set(event.changed):
            return None, held  # nothing it receives changed (consent it needs is still given)
    return upsert(
        sub, version, event.event_type, event.event_id, event.seq, at, event.related
    ), Held(event.version, True)
