"""RELIABILITY rows 13 and 14, against a webhook sink on 127.0.0.1 that applies each event once
per ``Idempotency-Key`` (as the matrix asks a target to) and keeps the newest version of each
golden record. The hub is real (SQLite and PostgreSQL); its outbox is written directly
(tests/outbox.py: syndication's input, with the invariants tests/helpers.py checks).

Row 13: the target down with connection refused (nothing listening on its port): retried with
backoff, nothing recorded as sent while it is down, a run that runs out of tries fails and the
next one resumes; once it listens, every event arrives, in version order per golden record.

Row 14: the target acknowledges a batch and the hub is killed before it records the delivery
(``syndication:after_send_before_commit``, a forked child SIGKILLed): the next run sends the
batch again under the same keys, and the sink applies each event once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.syndication import SubscriberFailing, ensure_state, syndicate
from tests.conftest import CONFIG_DIR
from tests.helpers import _golden_invariants
from tests.outbox import Outbox


class DedupingSink:
    """A webhook target that applies an event once per ``Idempotency-Key``: a key seen before is
    acknowledged (200) and changes nothing. It keeps each golden record's newest version."""

    def __init__(self, port: int = 0) -> None:
        self.keys: list[str] = []  # every request's key, in arrival order
        # Requests whose key was not their event's id: checked by the tests (an assert in the
        # server's thread would only reset the connection).
        self.mismatched: list[tuple[str | None, str]] = []
        self.applied: list[tuple[str, int]] = []  # (golden_id, version) of each applied event
        self.state: dict[str, int] = {}
        self._done: set[str] = set()
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                with sink.lock:
                    if key != body["event_id"]:
                        sink.mismatched.append((key, body["event_id"]))
                    sink.keys.append(key)
                    if key not in sink._done:
                        sink._done.add(key)
                        sink.applied.append((body["golden_id"], body["version"]))
                        old = sink.state.get(body["golden_id"], 0)
                        sink.state[body["golden_id"]] = max(old, body["version"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_of(port: int) -> str:
    return f"http://127.0.0.1:{port}/events"


def config_for(tmp_path: Path, port: int, **extra):  # type: ignore[no-untyped-def]
    config_dir = tmp_path / "config"
    if not config_dir.exists():
        shutil.copytree(CONFIG_DIR, config_dir)
    hook = {
        "transport": "webhook",
        "webhook": {"url": url_of(port), "timeout_seconds": 5},
        "backoff_seconds": 0.01,
        "max_attempts": 4,
        "snapshot": False,
        "events": ["created", "updated"],
        **extra,
    }
    (config_dir / "subscriptions.yaml").write_text(yaml.safe_dump({"subscribers": {"hook": hook}}))
    return load_hub_config(config_dir)


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(hub_url: str) -> Iterator[sa.Engine]:
    engine = create_hub_engine(hub_url)
    yield engine
    engine.dispose()


def delivered(engine: sa.Engine) -> dict[str, int]:
    """The hub's delivery ledger: the newest version each golden record was sent at."""
    with engine.connect() as conn:
        return {
            g: v
            for g, v in conn.execute(
                sa.text("SELECT golden_id, version FROM deliveries WHERE subscriber = 'hook'")
            )
        }


def cursor(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT cursor_seq FROM subscriber_state WHERE subscriber = 'hook'")
        ).scalar_one()


def three_versions_of_g_among_others(box: Outbox) -> None:
    box.put("G1", given_name="Ada", city="Leeds")
    box.put("G2", given_name="Bo", city="York")
    box.put("G1", city="Hull")
    box.put("G3", given_name="Cy", city="Bath")
    box.put("G1", city="Kent")


def in_version_order(applied: list[tuple[str, int]]) -> bool:
    last: dict[str, int] = {}
    for golden, version in applied:
        if version <= last.get(golden, 0):
            return False
        last[golden] = version
    return True


def test_connection_refused_is_retried_nothing_is_lost_and_order_is_kept(engine, tmp_path):
    port = closed_port()
    config = config_for(tmp_path, port)
    ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
    box = Outbox(engine)
    three_versions_of_g_among_others(box)
    start = cursor(engine)

    # Down for the whole run: every try refused, the run fails, nothing is marked sent.
    waits: list[float] = []
    with pytest.raises(SubscriberFailing, match="hook"):
        syndicate(engine, config, "hook", sleep=waits.append)
    assert len(waits) == 3 and waits == sorted(waits)  # 4 tries, backoff growing between them
    assert delivered(engine) == {} and cursor(engine) == start

    # Down at first, up after the second backoff (the same port starts listening).
    sinks: list[DedupingSink] = []

    def come_up_on_second_wait(_seconds: float) -> None:
        if len(sinks) == 0 and len(waits) == 4:
            sinks.append(DedupingSink(port))
        waits.append(_seconds)

    try:
        result = syndicate(engine, config, "hook", sleep=come_up_on_second_wait)
        (sink,) = sinks
        assert result.retries >= 2
        assert [v for g, v in sink.applied if g == "G1"] == [1, 2, 3]  # v1 < v2 < v3
        assert sorted(sink.applied) == sorted(every_version(box))  # nothing lost
        assert in_version_order(sink.applied) and len(sink.keys) == len(set(sink.keys))
        assert sink.mismatched == []
        assert delivered(engine) == sink.state and result.pending == 0
        assert sink.state == {"G1": 3, "G2": 1, "G3": 1}
    finally:
        for s in sinks:
            s.close()
    _golden_invariants(engine)


def every_version(box: Outbox) -> set[tuple[str, int]]:
    return {(g, v) for g, r in box.records.items() for v in range(1, r.version + 1)}


def _killed_after_the_ack(url: str, config_dir: str) -> None:
    """The body of a forked child: a delivery run killed once the sink acknowledged a batch."""
    os.environ["MDM_CRASH_AT"] = "syndication:after_send_before_commit"
    engine = create_hub_engine(url)
    syndicate(engine, load_hub_config(config_dir), "hook")


def test_a_batch_acked_before_the_crash_is_redelivered_and_applied_once(engine, hub_url, tmp_path):
    sink = DedupingSink()
    try:
        config = config_for(tmp_path, sink.port, batch_size=2)
        ensure_state(engine, "hook", config.subscriptions.subscribers["hook"])
        box = Outbox(engine)
        three_versions_of_g_among_others(box)
        start = cursor(engine)
        engine.dispose()  # no pooled connection is shared with the child
        child = multiprocessing.get_context("fork").Process(
            target=_killed_after_the_ack, args=(hub_url, str(tmp_path / "config"))
        )
        child.start()
        child.join(timeout=120)
        assert child.exitcode == -signal.SIGKILL
        first_batch = list(sink.keys)
        assert first_batch and len(first_batch) <= 2  # the sink took it and acknowledged it
        assert delivered(engine) == {} and cursor(engine) == start  # not marked sent

        result = syndicate(engine, config, "hook")
        repeats = Counter(sink.keys)
        assert {k for k, n in repeats.items() if n > 1} == set(first_batch)  # same keys again
        assert all(n <= 2 for n in repeats.values())
        # Applied once each: every event, no double effect, in version order per golden id.
        assert len(sink.applied) == len(set(sink.applied)) == len(every_version(box)) == 5
        assert in_version_order(sink.applied)
        assert sink.state == {"G1": 3, "G2": 1, "G3": 1}
        assert delivered(engine) == sink.state and result.pending == 0
        syndicate(engine, config, "hook")  # nothing left: the sink sees nothing more
        assert len(sink.keys) == sum(repeats.values())
        assert sink.mismatched == []
    finally:
        sink.close()
    _golden_invariants(engine)
