"""The faster consolidation writes exactly what the straightforward one wrote (issue 21): a
golden state's digest, now joined from its fields' JSON, against the SHA-256 of its whole JSON,
and ``Survivor.survive`` (a cluster of one, the memo of the measures) against the reference
algorithm below, on generated clusters. Content hashes stored in a hub must not move,
or every hub would emit an update for every golden record."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mdm_orchestration.cleansing.text import fold
from mdm_orchestration.config import (
    GOLDEN_GROUPS,
    SURVIVORSHIP_STRATEGIES,
    AttributeRule,
    SurvivorshipConfig,
    load_hub_config,
)
from mdm_orchestration.survivorship import Survived, Survivor
from mdm_orchestration.survivorship.consolidate import GoldenState, Previous
from mdm_orchestration.survivorship.rows import to_json
from mdm_orchestration.survivorship.rules import (
    INVALIDATING_FLAGS,
    KEY_FIELDS,
    PUBLIC_FIELDS,
    VALIDITY,
    VALIDITY_COLUMN,
    Choice,
    Record,
    _json_value,
    _missing,
    _updated,
)
from tests.conftest import CONFIG_DIR

SOURCES = load_hub_config(CONFIG_DIR).sources


def reference_json(value: Any) -> str:  # noqa: ANN401
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


# --- the digest ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8), st.text(max_size=8) | st.integers() | st.floats(), max_size=5
    ),
    st.dictionaries(st.text(max_size=8), st.dictionaries(st.text(max_size=4), st.text())),
    st.sampled_from([None, "customer", "lead"]),
    st.lists(st.text(max_size=6), max_size=3),
)
def test_the_digest_is_that_of_the_whole_state(attributes, lineage, lifecycle, members):
    state = GoldenState(
        party_type="person",
        attributes=attributes,
        keys={"email_key": "a@b"},
        lineage=lineage,
        consents={"marketing": {"granted": True, "stated_at": None}},
        lifecycle=lifecycle,
        organisation_golden_id=None,
        sources=sorted(members),
        members=members,
    )
    whole = hashlib.sha256(reference_json(vars(state)).encode()).hexdigest()
    texts, digest = state.encoded()
    assert digest == whole == state.digest()
    assert texts.attributes == reference_json(attributes)
    assert texts.members == reference_json(members)


# --- survive: the reference algorithm ------------------------------------------------------


def reference_value_key(record: Record, group: str) -> tuple[Any, ...]:
    """``Survivor._value_key`` as it was before it read the record's filled columns."""
    fields = KEY_FIELDS.get(group) or PUBLIC_FIELDS[group]
    if any(not _missing(record.get(f)) for f in fields):
        return tuple(record.get(f) for f in fields)
    return tuple(
        fold(str(record.get(f))) if not _missing(record.get(f)) else None
        for f in PUBLIC_FIELDS[group]
    )


def reference_valid(record: Record, group: str) -> bool:
    """``Survivor._valid`` as it was (a flag at a time)."""
    column = VALIDITY_COLUMN.get(group)
    if column is not None and record.get(column) is False:
        return False
    bad = INVALIDATING_FLAGS.get(group)
    return not (bad and any(f in bad for f in record.get("quality_flags") or ()))


def reference_survive(s: Survivor, records: Sequence[Record]) -> Survived:
    """``Survivor.survive`` as it was before the cluster-of-one path and the memo (and the
    value keys, validity and lineage dicts measured faster)."""

    def keep_best(strategy: str, cands: list[Record], group: str) -> list[Record]:
        measure: Callable[[Record], Any]
        if strategy == "valid_only":
            return [r for r in cands if reference_valid(r, group)]
        if strategy == "prefer_valid":
            return [r for r in cands if reference_valid(r, group)] or cands
        if strategy == "source_trust":
            measure = lambda r: -s.trust.rank(r["source"], group)  # noqa: E731
        elif strategy == "most_recent":
            measure = _updated
        elif strategy == "most_complete":
            measure = lambda r: s._completeness(r, group)  # noqa: E731
        else:
            counts = Counter(reference_value_key(r, group) for r in cands)
            measure = lambda r: counts[reference_value_key(r, group)]  # noqa: E731
        scores = [measure(r) for r in cands]
        return [r for r, v in zip(cands, scores, strict=True) if v == max(scores)]

    def tie_break(group: str | None) -> Callable[[Record], tuple[Any, ...]]:
        parts: list[Callable[[Record], Any]] = []
        for name in s.config.tie_break:
            if name == "most_recent":
                parts.append(lambda r: -_updated(r).timestamp())
            elif name == "source_trust":
                parts.append(lambda r: s.trust.rank(r["source"], group))
            elif name == "most_complete" and group is not None:
                parts.append(lambda r: -s._completeness(r, group))
        return lambda r: (*(p(r) for p in parts), r["source_record_id"])

    def choose(group: str) -> tuple[Record, str] | None:
        cands = [r for r in records if any(not _missing(r.get(f)) for f in PUBLIC_FIELDS[group])]
        if not cands:
            return None
        rule = None
        if len({reference_value_key(r, group) for r in cands}) == 1:
            rule = "only_value" if len(cands) == 1 else "agreed"
        for strategy in s.config.attributes[group].strategies:
            if len(cands) == 1 and strategy not in VALIDITY:
                continue
            kept = keep_best(strategy, cands, group)
            if not kept:
                return None
            if rule is None and len({reference_value_key(r, group) for r in kept}) == 1:
                rule = strategy
            cands = kept
        return min(cands, key=tie_break(group)), rule or "tie_break"

    out = Survived()
    for group in GOLDEN_GROUPS:
        chosen = choose(group)
        if chosen is None:
            continue
        record, rule = chosen
        choice = Choice(
            record["source_record_id"], record["source"], record["source_key"], rule
        ).as_dict()
        for f in PUBLIC_FIELDS[group]:
            if not _missing(record.get(f)):
                out.attributes[f] = _json_value(record.get(f))
                out.lineage[f] = choice
        for f in KEY_FIELDS.get(group, ()):
            if not _missing(record.get(f)):
                out.keys[f] = record[f]
    latest: dict[str, tuple[tuple[Any, ...], Record, bool]] = {}
    for r in records:
        for purpose, granted in (r.get("consents") or {}).items():
            key = (-_updated(r).timestamp(), s.trust.rank(r["source"]), r["source_record_id"])
            if purpose not in latest or key < latest[purpose][0]:
                latest[purpose] = (key, r, bool(granted))
    for purpose in sorted(latest):
        _key, r, granted = latest[purpose]
        stamp = _updated(r)
        out.consents[purpose] = {
            "granted": granted,
            "stated_at": None if stamp == datetime.min.replace(tzinfo=UTC) else stamp.isoformat(),
            **Choice(r["source_record_id"], r["source"], r["source_key"], "most_recent").as_dict(),
        }
    with_stage = [r for r in records if not _missing(r.get("lifecycle"))]
    if with_stage:
        order = tie_break(None)
        rank = {name: i for i, name in enumerate(s.config.lifecycle_order)}
        best = min(with_stage, key=lambda r: (rank.get(r["lifecycle"], len(rank)), order(r)))
        out.lifecycle = best["lifecycle"]
        out.lineage["lifecycle"] = Choice(
            best["source_record_id"], best["source"], best["source_key"], "lifecycle_order"
        ).as_dict()
    out.sources = sorted({r["source"] for r in records})
    return out


