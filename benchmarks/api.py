"""The service under load: concurrent clients over real HTTP against a real ``mdm serve``.

``build``: a SQLite hub of about N generated source records, the way the assets make it
(generate, ingest, cleanse, train on the shipped labels, cluster, consolidate), in --work.

``run`` (the default): ``mdm serve`` (uvicorn, its own process, rate limit lifted) on that hub,
an API key made by ``mdm api-key create``, then ``--concurrency`` client threads (one
keep-alive ``httpx.Client`` each) for ``--seconds`` per endpoint: ``GET /v1/golden/{id}`` over
random active golden ids, ``POST /v1/match`` with proposals taken from cleansed records and
disturbed (a typo in the family name, the email dropped for every other one), so that they
score against the hub as a CRM's entry screen would. Prints p50/p95/p99 latency and req/s.

``--latency``: ``dagster-daemon`` at the shipped settings (the sensors of the code location,
the queued run coordinator of deploy/dagster.yaml polling every 2 s, one hub writer) and
``mdm serve`` on a small hub; the time from ``POST /v1/sources/self_service/records`` to the
change event in the ``warehouse`` file subscriber's folder.

    .venv/bin/python benchmarks/api.py build --records 100000 --work /tmp/mdm-api-100k
    .venv/bin/python benchmarks/api.py run --work /tmp/mdm-api-100k --concurrency 8
    .venv/bin/python benchmarks/api.py --latency
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- the hub ----------------------------------------------------------------------------------


def build(records: int, work: Path) -> dict[str, float]:
    from benchmarks.incremental import master_timed
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.sample_data import generate

    work.mkdir(parents=True, exist_ok=True)
    config = load_hub_config()
    t = {"start": time.perf_counter()}
    generate(work / "silos", people=max(1, round(records / 2.1)), seed=2718)
    landing = work / "silos" / "landing"
    engine = create_hub_engine(f"sqlite:///{work / 'hub.db'}")
    t["generate"] = time.perf_counter()
    master_timed(engine, config, landing, "bench", t)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = {
            "source_records": conn.exec_driver_sql("SELECT count(*) FROM match_clusters").scalar(),
            "golden_records": conn.exec_driver_sql(
                "SELECT count(*) FROM golden_records WHERE status = 'active'"
            ).scalar(),
        }
    engine.dispose()
    names = list(t)
    return {
        **counts,
        **{f"{b}_s": round(t[b] - t[a], 1) for a, b in zip(names, names[1:], strict=False)},
    }


def _mdm(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mdm_orchestration.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """``mdm serve`` in a process of its own (its own session, stopped by its group id)."""

    def __init__(
        self, hub: str, log: Path, env: dict[str, str] | None = None, workers: int = 1
    ) -> None:
        import httpx

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mdm_orchestration.cli",
                "serve",
                "--hub",
                hub,
                "--port",
                str(self.port),
                # The benchmark measures the service, not its per-key rate limit.
                "--rate",
                "1000000",
                "--burst",
                "1000000",
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mdm serve exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/openapi.json", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("mdm serve did not start")

    def cpu_seconds(self) -> float:
        """The server's CPU time so far (user + system, from /proc), its workers included."""
        total = 0
        for pid in [self.proc.pid, *self._children()]:
            with contextlib.suppress(FileNotFoundError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def _children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(c) for c in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._fh.close()


def _key(hub: str, *scopes: str, env: dict[str, str] | None = None) -> str:
    args = ["api-key", "create", "--hub", hub, "--name", f"bench-{os.getpid()}"]
    for s in scopes:
        args += ["--scope", s]
    return _mdm(*args, env=env).strip().splitlines()[-1]


# --- load -------------------------------------------------------------------------------------


def _samples(hub: str, n: int, seed: int) -> tuple[list[str], list[dict]]:
    """Random active golden ids, and match proposals from cleansed persons, disturbed."""
    import sqlalchemy as sa

    rng = random.Random(seed)
    engine = sa.create_engine(hub)
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                sa.text("SELECT golden_id FROM golden_records WHERE status = 'active'")
            ).scalars()
        )
        rows = conn.execute(
            sa.text(
                "SELECT given_name, family_name, email, birth_date, postcode FROM "
                "cleansed_records WHERE party_type = 'person' AND given_name IS NOT NULL "
                "AND family_name IS NOT NULL ORDER BY source_record_id"
            )
        ).all()
    engine.dispose()
    # The same seed takes the same proposals from the same hub (runs compare like with like).
    rows = rng.sample(rows, min(n, len(rows)))
    proposals = []
    for i, (given, family, email, birth, postcode) in enumerate(rows):
        if len(family) > 3 and i % 3 == 0:  # a typo
            j = rng.randrange(1, len(family) - 1)
            family = family[:j] + family[j + 1] + family[j] + family[j + 2 :]
        p = {"given_name": given, "family_name": family}
        if email and i % 2 == 0:
            p["email"] = email
        if birth:
            p["birth_date"] = str(birth)[:10]
        if postcode:
            p["postcode"] = postcode
        proposals.append(p)
    return rng.sample(ids, min(n, len(ids))), proposals


