"""The AMQP transport's bookkeeping without a broker: the confirms of a window, an empty send,
and the JSON of messages and of the hub's JSON columns (orjson, with json where it differs)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from mdm_orchestration.config import AmqpTarget
from mdm_orchestration.hub.store import _json_loads
from mdm_orchestration.syndication.amqp import AmqpTransport, _Window
from mdm_orchestration.syndication.messages import Message, message_json


def test_confirms_count_each_message_once_and_stop_at_the_first_failure() -> None:
    w = _Window(first_tag=11, size=6)  # tags 11..16
    w.confirm(12, multiple=True, ok=True)  # 11, 12
    w.confirm(12, multiple=True, ok=True)  # again: nothing new
    w.confirm(14, multiple=False, ok=True)  # 14 alone
    assert (w.settled, w.confirmed()) == (3, 2)
    w.confirm(13, multiple=False, ok=True)
    assert w.confirmed() == 4
    w.fail(4, "UnroutableError")  # 15 returned, then acked (a return comes before its ack)
    w.confirm(16, multiple=True, ok=True)  # 15 and 16
    assert (w.settled, w.confirmed(), w.failure) == (6, 4, "UnroutableError")
    w.confirm(9, multiple=True, ok=True)  # a tag before the window: ignored
    assert w.settled == 6


def test_a_nack_fails_from_that_message_on() -> None:
    w = _Window(first_tag=1, size=4)
    w.confirm(2, multiple=True, ok=True)
    w.confirm(3, multiple=False, ok=False)
    w.confirm(4, multiple=False, ok=True)
    assert (w.settled, w.confirmed(), w.failure) == (4, 2, "NackError")


def test_an_empty_send_needs_no_broker() -> None:
    nobody = AmqpTarget(url="amqp://guest:guest@127.0.0.1:1/%2F", timeout_seconds=1)
    AmqpTransport(nobody).send([], "empty")  # nothing listens on port 1: no error


def _message(**attributes: object) -> Message:
    return Message(
        event_id="e1",
        event_type="updated",
        golden_id="G1",
        version=1,
        seq=1,
        occurred_at="2026-12-03T00:00:00+00:00",
        attributes=dict(attributes),
    )


def test_message_json_has_the_values_json_dumps_gave() -> None:
    m = _message(
        at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        amount=Decimal("1.50"),
        score=np.float64(0.25),
        count=np.int64(3),
        name="Zoë",
        big=123456789012345678901234567890,
    )
    got = json.loads(message_json(m))
    assert got["attributes"] == {
        "at": "2026-01-02 03:04:00+00:00",  # str(), as json.dumps(default=str) wrote it
        "amount": "1.50",
        "score": 0.25,
        "count": "3",  # the big integer sends the message through json.dumps, as before
        "name": "Zoë",
        "big": 123456789012345678901234567890,
    }
    plain = json.loads(message_json(_message(count=np.int64(3), nan=math.nan)))
    assert plain["attributes"] == {"count": 3, "nan": None}  # NaN as null: valid JSON


def test_json_columns_read_as_json_loads_reads_them() -> None:
    for text in (
        '{"a": [1, 2.5, null, true, "caf\\u00e9"], "b": {"c": -0.0}}',
        "123456789012345678901234567890",
        "-9223372036854775809",
        '{"acct": 18446744073709551616}',
        "NaN",
        "1e400",
        '"\\ud800"',
    ):
        assert repr(_json_loads(text)) == repr(json.loads(text)), text


def test_an_amqp_subscriber_delivers_in_larger_batches_unless_told() -> None:
    from mdm_orchestration.config import AMQP_BATCH_SIZE, Subscriber

    amqp = {"url": "amqp://guest:guest@127.0.0.1:5672/%2F"}
    assert Subscriber(transport="amqp", amqp=amqp).batch_size == AMQP_BATCH_SIZE == 5000
    assert Subscriber(transport="amqp", amqp=amqp, batch_size=10).batch_size == 10
    assert Subscriber(transport="file", file={"folder": "out"}).batch_size == 1000
