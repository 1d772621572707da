"""Syndication throughput: events per second to a file subscriber, to a local webhook and to
RabbitMQ with publisher confirms.

A fresh SQLite hub gets N synthetic golden records, each with one history version and one
``created`` event in the outbox. Then, each in a fresh subscriber:
- file (JSON Lines), snapshot: every active golden record;
- file (JSON Lines) and file (CSV), changes: the N outbox events (cursor at 0);
- webhook, changes: one POST per event to a threaded HTTP server on 127.0.0.1 in this process;
- amqp, changes: persistent messages to a durable queue on the RabbitMQ at 127.0.0.1:5672
  (guest/guest, ``--amqp-url``), each confirmed by the broker before it counts (confirms
  awaited per window of ``--confirm-window`` messages); an exchange and a queue of the run's
  own, deleted afterwards. ``--amqp-events 0`` skips it.

    .venv/bin/python benchmarks/syndicate.py --events 100000 --webhook-events 5000 \
        --amqp-events 50000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(engine, n: int) -> None:  # type: ignore[no-untyped-def]
    from mdm_orchestration.hub.bulk import bulk_insert
    from mdm_orchestration.hub.store import write_transaction
    from mdm_orchestration.survivorship import (
        CHANGE_COLUMNS,
        GOLDEN_COLUMNS,
        HISTORY_COLUMNS,
        event_id,
        golden_id_for,
    )

    now = datetime.now(UTC)
    golden, history, changes = [], [], []
    for i in range(1, n + 1):
        gid = golden_id_for(i)
        attrs = json.dumps(
            {
                "given_name": f"Given{i}",
                "family_name": f"Family{i % 997}",
                "full_name": f"Given{i} Family{i % 997}",
                "email": f"person{i}@example.com",
                "phone": f"+1217555{i % 10000:04d}",
                "street": f"{i % 9999} Main St",
                "city": "Springfield",
                "region": "IL",
                "postcode": "62701",
                "country": "US",
            }
        )
        consents = json.dumps({"marketing_email": {"granted": i % 2 == 0}})
        golden.append(
            (
                gid,
                i,
                "person",
                "active",
                None,
                1,
                attrs,
                "{}",
                "{}",
                consents,
                "customer",
                None,
                '["crm"]',
                1,
                "x",
                now,
                now,
                "bench",
                "bench",
            )
        )
        history.append(
            (
                gid,
                1,
                "active",
                "created",
                "[]",
                "person",
                attrs,
                "{}",
                consents,
                "customer",
                None,
                '["crm"]',
                "[]",
                None,
                "bench",
                now,
            )
        )
        changes.append((event_id(gid, 1), gid, 1, "created", "[]", "[]", "bench", now, "[]"))
    with write_transaction(engine) as conn:
        bulk_insert(conn, "golden_records", GOLDEN_COLUMNS, golden)
        bulk_insert(conn, "golden_history", HISTORY_COLUMNS, history)
        bulk_insert(conn, "golden_changes", CHANGE_COLUMNS, changes)


def start_changes_only(engine, name: str) -> None:  # type: ignore[no-untyped-def]
    from mdm_orchestration.hub.store import write_transaction
    from mdm_orchestration.hub.tables import SUBSCRIBERS as STATE

    with write_transaction(engine) as conn:
        conn.execute(
            STATE.insert().values(
                subscriber=name,
                cursor_seq=0,
                snapshot_done=True,
                status="ok",
                attempts=0,
                delivered_total=0,
                updated_at=datetime.now(UTC),
            )
        )


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        return None


def drop_amqp(url: str, name: str) -> int:
    """Delete the run's queue and exchange; the number of messages the queue held."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        held = channel.queue_declare(queue=name, passive=True).method.message_count
        channel.queue_delete(queue=name)
        channel.exchange_delete(exchange=name)
        return int(held)
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--webhook-events", type=int, default=5_000)
    parser.add_argument("--amqp-events", type=int, default=50_000)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--confirm-window", type=int, default=500)
    parser.add_argument("--amqp-batch-size", type=int, default=None, help="events per batch")
    args = parser.parse_args()

    from mdm_orchestration.config import HubConfig, SubscriptionsConfig, load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.syndication import syndicate

    work = Path(tempfile.mkdtemp(prefix="mdm-bench-syndicate-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    base = load_hub_config()
    tag = uuid.uuid4().hex[:10]
    subs = SubscriptionsConfig(
        subscribers={
            "snap_jsonl": {"transport": "file", "file": {"folder": str(work / "a")}},
            "jsonl": {"transport": "file", "file": {"folder": str(work / "b")}},
            "csv": {"transport": "file", "file": {"folder": str(work / "c"), "format": "csv"}},
            "hook": {"transport": "webhook", "webhook": {"url": url}},
            "bus": {
                "transport": "amqp",
                "amqp": {
                    "url": args.amqp_url,
                    "exchange": f"bench.{tag}",
                    "queue": f"bench.{tag}",
                    "confirm_window": args.confirm_window,
                },
                **({"batch_size": args.amqp_batch_size} if args.amqp_batch_size else {}),
            },
        }
    )
    config = HubConfig(**{**base.model_dump(), "subscriptions": subs})

    for label, n, names in (
        ("files", args.events, ["snap_jsonl", "jsonl", "csv"]),
        ("webhook", args.webhook_events, ["hook"]),
        ("amqp", args.amqp_events, ["bus"]),
    ):
        if not n:
            continue
        engine = create_hub_engine(f"sqlite:///{work / f'{label}.db'}")
        t0 = time.perf_counter()
        fill(engine, n)
        print(f"{n:,} golden records and events written in {time.perf_counter() - t0:.1f} s")
        for name in names:
            if name != "snap_jsonl":
                start_changes_only(engine, name)
            t0 = time.perf_counter()
            result = syndicate(engine, config, name, home=work)
            seconds = time.perf_counter() - t0
            delivered = result.delivered
            print(
                f"  {name:<11} {delivered:>9,} messages in {seconds:6.1f} s = "
                f"{delivered / seconds:8,.0f} events/s ({result.batches} batches)",
                flush=True,
            )
        engine.dispose()
    server.shutdown()
    if args.amqp_events:
        queued = drop_amqp(args.amqp_url, f"bench.{tag}")
        print(f"  amqp queue held {queued:,} messages (deleted with its exchange)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:,.0f} MB")


if __name__ == "__main__":
    main()