def _load(url: str, key: str, concurrency: int, seconds: float, request, cpu=None) -> dict:  # type: ignore[no-untyped-def]
    """``concurrency`` threads calling ``request(client, i)`` for ``seconds``; latency per
    call (ms) and requests per second over the window; with ``cpu`` (the server's CPU seconds
    so far), the server's CPU ms per request."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(w: int) -> None:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            try:
                request(client, w)  # warm the connection
            except httpx.HTTPError:
                errors[w] += 1
            finally:
                start.wait()  # a failed request must not leave the others waiting
            i = w
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    r = request(client, i)
                except httpx.HTTPError:  # a timeout, a connection the server dropped
                    errors[w] += 1
                else:
                    latencies[w].append((time.perf_counter() - t0) * 1000)
                    if r.status_code >= 400:
                        errors[w] += 1
                i += concurrency

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds + 0.5
    start.wait()
    began, cpu_began = time.perf_counter(), cpu() if cpu else 0.0
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    server_cpu = (cpu() - cpu_began) if cpu else None
    flat = sorted(x for w in latencies for x in w)
    q = statistics.quantiles(flat, n=100, method="inclusive")
    return {
        "requests": len(flat),
        "errors": sum(errors),
        "req_per_s": round(len(flat) / elapsed, 1),
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "p99_ms": round(q[98], 1),
        **(
            {"server_cpu_ms_per_request": round(server_cpu * 1000 / len(flat), 1)}
            if server_cpu is not None
            else {}
        ),
    }


def run(work: Path, concurrency: int, seconds: float, samples: int, workers: int = 1) -> None:
    hub = f"sqlite:///{work / 'hub.db'}"
    key = _key(hub, "read", "match")
    ids, proposals = _samples(hub, samples, seed=7)
    service = Service(hub, work / "serve.log", workers=workers)
    try:
        golden = _load(
            service.url,
            key,
            concurrency,
            seconds,
            lambda c, i: c.get(f"/v1/golden/{ids[i % len(ids)]}"),
            service.cpu_seconds,
        )
        match = _load(
            service.url,
            key,
            concurrency,
            seconds,
            lambda c, i: c.post("/v1/match", json=proposals[i % len(proposals)]),
            service.cpu_seconds,
        )
    finally:
        service.stop()
    print(
        json.dumps(
            {
                "hub": str(work / "hub.db"),
                "concurrency": concurrency,
                "workers": workers,
                "seconds": seconds,
                "golden": golden,
                "match": match,
            },
            indent=2,
        )
    )


def profile(work: Path, samples: int, top: int, batches: list[int]) -> None:
    """``POST /v1/match``'s work in this process, without HTTP: the same proposals as ``run``
    (same seed) answered by the service's own ``answer_many``, ``batch`` at a time (the
    batcher's batches under load; 1: a lone request), CPU ms per proposal; with ``--top N``,
    cProfile's N costliest functions (cumulative) of the last batch size."""
    import cProfile
    import pstats

    from mdm_orchestration.service.app import warm_up
    from mdm_orchestration.service.inputs import canonical_source, raw_values
    from mdm_orchestration.service.matching import Proposal, answer_many
    from mdm_orchestration.service.state import ServiceSettings, ServiceState

    hub = f"sqlite:///{work / 'hub.db'}"
    _ids, bodies = _samples(hub, samples, seed=7)
    settings = ServiceSettings(hub_url=hub, rate_per_second=1e9, rate_burst=10**9)
    state = ServiceState.open(settings)
    warm_up(state)
    layout = canonical_source("US")
    proposals = [
        Proposal(raw_values(b, layout), layout, settings.max_candidates, 3) for b in bodies
    ]
    answer_many(state, proposals[:4])
    report: dict[str, object] = {"hub": str(work / "hub.db"), "proposals": len(proposals)}
    profiler = None
    for batch in batches:
        if top and batch == batches[-1]:
            profiler = cProfile.Profile()
            profiler.enable()
        per: list[float] = []
        found = 0
        for at in range(0, len(proposals), batch):
            chunk = proposals[at : at + batch]
            t0 = time.process_time()
            answers = answer_many(state, chunk)
            per += [(time.process_time() - t0) * 1000 / len(chunk)] * len(chunk)
            found += sum(bool(getattr(a, "candidates", None)) for a in answers)
        if profiler is not None:
            profiler.disable()
        report[f"batch_{batch}"] = {
            "with_candidates": found,
            "cpu_ms_per_proposal_mean": round(statistics.fmean(per), 2),
            "p50": round(statistics.median(per), 2),
            "p95": round(statistics.quantiles(per, n=20)[18], 2),
        }
    state.engine.dispose()
    print(json.dumps(report, indent=2))
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


