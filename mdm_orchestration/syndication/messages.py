"""What a subscriber receives for an outbox event: pure decisions, no I/O.

An outbox event announces a new version of a golden record. For each subscriber the event
becomes an *upsert* (the golden record's values, cut to the attributes it subscribed to), a
*removal* (it held the record and may no longer: consent withdrawn, out of its filter, merged
away, retired), an *erased* notice (it ever received the record), or nothing.

The business events an ``updated`` change carries (``events.yaml``: ``address_changed``,
``became_customer``...) follow its upsert as messages of their own (:func:`expand`), each
with the event type set to the business event's name and a deterministic id of its own
(:func:`business_event_id`), so a receiver drops a redelivery of each. Every message says what
changed (``changed``, cut to what the subscriber may see), and carries the subscriber's own
keys of the golden record (``source_keys``), its household, its organisation's golden id and
the consents for the subscriber's purpose (:class:`Extras`, read by the delivery loop).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

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
    organisation_golden_id: str | None = None
    #: The household recorded on the version by the households refresh after it was written
    #: ("" none; ``None`` not recorded yet, so the current membership stands in).
    household_id: str | None = None
    #: The version's source records (record ids), read only for a subscriber that asked for
    #: its ``source_keys``.
    members: tuple[str, ...] = ()


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
    #: The business events (events.yaml) the change carries, in events.yaml order.
    business_events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Extras:
    """What the delivery loop reads beside the golden record's version: the subscriber's keys
    of it (source -> its source keys, for the sources it named) and its household, both as of
    the version a message announces."""

    source_keys: Mapping[str, list[str]] = field(default_factory=dict)
    household_id: str | None = None


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
    #: What changed (attributes, ``lifecycle``, ``organisation_golden_id``,
    #: ``consents.<purpose>``), cut to what the subscriber may see; empty in a snapshot.
    changed: list[str] = field(default_factory=list)
    #: The subscriber's own keys of the golden record: source -> source keys.
    source_keys: dict[str, list[str]] = field(default_factory=dict)
    household_id: str | None = None
    organisation_golden_id: str | None = None
    #: The consents for the subscriber's purpose (every purpose's when it names none).
    consents: dict[str, Any] | None = None
    #: A business event: the change event it derives from (its event id and type); ``None``
    #: for a change event itself.
    caused_by: str | None = None
    change_type: str | None = None

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
            "changed": self.changed,
            "source_keys": self.source_keys,
            "household_id": self.household_id,
            "organisation_golden_id": self.organisation_golden_id,
            "consents": self.consents,
            "caused_by": self.caused_by,
            "change_type": self.change_type,
        }

    @property
    def removes(self) -> bool:
        return (self.change_type or self.event_type) not in UPSERT_TYPES


_JSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SERIALIZE_NUMPY
)


def message_json(message: Message) -> bytes:
    """The message as the JSON every transport sends (UTF-8, compact): orjson, several times
    faster than ``json.dumps`` for the same values. Anything it does not know (a datetime, a
    decimal) goes as its ``str()``, as before; NaN and infinities as ``null`` (valid JSON); an
    integer beyond 64 bits, which orjson refuses, through ``json.dumps``."""
    body = message.as_dict()
    try:
        return orjson.dumps(body, default=str, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False, default=str).encode()


def business_event_id(event_id: str, name: str) -> str:
    """The id (and idempotency key) of business event ``name`` of change event ``event_id``:
    the same on every delivery and replay."""
    return str(uuid.uuid5(uuid.UUID(event_id), name))


@functools.lru_cache(maxsize=256)
def _iso(at: datetime) -> str:
    # A consolidation writes all its events at one instant: format it once.
    return at.isoformat()


def subscribed_attributes(sub: Subscriber) -> tuple[str, ...]:
    return tuple(sub.attributes) or GOLDEN_ATTRIBUTES


def _field(v: GoldenVersion, name: str) -> Any:  # noqa: ANN401
    if name == "lifecycle":
        return v.lifecycle
    if name == "party_type":
        return v.party_type
    return v.attributes.get(name)


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
    for name, values in sub.where.items():
        if _field(v, name) not in values:
            return "filtered"
    if (
        sub.consent_purpose
        and (v.consents.get(sub.consent_purpose) or {}).get("granted") is not True
    ):
        return "no_consent"
    return None


@functools.lru_cache(maxsize=64)
def _visible_names(attributes: tuple[str, ...]) -> frozenset[str]:
    return frozenset(attributes) | {*ALWAYS_SENT, "organisation_golden_id", "members"}


def visible_changes(sub: Subscriber, changed: list[str]) -> list[str]:
    """The names in ``changed`` the subscriber may see: its attributes, the lifecycle, the
    organisation link, the members, and consents (for its purpose only, when it has one)."""
    if not changed:
        return []
    seen = _visible_names(subscribed_attributes(sub))
    purpose = sub.consent_purpose
    return [
        name
        for name in changed
        if name in seen
        or (name.startswith("consents.") and (purpose is None or name == "consents." + purpose))
    ]


def _consents(sub: Subscriber, v: GoldenVersion) -> dict[str, Any]:
    if sub.consent_purpose is None:
        return dict(v.consents)
    return {sub.consent_purpose: v.consents.get(sub.consent_purpose)}


def upsert(
    sub: Subscriber,
    v: GoldenVersion,
    event_type: str,
    event_id: str,
    seq: int | None,
    at: datetime,
    related: list[str] | None = None,
    changed: list[str] | None = None,
) -> Message:
    wanted = subscribed_attributes(sub)
    return Message(
        event_id=event_id,
        event_type=event_type,
        golden_id=v.golden_id,
        version=v.version,
        seq=seq,
        occurred_at=_iso(at),
        party_type=v.party_type,
        lifecycle=v.lifecycle,
        sources=list(v.sources),
        attributes={a: v.attributes.get(a) for a in wanted},
        related=list(related or []),
        changed=visible_changes(sub, list(changed or [])),
        organisation_golden_id=v.organisation_golden_id,
        consents=_consents(sub, v),
    )


def passes_changed_any(sub: Subscriber, event: OutboxEvent) -> bool:
    """The subscriber's ``changed_any`` criterion: an ``updated`` change that touched none of
    the names is not for it (a merge or split survivor always is: its golden ids changed)."""
    if not sub.changed_any or event.event_type != "updated" or event.related:
        return True
    return bool(set(sub.changed_any) & set(event.changed))


def expand(
    sub: Subscriber,
    event: OutboxEvent,
    version: GoldenVersion | None,
    held: Held | None,
) -> tuple[list[Message], Held | None]:
    """Every message ``event`` makes for the subscriber, in order: the change event's own
    (when it selected that type) and then one per business event it selected, each an upsert
    of the same version under its own id; and what it holds afterwards. Business events go
    only with an upsert: a change that removes the record from the subscriber (a withdrawn
    consent it needs, a value out of its ``where``) is the removal alone."""
    message, after = decide(sub, event, version, held)
    if message is not None and message.removes:
        return [message], after
    chosen = [b for b in event.business_events if sub.wants(b)]
    if not chosen or version is None or not passes_changed_any(sub, event):
        return ([] if message is None else [message]), after
    if message is None:
        # Only business events selected (or nothing the subscriber receives changed): the
        # business events still go, and the subscriber then holds the version they carry.
        if held is not None and event.version <= held.version:
            return [], held
        if why_not(sub, version) is not None:
            return [], after
        after = Held(event.version, True)
    base = message or upsert(
        sub,
        version,
        event.event_type,
        event.event_id,
        event.seq,
        event.created_at,
        event.related,
        event.changed,
    )
    out = [message] if message is not None else []
    out += [
        replace(
            base,
            event_id=business_event_id(event.event_id, name),
            event_type=name,
            caused_by=event.event_id,
            change_type=event.event_type,
        )
        for name in chosen
    ]
    return out, after


def with_extras(sub: Subscriber, message: Message, extras: Extras | None) -> Message:
    """The message, built for this delivery, given the subscriber's keys of the golden record
    and its household (in place)."""
    if extras is not None:
        message.source_keys = {s: list(extras.source_keys.get(s, [])) for s in sub.source_keys}
        message.household_id = extras.household_id
    return message


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
            occurred_at=_iso(at),
            related=list(event.related),
            reason=reason,
            changed=visible_changes(sub, list(event.changed)),
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
        kind = event.event_type if sub.wants(event.event_type) else "removed"
        return notice(kind, event.event_type), Held(event.version, False)
    assert version is not None, "a created/updated/split event has its version in the history"
    reason = why_not(sub, version)
    if reason is not None:
        if not present:
            return None, held
        return notice("removed", reason), Held(event.version, False)
    if not sub.wants(event.event_type) or not passes_changed_any(sub, event):
        return None, held
    if present and event.event_type == "updated" and not event.related:
        # A survivor of a merge or split is always sent: the golden ids it stands for changed.
        relevant = set(subscribed_attributes(sub)) | set(ALWAYS_SENT)
        if not relevant & set(event.changed):
            return None, held  # nothing it receives changed (consent it needs is still given)
    return upsert(
        sub, version, event.event_type, event.event_id, event.seq, at, event.related, event.changed
    ), Held(event.version, True)