# --- survive: generated clusters ------------------------------------------------------------

#: Few distinct values, so that records agree, tie and differ.
small_text = st.sampled_from([None, "", "Ann", "ann", "Ann Lee", "Bob", "B"])
FLAGS = ["email_invalid", "phone_invalid", "postcode_invalid", "birth_date_invalid", "other"]
STAMP = datetime(2024, 1, 1, tzinfo=UTC)


@st.composite
def records(draw: st.DrawFn, rid: str) -> dict[str, Any]:
    columns = {c for cs in GOLDEN_GROUPS.values() for c in cs}
    out: dict[str, Any] = {
        "source_record_id": rid,
        "source": draw(st.sampled_from([*sorted(SOURCES), "unknown"])),
        "source_key": f"k-{rid}",
        "source_updated_at": draw(
            st.none()
            | st.sampled_from([STAMP + timedelta(days=d) for d in range(3)])
            | st.just(datetime(2024, 1, 2))  # naive: read as UTC
        ),
        "lifecycle": draw(st.sampled_from([None, "", "customer", "lead", "prospect"])),
        "consents": draw(
            st.dictionaries(st.sampled_from(["email", "sms"]), st.booleans(), max_size=2)
        ),
        "quality_flags": draw(st.lists(st.sampled_from(FLAGS), max_size=2)),
    }
    for column in sorted(columns):
        if column.endswith("_valid"):
            out[column] = draw(st.sampled_from([None, True, False]))
        elif column == "birth_date":
            out[column] = draw(st.sampled_from([None, date(1980, 1, 1), date(1981, 2, 3)]))
        else:
            out[column] = draw(small_text)
    return out


@st.composite
def clusters(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(min_value=1, max_value=4))
    return [draw(records(f"r{i}")) for i in range(size)]


rules = (
    st.lists(st.sampled_from(SURVIVORSHIP_STRATEGIES), min_size=1, max_size=3)
    .filter(lambda strategies: not {"valid_only", "prefer_valid"} <= set(strategies))
    .map(lambda strategies: AttributeRule(strategies=strategies))
)
configs = st.one_of(
    st.just(SurvivorshipConfig()),
    st.builds(
        lambda rs, tie: SurvivorshipConfig(
            attributes=dict(zip(GOLDEN_GROUPS, rs, strict=True)), tie_break=tie
        ),
        st.lists(rules, min_size=len(GOLDEN_GROUPS), max_size=len(GOLDEN_GROUPS)),
        st.lists(
            st.sampled_from(["most_recent", "source_trust", "most_complete"]),
            max_size=3,
            unique=True,
        ),
    ),
)


@settings(max_examples=1000, deadline=None)
@given(configs, clusters())
def test_survive_is_the_reference_algorithm(config, cluster):
    s = Survivor(config, SOURCES)
    new, old = s.survive(cluster), reference_survive(s, cluster)
    assert new == old
    assert to_json(vars(new)) == reference_json(vars(old))


# --- the previous content, decoded on first use -------------------------------------------


def test_previous_decodes_its_json_columns_once_on_first_use():
    calls = []

    def decode(text: str) -> Any:  # noqa: ANN401
        calls.append(text)
        return json.loads(text)

    p = Previous(
        2, "h", "person", '{"a":1}', '{"a":{}}', "{}", None, None, '["crm"]', decode=decode
    )
    assert calls == []
    assert p.attributes == {"a": 1} and p.attributes is p.attributes
    assert p.sources == ["crm"] and p.consents == {} and p.lineage == {"a": {}}
    assert calls == ['{"a":1}', '["crm"]', "{}", '{"a":{}}']
    # Read decoded (no ``decode``: psycopg2 decodes JSON itself), values are kept as they are.
    q = Previous(1, "h", "person", {"a": 1}, {}, {}, "lead", None)
    assert q.attributes == {"a": 1} and q.sources == [] and q.lifecycle == "lead"