# --- POST -> change event with the daemon -----------------------------------------------------


def latency(people: int, rounds: int) -> None:
    """``dagster-daemon`` at the shipped settings and ``mdm serve`` on a small mastered hub
    (subscribers caught up first); each round posts a customer's record (a new one, then
    address changes) and waits for its change event in the warehouse's folder."""
    import httpx

    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.syndication import syndicate

    work = Path(tempfile.mkdtemp(prefix="mdm-bench-api-latency-"))
    built = build(round(people * 2.1), work)
    print(f"hub: {built}", flush=True)
    home = work / "dagster_home"
    home.mkdir()
    shipped = (ROOT / "deploy" / "dagster.yaml").read_text()
    # The shipped instance without its PostgreSQL storage (the default SQLite storage here).
    (home / "dagster.yaml").write_text(_without_storage(shipped))
    hub = f"sqlite:///{work / 'hub.db'}"
    mdm_home = work / "mdm"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MDM_HOME": str(mdm_home),
        "MDM_LANDING_DIR": str(work / "landing"),
        "MDM_HUB_URL": hub,
    }
    (work / "landing").mkdir()
    config = load_hub_config()
    engine = create_hub_engine(hub)
    for name in config.subscriptions.subscribers:
        syndicate(engine, config, name, home=mdm_home)  # snapshots: only new events remain
    engine.dispose()
    key = _key(hub, "read", "write:self_service", env=env)
    service = Service(hub, work / "serve.log", env=env)
    log = (work / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    folder = mdm_home / "outbound" / "warehouse"

    def delivered(golden: str | None, seen: set[Path]) -> dict | None:
        for path in sorted(set(folder.iterdir()) - seen):
            for line in path.read_text(encoding="utf-8").splitlines():
                m = json.loads(line)
                if m["event_type"] in ("created", "updated") and (
                    golden is None or m["golden_id"] == golden
                ):
                    return m
        return None

    figures: list[float] = []
    posts: list[float] = []
    try:
        # Ready when the daemon has ticked its sensors once (its log says so).
        deadline = time.monotonic() + 180
        while b"api_writes_sensor" not in (work / "daemon.log").read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon's sensors never ticked")
            time.sleep(1)
        time.sleep(5)
        customer = {
            "customer_id": "latency-1",
            "given_name": "Latimer",
            "family_name": "Quenbyworth",
            "email": "latimer.q@example.net",
            "street": "1 First Street",
            "city": "Springfield",
            "postcode": "62701",
        }
        golden = None
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            for i in range(rounds):
                record = customer if i == 0 else {**customer, "street": f"{i + 1} Moved Street"}
                seen = set(folder.iterdir())
                posts.append(time.time())
                t0 = time.monotonic()
                r = client.post("/v1/sources/self_service/records", json=record)
                r.raise_for_status()
                message = None
                while message is None and time.monotonic() - t0 < 300:
                    time.sleep(0.2)
                    message = delivered(golden, seen) if golden else _first_new(folder, seen)
                took = time.monotonic() - t0
                if message is None:
                    raise RuntimeError("no change event within 300 s")
                golden = golden or message["golden_id"]
                figures.append(round(took, 1))
                print(
                    f"round {i + 1}: POST -> {message['event_type']} event at the warehouse "
                    f"{took:.1f} s",
                    flush=True,
                )
                time.sleep(2)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()
        service.stop()
    for line in _run_timeline(home, posts):
        print(line)
    print(json.dumps({"people": people, "post_to_event_s": figures}))


def _run_timeline(home: Path, posts: list[float]) -> list[str]:
    """Each Dagster run, seconds after the POST before it: created (the sensor's tick),
    started (dequeued and its process up), ended."""
    import sqlite3

    db = home / "history" / "runs.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT pipeline_name, status, create_timestamp, start_time, end_time FROM runs "
        "ORDER BY create_timestamp"
    ).fetchall()
    conn.close()
    out = []
    for job, status, created, started, ended in rows:
        created_at = datetime.fromisoformat(str(created)).replace(tzinfo=UTC).timestamp()
        before = [t for t in posts if t <= created_at]
        if not before:
            continue
        t0 = before[-1]
        at = [f"{t - t0:5.1f}" if t is not None else "    -" for t in (created_at, started, ended)]
        out.append(
            f"round {len(before)}: {job:18s} {status:8s} created {at[0]} started {at[1]} "
            f"ended {at[2]} s after the POST"
        )
    return out


