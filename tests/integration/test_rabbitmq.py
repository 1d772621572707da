"""The RabbitMQ transport on the real broker (127.0.0.1:5672): a vhost of the test's own,
created with ``rabbitmqctl`` and deleted afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from mdm_orchestration.config import AmqpTarget
from mdm_orchestration.syndication.amqp import AmqpTransport
from mdm_orchestration.syndication.messages import Message
from mdm_orchestration.syndication.transports import DeliveryError

pytestmark = pytest.mark.rabbitmq

BROKER = ("127.0.0.1", 5672)


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _unavailable(message: str) -> None:
    """Skip here; fail under CI (``.ci/run`` starts the broker, so a skip there is a bug)."""
    if os.environ.get("CI") or os.environ.get("MDM_REQUIRE_SERVICES"):
        pytest.fail(message + " (CI requires the broker)")
    pytest.skip(message)


@pytest.fixture
def vhost() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        _unavailable("rabbitmqctl is not installed")
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError:
        _unavailable("RabbitMQ is not running on 127.0.0.1:5672")
    name = f"mdm-test-{uuid.uuid4().hex[:12]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _ctl("delete_vhost", name)


def _url(vhost: str, port: int = BROKER[1]) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/{vhost}"


def _message(golden: str, version: int, event_type: str = "updated") -> Message:
    return Message(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{golden}/{version}")),
        event_type=event_type,
        golden_id=golden,
        version=version,
        seq=version,
        occurred_at="2026-12-02T10:00:00+00:00",
        party_type="person",
        lifecycle="customer",
        attributes={"city": f"Town {version}"},
    )


def _drain(vhost: str, queue: str = "crm") -> list[tuple[Any, Any, dict[str, Any]]]:
    """Every message waiting in ``queue`` of ``vhost``, taken off it: (method, properties, body)."""
    connection = pika.BlockingConnection(pika.URLParameters(_url(vhost)))
    try:
        channel = connection.channel()
        got = []
        while True:
            method, props, body = channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                return got
            got.append((method, props, json.loads(body)))
    finally:
        connection.close()


def test_messages_are_persistent_confirmed_and_routed_by_event_type(vhost: str) -> None:
    target = AmqpTarget(
        url=_url(vhost),
        exchange="mdm.events",
        routing_key="mdm.{party_type}.{event_type}",
        queue="crm-inbox",
    )
    transport = AmqpTransport(target)
    messages = [_message("g1", 1, "created"), _message("g2", 1, "created"), _message("g1", 2)]
    try:
        transport.send(messages, "1-3")
    finally:
        transport.close()
    got = _drain(vhost, "crm-inbox")
    assert [(b["golden_id"], b["version"]) for _, _, b in got] == [("g1", 1), ("g2", 1), ("g1", 2)]
    method, props, body = got[2]
    assert method.routing_key == "mdm.person.updated"
    assert props.delivery_mode == 2  # persistent
    assert props.message_id == messages[2].event_id
    assert props.headers["Idempotency-Key"] == messages[2].event_id
    assert props.content_type == "application/json"
    assert body["attributes"] == {"city": "Town 2"}


@pytest.mark.parametrize("window", [1, 7, 500])
def test_many_messages_through_a_sliding_window_arrive_once_in_order_in_few_writes(
    vhost: str, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More messages than a window, in chunks: every one confirmed and queued once, in order;
    the frames published between two turns of the loop go to the socket together (pika
    alone writes three per message)."""
    from mdm_orchestration.syndication import amqp

    transport = AmqpTransport(
        AmqpTarget(url=_url(vhost), exchange="mdm.events", queue="crm", confirm_window=window)
    )
    writes = 0
    emit = amqp.SelectConnection._adapter_emit_data

    def counted(self: Any, data: bytes) -> None:  # noqa: ANN401
        nonlocal writes
        writes += 1
        emit(self, data)

    monkeypatch.setattr(amqp.SelectConnection, "_adapter_emit_data", counted)
    messages = [_message(f"g{i % 37}", i) for i in range(1, 1235)]
    try:
        transport.send(messages, "1-1234")
    finally:
        transport.close()
    sent_in = writes  # before the drain's own connection writes
    got = _drain(vhost)
    assert [b["event_id"] for _, _, b in got] == [m.event_id for m in messages]
    # A write per turn of the loop: each chunk of min(50, window // 2) messages (at least 1)
    # and each wait for a full window, plus the connection's own frames; three per message
    # (3,702 here) without the coalescing.
    chunk = max(1, min(50, window // 2))
    assert sent_in <= 2 * len(messages) / chunk + 40


def test_a_message_no_queue_takes_in_the_middle_of_a_window_stops_the_count_there(
    vhost: str,
) -> None:
    """Of 300 messages, the 201st is unroutable (no binding takes its routing key): the send
    fails with the 200 before it delivered, whatever the broker confirmed after it."""
    transport = AmqpTransport(
        AmqpTarget(url=_url(vhost), exchange="mdm.events", queue="crm", bindings=["updated"])
    )
    messages = [_message(f"g{i}", i) for i in range(1, 301)]
    messages[200] = _message("g201", 201, "created")
    try:
        with pytest.raises(DeliveryError, match="UnroutableError") as caught:
            transport.send(messages, "1-300")
        assert caught.value.delivered == 200
        transport.send([], "nothing")  # an empty batch needs no broker at all
    finally:
        transport.close()
    got = _drain(vhost)
    assert [b["version"] for _, _, b in got][:200] == list(range(1, 201))


def test_a_message_no_queue_takes_fails_the_delivery(vhost: str) -> None:
    # No queue bound: the broker returns the message (mandatory), so it is not "delivered".
    transport = AmqpTransport(AmqpTarget(url=_url(vhost), exchange="nobody.listens"))
    try:
        with pytest.raises(DeliveryError, match="UnroutableError") as caught:
            transport.send([_message("g1", 1)], "1-1")
        assert caught.value.delivered == 0
    finally:
        transport.close()


def test_a_broker_that_is_down_is_a_delivery_error_naming_no_secret(vhost: str) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = AmqpTarget(
        url=f"amqp://guest:s3cret-pw@127.0.0.1:{port}/{vhost}", queue="q", timeout_seconds=2
    )
    transport = AmqpTransport(target)
    with pytest.raises(DeliveryError) as caught:
        transport.send([_message("g1", 1)], "1-1")
    assert caught.value.delivered == 0
    assert "s3cret" not in str(caught.value)


class _Proxy:
    """A TCP relay to the broker that the test can cut, as a broker restart or a network
    fault would. A subclass may watch the bytes relayed (``_relayed``) and cut there."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.every: list[socket.socket] = []  # closed at the end
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(BROKER)
            self.conns += [client, upstream]
            self.every += [client, upstream]
            for a, b, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, outbound), daemon=True).start()

    def _relayed(self, size: int, outbound: bool) -> None:
        """``size`` bytes were passed on (``outbound``: from the client to the broker)."""

    def _pipe(self, a: socket.socket, b: socket.socket, outbound: bool) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
                self._relayed(len(data), outbound)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for s in list(self.conns):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.conns.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()
        for s in self.every:
            s.close()


def test_a_dropped_connection_fails_then_the_next_send_reconnects_and_loses_nothing(
    vhost: str,
) -> None:
    proxy = _Proxy()
    try:
        transport = AmqpTransport(
            AmqpTarget(url=_url(vhost, proxy.port), queue="inbox", timeout_seconds=5)
        )
        transport.send([_message("g1", 1), _message("g2", 1)], "1-2")
        proxy.cut()  # the connection drops between two batches
        batch = [_message("g1", 2), _message("g2", 2)]
        with pytest.raises(DeliveryError) as caught:
            transport.send(batch, "3-4")
        # The delivery loop resends what was not confirmed: the same messages again.
        transport.send(batch[caught.value.delivered :], "3-4")
        transport.close()
    finally:
        proxy.close()
    got = [(b["golden_id"], b["version"]) for _, _, b in _drain(vhost, "inbox")]
    assert got == [("g1", 1), ("g2", 1), ("g1", 2), ("g2", 2)]
