"""A webhook request has one deadline over connect, send and read (issue 17, defect 4): a
server that drips one byte a second fails the delivery at the deadline instead of holding it
for ever; retries wait a capped, jittered backoff."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mdm_orchestration.config import Subscriber, WebhookTarget
from mdm_orchestration.syndication.delivery import backoff_delay
from mdm_orchestration.syndication.messages import Message
from mdm_orchestration.syndication.transports import DeliveryError, WebhookTransport

STATUS_AND_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nContent-Type: text/plain\r\n\r\n"


class SlowDrip:
    """A loopback HTTP server that reads a request, then sends its answer one byte a second:
    from the status line (``where="headers"``) or after complete headers (``where="body"``)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.stop = threading.Event()
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            answer = STATUS_AND_HEADERS + b"x" * 200
            if self.where == "body":
                conn.sendall(STATUS_AND_HEADERS)
                answer = b"x" * 200
            for byte in answer:
                if self.stop.wait(1.0):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=2)


@pytest.fixture(params=["headers", "body"])
def slow_drip(request) -> Iterator[SlowDrip]:
    server = SlowDrip(request.param)
    yield server
    server.close()


def _message(n: int = 1) -> Message:
    return Message(
        event_id=f"00000000-0000-0000-0000-{n:012d}",
        event_type="created",
        golden_id="G0000000000001",
        version=n,
        seq=n,
        occurred_at="2026-12-01T00:00:00+00:00",
        party_type="person",
        lifecycle="customer",
        attributes={"given_name": "Ada"},
        related=[],
    )


def test_a_slow_drip_server_fails_the_delivery_at_the_deadline(slow_drip):
    transport = WebhookTransport(WebhookTarget(url=slow_drip.url, timeout_seconds=1.5))
    started = time.monotonic()
    with pytest.raises(DeliveryError) as failed:
        transport.send([_message(1), _message(2)], "batch")
    elapsed = time.monotonic() - started
    # Per socket operation the 1.5 s timeout never fires (a byte comes every second): the
    # total deadline does. Nothing was delivered.
    assert elapsed < 4.0, elapsed
    assert failed.value.delivered == 0
    assert "TimeoutError" in str(failed.value)
    assert slow_drip.requests == 1


def test_the_backoff_doubles_up_to_its_cap_with_jitter():
    sub = Subscriber(
        transport="webhook",
        webhook={"url": "https://hooks.example/in"},
        backoff_seconds=1,
        max_backoff_seconds=8,
    )
    rng = random.Random(17)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (40, 8), (5000, 8)]:
        delays = [backoff_delay(sub, failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, delays)
        assert len(set(delays)) > 1  # jitter: subscribers failing together spread out
    assert backoff_delay(sub, 0) == 0.0
    assert (
        Subscriber(transport="webhook", webhook={"url": "https://h.example/"}).max_backoff_seconds
        == 60
    )
