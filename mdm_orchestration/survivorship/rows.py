"""The rows one consolidation writes (golden records, their history, the outbox), named, and
the identities they carry: stable event ids and the digest of the survivorship configuration."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

import orjson

from mdm_orchestration.config import HubConfig

ACTIVE = "active"
#: Fixed namespace of the hub's event ids: the same (golden id, version) is always the same id.
EVENT_NAMESPACE = uuid.UUID("6f1c5e0a-3b1d-4c4e-9d6a-6d646d2d6875")


class GoldenRow(NamedTuple):
    """One row of ``golden_records`` (JSON columns already serialised)."""

    golden_id: str
    seq: int
    party_type: str
    status: str
    merged_into: str | None
    version: int
    attributes: str
    keys: str
    lineage: str
    consents: str
    lifecycle: str | None
    organisation_golden_id: str | None
    sources: str
    member_count: int
    content_hash: str
    #: datetimes, or as the database stores them (``hub.bulk``'s ``stored`` rows)
    created_at: datetime | str
    updated_at: datetime | str
    created_run_id: str | None
    updated_run_id: str | None


class HistoryRow(NamedTuple):
    """One row of ``golden_history``: a version of a golden record as it was written."""

    golden_id: str
    version: int
    status: str
    change: str
    changed: str
    party_type: str
    attributes: str
    lineage: str
    consents: str
    lifecycle: str | None
    organisation_golden_id: str | None
    sources: str
    members: str
    merged_into: str | None
    run_id: str | None
    recorded_at: datetime | str  # or as stored


class ChangeRow(NamedTuple):
    """One row of the outbox, ``golden_changes``."""

    event_id: str
    golden_id: str
    version: int
    event_type: str
    changed: str
    related: str
    run_id: str | None
    created_at: datetime | str  # or as stored
    #: JSON list of the business events (``events.yaml``) this change carries
    business_events: str = "[]"


GOLDEN_COLUMNS = GoldenRow._fields
HISTORY_COLUMNS = HistoryRow._fields
CHANGE_COLUMNS = ChangeRow._fields


#: ``json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))`` builds this
#: encoder on every call (a tenth of a consolidation's encoding at 100k): built once.
_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))
#: Exact types whose orjson bytes are the stdlib encoder's (ints too, within orjson's 64 bits:
#: beyond, orjson refuses). Not floats (``1e-05`` is ``0.00001`` there, NaN is ``null``), not
#: subclasses (an Enum is its value there, ``str()`` of it here), not what ``default`` makes.
#: Dict keys are not looked at: orjson refuses any key but an exact ``str``.
_SCALARS = frozenset({str, int, bool, type(None)})
_CONTAINERS = frozenset({dict, list, tuple})
_PLAIN_TYPES = _SCALARS | _CONTAINERS
_DICT, _TEXT = frozenset({dict}), frozenset({str})
#: Beyond these (orjson's own limit is 254 levels), or a cycle, the stdlib encoder decides.
_MAX_DEPTH, _MAX_ITEMS = 64, 1_000_000
#: What orjson writes as it is and the stdlib escapes (``ensure_ascii``): DEL and non-ASCII.
_UNESCAPED = re.compile("[\x7f-\U0010ffff]")


def _plain(level: Sequence[Any]) -> bool:
    """Whether the values of ``level`` hold only exact ``str``, ``int``, ``bool`` and
    ``None``, in exact dicts, lists and tuples. Looked at a level of nesting at a time, the
    types of a level counted in C (a golden state's lineage, dicts of dicts, is three levels:
    a walk value by value cost as much as the encoding it saves)."""
    seen = 0
    for _depth in range(_MAX_DEPTH):
        kinds = set(map(type, level))
        if kinds <= _SCALARS:
            return True
        if not kinds <= _PLAIN_TYPES:
            return False
        seen += len(level)
        if seen > _MAX_ITEMS:
            return False
        if kinds == _DICT:
            level = list(chain.from_iterable(map(dict.values, level)))
        else:
            level = list(
                chain.from_iterable(
                    v.values() if type(v) is dict else v for v in level if type(v) in _CONTAINERS
                )
            )
    return False


def _escape(match: re.Match[str]) -> str:
    """A character as ``ensure_ascii`` writes it: ``\\uXXXX`` in lower case, a surrogate
    pair beyond the BMP."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _orjson(value: Any) -> str:  # noqa: ANN401
    """orjson's JSON of a :func:`_plain` value, escaped as the stdlib escapes (or the stdlib's
    own, for what orjson refuses: lone surrogates, integers beyond 64 bits, non-text keys)."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value)
    if out.isascii() and b"\x7f" not in out:
        return out.decode("ascii")
    return _UNESCAPED.sub(_escape, out.decode())


def to_json(value: Any) -> str:  # noqa: ANN401
    """Canonical JSON of a hub value: sorted keys, compact, ASCII (golden content hashes are
    digests of it, so it must never change).

    The bytes are those of the stdlib encoder above. A value of plain types only
    (:func:`_plain`: text, integers, booleans, nulls, in dicts and lists, what survivorship
    makes) is written by orjson, several times faster, with the characters it leaves as they
    are (DEL, non-ASCII) escaped as the stdlib escapes them; what orjson refuses (lone
    surrogates, integers beyond 64 bits, keys that are not text) and every other value
    (floats, dates, subclasses, nested deeper than :data:`_MAX_DEPTH`, a cycle) goes through
    the stdlib encoder itself."""
    kind = type(value)
    if kind in _SCALARS:  # text alone: the stdlib's escaper is C, faster than a call out
        return _ENCODER.encode(value)
    if (kind is list and _TEXT.issuperset(map(type, value))) or _plain([value]):
        return _orjson(value)
    return _ENCODER.encode(value)


def to_json_each(values: Sequence[Any]) -> list[str]:
    """:func:`to_json` of each of ``values``, their types looked at once."""
    if _plain(values):
        return [_orjson(v) for v in values]
    return [to_json(v) for v in values]


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def event_id(golden_id: str, version: int) -> str:
    """``str(uuid.uuid5(EVENT_NAMESPACE, f"{golden_id}:{version}"))``, its version and variant
    bits set on the SHA-1 digest's bytes directly (a ``UUID`` object per event was a fifth of
    the writer's row building)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{golden_id}:{version}".encode()).digest()[:16]  # noqa: S324 - RFC 4122 version 5
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def config_digest(config: HubConfig) -> str:
    """Changes when anything that decides golden values changes (survivorship, trust ranks)."""
    trust = {name: s.trust_rank for name, s in sorted(config.sources.items())}
    text = to_json({"survivorship": config.survivorship.model_dump(), "trust": trust})
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = [
    "ACTIVE",
    "CHANGE_COLUMNS",
    "EVENT_NAMESPACE",
    "GOLDEN_COLUMNS",
    "HISTORY_COLUMNS",
    "ChangeRow",
    "GoldenRow",
    "HistoryRow",
    "config_digest",
    "event_id",
    "to_json",
    "to_json_each",
]
