"""``to_json`` (orjson where its bytes are provably the stdlib's, the stdlib encoder otherwise)
writes exactly ``json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))``:
golden content hashes are digests of it, and a changed byte would update every golden record
of every hub."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mdm_orchestration.survivorship.rows import to_json, to_json_each


def reference_json(value: Any) -> str:  # noqa: ANN401
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


class Colour(enum.Enum):
    RED = 1


class Word(str, enum.Enum):  # noqa: UP042 - the str mixin, not StrEnum (its str() differs)
    A = "a"


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


class Number(int):
    pass


class Mapping(dict):  # type: ignore[type-arg]
    pass


@dataclass
class Point:
    x: int


#: Text that JSON escapes or orjson writes differently: controls, quotes, backslashes, DEL,
#: Latin-1, the line separators, the BMP's end, beyond the BMP, lone surrogates.
HOSTILE = st.sampled_from(
    [
        "",
        '"',
        "\\",
        "\x00",
        "\x1f",
        "\x7f",
        "\x80",
        "\xe9",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\uffff",
        "\U0001f600",
        "\U0010ffff",
        "\ud800",
        "\udfff",
        "/",
        "</script>",
        "1e5",
    ]
)
texts = (
    st.text()
    | st.text(alphabet=st.characters(codec="utf-8"))
    | HOSTILE
    | st.lists(HOSTILE | st.text(max_size=3), max_size=4).map("".join)
)
scalars = st.one_of(
    texts,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30]),
    st.floats(),
    st.sampled_from([1e16, 1e-5, 1e22, 0.1, -0.0, float("nan"), float("inf"), 123456789.0]),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.times(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.sampled_from([Colour.RED, Word.A, Level.HIGH, Text("t\xe9"), Number(7), Point(1)]),
    st.sampled_from([date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5), time(1, 2)]),
    st.sampled_from([Decimal("1.10"), uuid.UUID(int=5)]),
)
keys = texts | st.sampled_from(["a", "B", "\xe9", "\u20ac", "\U0001f600", "é", "z"])
#: Non-text keys the stdlib turns into text (and orjson refuses).
odd_keys = st.one_of(st.integers(), st.booleans(), st.none(), st.sampled_from([Text("k")]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
        st.dictionaries(keys, inner, max_size=3).map(Mapping),
    ),
    max_leaves=30,
)
#: What survivorship makes: text, booleans and nulls in dicts of dicts and lists.
hub_values = st.recursive(
    texts | st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=60,
)


def same(value: Any) -> None:  # noqa: ANN401
    try:
        expected = reference_json(value)
    except (TypeError, ValueError) as error:
        try:
            to_json(value)
        except type(error):
            return
        raise AssertionError(f"to_json did not raise {error!r}") from None
    assert to_json(value) == expected
    assert to_json_each([value, value]) == [expected, expected]


@settings(max_examples=3000, deadline=None)
@given(values)
def test_to_json_is_the_stdlib_encoder_on_every_type(value):
    same(value)


@settings(max_examples=2000, deadline=None)
@given(hub_values)
def test_to_json_is_the_stdlib_encoder_on_hub_values(value):
    same(value)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(odd_keys, scalars, min_size=1, max_size=3), st.dictionaries(keys, scalars))
def test_to_json_of_keys_that_are_not_text(odd, plain):
    same(odd)
    same({**plain, **odd})
    same([plain, odd])


def test_to_json_of_deep_nesting_and_cycles():
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    same(deep)
    shared = {"a": 1}
    same({"x": shared, "y": [shared, shared]})
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    cycle["again"] = cycle
    try:
        to_json(cycle)
    except ValueError as error:
        assert "Circular" in str(error)
    else:
        raise AssertionError("a cycle was encoded")