def _without_storage(yaml_text: str) -> str:
    import yaml

    doc = yaml.safe_load(yaml_text)
    doc.pop("storage", None)
    return yaml.safe_dump(doc)


def _first_new(folder: Path, seen: set[Path]) -> dict | None:
    for path in sorted(set(folder.iterdir()) - seen):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = json.loads(line)
            if m["event_type"] == "created" and "self_service" in (m.get("sources") or []):
                return m
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=["build", "run", "profile"])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--top", type=int, default=0, help="profile: cProfile's top N")
    parser.add_argument("--workers", type=int, default=1, help="run: mdm serve --workers")
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[1, 8, 16], help="profile: batch sizes"
    )
    parser.add_argument("--latency", action="store_true", help="POST -> change event, daemon")
    parser.add_argument("--people", type=int, default=2000, help="--latency: the hub's size")
    parser.add_argument("--rounds", type=int, default=3, help="--latency: writes measured")
    args = parser.parse_args()
    if args.latency:
        latency(args.people, args.rounds)
        return
    if args.work is None:
        parser.error("--work DIR is needed")
    if args.command == "build":
        if args.work.exists():
            shutil.rmtree(args.work)
        print(json.dumps(build(args.records, args.work)), flush=True)
    elif args.command == "profile":
        profile(args.work, args.samples, args.top, args.batch)
    else:
        run(args.work, args.concurrency, args.seconds, args.samples, args.workers)


if __name__ == "__main__":
    main()
