"""Small helpers shared by tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa


def write_file(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def copy_landing(sample_silos: Path, dest: Path) -> Path:
    shutil.copytree(sample_silos / "landing", dest, dirs_exist_ok=True)
    return dest


def ingest_all(engine: sa.Engine, config, landing: Path) -> None:  # type: ignore[no-untyped-def]
    """Ingest every file under ``landing``, in name order (the generator's files sort by date)."""
    from mdm_orchestration.ingestion import ingest_file

    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        ingest_file(engine, config, path, landing)


def current_sample_records(sample_silos: Path, rows_per_source: int):  # type: ignore[no-untyped-def]
    """The first ``rows_per_source`` rows of each sample silo, cleansed, one version per record
    (the last), as the hub's current records are."""
    from datetime import date

    import pandas as pd

    from mdm_orchestration.cleansing import cleanse_batch
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.sample_data.offline import landing_versions
    from tests.conftest import CONFIG_DIR

    config = load_hub_config(CONFIG_DIR)
    frames = [
        cleanse_batch(
            v.iloc[:rows_per_source], config.sources[n], config.quality, date(2026, 11, 23)
        ).records
        for n, v in landing_versions(sample_silos / "landing", config).items()
    ]
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates("source_record_id", keep="last").reset_index(drop=True)


def _rows(engine: sa.Engine, sql: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def _golden_invariants(engine: sa.Engine) -> None:
    """The invariants that hold after every committed transaction, settled or not."""
    state = {
        g: (s, m, v)
        for g, s, m, v in _rows(
            engine, "SELECT golden_id, status, merged_into, version FROM golden_records"
        )
    }
    mapping = dict(_rows(engine, "SELECT record_id, golden_id FROM golden_xref"))
    assert all(state.get(g, ("missing",))[0] == "active" for g in mapping.values())
    assert {g for g, s in state.items() if s[0] == "active"} == set(mapping.values())  # no empty
    history = Counter(g for (g,) in _rows(engine, "SELECT golden_id FROM golden_history"))
    events = Counter(g for (g,) in _rows(engine, "SELECT golden_id FROM golden_changes"))
    assert history == events  # every version has exactly one event, and no orphan event
    for g, (_s, _m, version) in state.items():
        assert history[g] == version  # versions 1..n, no gaps
    loaded = Counter(
        _rows(engine, "SELECT source, content_hash FROM extracts WHERE status = 'loaded'")
    )
    assert not [k for k, n in loaded.items() if n > 1]  # the ledger: one loaded (source, sha256)


def _current_records(engine: sa.Engine) -> set[str]:
    from mdm_orchestration.hub.tables import CLEANSED, CURRENT_CLEANSED

    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(CLEANSED.c.source_record_id).select_from(CURRENT_CLEANSED)
            ).scalars()
        )


def check_invariants(engine) -> None:
    """RELIABILITY.md's invariants of a settled hub (every record matched and consolidated):
    every source record in exactly one cluster (``match_clusters``) and one golden record, every
    golden record with a member, one event per version and no orphan event, versions without
    gaps, one loaded extract per ``(source, sha256)``. The convergence oracle is
    :func:`check_convergence`."""
    current = _current_records(engine)
    clustered = [r for (r,) in _rows(engine, "SELECT record_id FROM match_clusters")]
    assert len(clustered) == len(set(clustered))  # no record in two clusters
    assert set(clustered) == current  # every source record in a cluster, no stray cluster row
    mapping = dict(_rows(engine, "SELECT record_id, golden_id FROM golden_xref"))
    assert set(mapping) == current  # every source record in exactly one golden record
    _golden_invariants(engine)


def _partition(pairs) -> dict[frozenset[str], str]:  # type: ignore[no-untyped-def]
    """``(record, group)`` pairs as each group's member set -> the group."""
    members: dict[str, set[str]] = {}
    for record, group in pairs:
        members.setdefault(group, set()).add(record)
    return {frozenset(m): g for g, m in members.items()}


#: From-scratch clusterings already computed in this process, by a digest of their inputs
#: (tests that share a hub fixture end with the same inputs more often than not).
_REBUILDS: dict[str, dict[frozenset[str], dict]] = {}


def clean_rebuild(engine: sa.Engine, config) -> dict[frozenset[str], dict]:  # type: ignore[no-untyped-def]
    """What a clean rebuild from scratch makes of the hub's surviving inputs (the current
    cleansed records, the stored models, the steward's overrides, the configuration): each
    golden record's member set -> its survived attributes and lifecycle. Nothing is written.
    The active attribute overrides are applied to the rebuilt golden record with the member
    set of the hub's golden record they pin (golden ids differ in a rebuild from scratch)."""
    import hashlib
    import json

    from mdm_orchestration.hub.tables import CLEANSED, CURRENT_CLEANSED
    from mdm_orchestration.matching.engine import match_records
    from mdm_orchestration.matching.steward import current_cleansed, overrides
    from mdm_orchestration.matching.training import load_models, model_ids
    from mdm_orchestration.survivorship import Survivor, config_digest, plan_consolidation
    from mdm_orchestration.survivorship.reading import SURVIVOR_COLUMNS, Membership

    with engine.connect() as conn, conn.begin():
        cleansed = current_cleansed(conn)
        must, cannot = overrides(conn)
        ids = model_ids(conn)
        pins = _active_pins(conn)
        digest = hashlib.sha256(
            json.dumps(
                [
                    cleansed.values.tolist(),
                    sorted(must),
                    sorted(cannot),
                    ids,
                    config_digest(config),
                    repr(config.matching),
                    repr(pins),
                ],
                default=str,
            ).encode()
        ).hexdigest()
        if digest in _REBUILDS:
            return _REBUILDS[digest]
        models = load_models(conn)
        records = {
            r["source_record_id"]: dict(r)
            for r in conn.execute(
                sa.select(*[CLEANSED.c[c] for c in SURVIVOR_COLUMNS]).select_from(CURRENT_CLEANSED)
            ).mappings()
        }
    result = match_records(cleansed, models, config.matching, must, cannot)
    c = result.clusters
    membership = {
        r: Membership(k, p, o)
        for r, k, p, o in zip(
            c["record_id"],
            c["cluster_id"],
            c["party_type"],
            c["organisation_cluster_id"],
            strict=True,
        )
    }
    by_cluster: dict[str, list[dict]] = {}
    for rid in sorted(membership):
        by_cluster.setdefault(membership[rid].cluster_id, []).append(records[rid])
    survivor = Survivor(config.survivorship, config.sources)
    plan = plan_consolidation(membership, sorted(by_cluster.items()), {}, {}, 1, survivor)
    if pins:
        pinned, hub_members = pins
        rebuilt = {frozenset(s.members): g for g, s in plan.states.items()}
        by_rebuilt = {
            rebuilt[m]: [o for o in pinned if hub_members[o.golden_id] == m]
            for m in set(hub_members.values())
            if m in rebuilt
        }
        plan = plan_consolidation(
            membership, sorted(by_cluster.items()), {}, {}, 1, survivor, overrides=by_rebuilt
        )
    out = {
        frozenset(state.members): {"attributes": state.attributes, "lifecycle": state.lifecycle}
        for state in plan.states.values()
    }
    _REBUILDS[digest] = out
    return out


def _active_pins(conn):  # type: ignore[no-untyped-def]
    """The hub's active attribute overrides and the member set of each one's golden record
    (``None`` when there is none)."""
    from mdm_orchestration.survivorship.override_store import active_overrides, members_of

    if not sa.inspect(conn).has_table("attribute_overrides"):
        return None
    pinned = [o for group in active_overrides(conn, None).values() for o in group]
    if not pinned:
        return None
    pinned.sort(key=lambda o: o.override_id)
    members = {g: frozenset(members_of(conn, [g])) for g in {o.golden_id for o in pinned}}
    return pinned, members


def check_convergence(engine: sa.Engine, config=None) -> None:  # type: ignore[no-untyped-def]
    """The convergence oracle: the hub's active golden records equal a clean rebuild from
    scratch on the surviving inputs, compared by member sets (source record ids, which are
    hashes of source and key) and survived attribute values, never by golden or cluster ids."""
    from mdm_orchestration.config import load_hub_config
    from tests.conftest import CONFIG_DIR

    config = config or load_hub_config(CONFIG_DIR)
    expected = clean_rebuild(engine, config)
    golden = _partition(_rows(engine, "SELECT record_id, golden_id FROM golden_xref"))
    content = {
        g: (json.loads(a) if isinstance(a, str) else a, lc)
        for g, a, lc in _rows(
            engine,
            "SELECT golden_id, attributes, lifecycle FROM golden_records WHERE status = 'active'",
        )
    }
    only_hub = sorted(sorted(m) for m in set(golden) - set(expected))
    only_rebuild = sorted(sorted(m) for m in set(expected) - set(golden))
    assert not only_hub and not only_rebuild, {"hub": only_hub[:5], "rebuild": only_rebuild[:5]}
    differ = [
        (sorted(members), content[g], expected[members])
        for members, g in golden.items()
        if content[g] != (expected[members]["attributes"], expected[members]["lifecycle"])
    ]
    assert not differ, differ[:3]


def hub_is_settled(engine: sa.Engine, config) -> bool:  # type: ignore[no-untyped-def]
    """Whether the hub is at rest: every loaded extract cleansed, the clustering current and
    nothing left to consolidate (a test may stop half-way on purpose)."""
    from mdm_orchestration.matching import needs_rematch
    from mdm_orchestration.survivorship import needs_consolidation

    with engine.connect() as conn:
        uncleansed = conn.execute(
            sa.text("SELECT count(*) FROM extracts WHERE status = 'loaded' AND cleansed_at IS NULL")
        ).scalar_one()
        if uncleansed:
            return False
        models = conn.execute(sa.text("SELECT count(*) FROM match_models")).scalar_one()
        goldens = conn.execute(sa.text("SELECT count(*) FROM golden_runs")).scalar_one()
        if not models or not goldens:
            return False
        return not needs_rematch(conn) and not needs_consolidation(conn, config)


def is_hub(url: str) -> bool:
    """Whether ``url`` is a hub database (Dagster's storage and SQL subscriber targets are not)."""
    try:
        engine = sa.create_engine(url)
        try:
            return sa.inspect(engine).has_table("golden_xref")
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - gone, locked or not a database: not a hub to check
        return False


def verify_hub(url: str, config=None) -> str:  # type: ignore[no-untyped-def]
    """What a test must leave behind in a hub it built: the invariants that hold at any time
    and, once the hub is settled, every invariant and the convergence oracle. Returns which
    were checked ("committed" or "settled")."""
    from mdm_orchestration.config import load_hub_config
    from tests.conftest import CONFIG_DIR

    config = config or load_hub_config(CONFIG_DIR)
    engine = sa.create_engine(url)
    try:
        _golden_invariants(engine)
        if not hub_is_settled(engine, config):
            return "committed"
        check_invariants(engine)
        check_convergence(engine, config)
        return "settled"
    finally:
        engine.dispose()


def build_mastered_hub(root: Path, sample_silos: Path) -> str:
    """A SQLite hub under ``root`` holding the generated silos: ingested, cleansed, matched on
    the shipped labels and consolidated into golden records. Returns its URL."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching import rebuild_clusters, train_models
    from mdm_orchestration.survivorship import consolidate
    from tests.conftest import CONFIG_DIR

    landing = copy_landing(sample_silos, root / "landing")
    url = f"sqlite:///{root / 'hub.db'}"
    engine = create_hub_engine(url)
    config = load_hub_config(CONFIG_DIR)
    ingest_all(engine, config, landing)
    cleanse_pending(engine, config)
    train_models(engine)
    rebuild_clusters(engine, config)
    consolidate(engine, config, "setup")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return url


class HubTracker:
    """The hub databases a test connects to, found by listening to every SQLAlchemy engine's
    connections (no test has to register its hub), and checked with :func:`verify_hub` when the
    test ends. Engines of other databases (Dagster's storage, SQL subscriber targets) are
    recognised and left out by :func:`is_hub`."""

    def __init__(self) -> None:
        self.urls: dict[str, None] = {}
        self.configs: dict[str, object] = {}
        self.checked: dict[str, str] = {}
        #: configuration folders the test wrote (see :func:`config_of`)
        self.candidates: list[Path] = []

    def _on_connect(self, conn: sa.Connection) -> None:
        url = conn.engine.url
        if url.get_backend_name() == "postgresql" or (
            url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        ):
            self.urls.setdefault(url.render_as_string(hide_password=False), None)

    def start(self) -> None:
        sa.event.listen(sa.Engine, "engine_connect", self._on_connect)

    def stop(self) -> None:
        if sa.event.contains(sa.Engine, "engine_connect", self._on_connect):
            sa.event.remove(sa.Engine, "engine_connect", self._on_connect)

    def use_config(self, url: str, config) -> None:  # type: ignore[no-untyped-def]
        """The configuration a test's hub runs with, when it is not the shipped one."""
        self.configs[str(sa.make_url(url).render_as_string(hide_password=False))] = config

    def verify(self, database: str | None = None) -> dict[str, str]:
        """Check the hubs seen (only those of ``database``, a PostgreSQL database name, when
        given: it is about to be dropped); returns url -> what was checked."""
        out = {}
        for url in list(self.urls):
            parsed = sa.make_url(url)
            if database is not None and parsed.database != database:
                continue
            del self.urls[url]
            if parsed.get_backend_name() == "sqlite" and not Path(parsed.database).is_file():
                continue
            if not is_hub(url):
                continue
            started = time.perf_counter()
            config = self.configs.get(url) or config_of(url, self.candidates)
            out[url] = verify_hub(url, config)
            CHECKS.append((url, out[url], time.perf_counter() - started))
        self.checked.update(out)
        return out


#: Every hub check of this session: (url, what was checked, seconds): the terminal summary
#: reports their count and time.
CHECKS: list[tuple[str, str, float]] = []
#: The tracker of the test that is running (set by the ``hub_checks`` fixtures).
TRACKER: HubTracker | None = None


def track_hubs(request):  # type: ignore[no-untyped-def]
    """Body of the autouse fixtures of tests/orchestration and tests/integration: every hub the
    test built is checked when it ends (if it passed: a failure speaks for itself). A test that
    leaves a hub broken on purpose says so with ``@pytest.mark.unsettled_hub(reason)``."""
    global TRACKER
    tracker = HubTracker()
    TRACKER = tracker
    tracker.start()
    try:
        yield tracker
    finally:
        tracker.stop()
        TRACKER = None
    if test_passed(request) and request.node.get_closest_marker("unsettled_hub") is None:
        tracker.candidates = config_folders(request.getfixturevalue("tmp_path"))
        tracker.verify()


def config_folders(root: Path) -> list[Path]:
    """The configuration folders a test wrote under ``root`` (copies it edited)."""
    return sorted(
        p.parent for p in root.rglob("sources.yaml") if (p.parent / "matching.yaml").is_file()
    )


def config_of(url: str, candidates: list[Path]):  # type: ignore[no-untyped-def]
    """The configuration a hub was consolidated with: the first of ``candidates`` (a test's
    own copies), else the shipped one, whose survivorship digest is the last run's."""
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.survivorship import config_digest
    from tests.conftest import CONFIG_DIR

    engine = sa.create_engine(url)
    try:
        last = _rows(engine, "SELECT config_digest FROM golden_runs ORDER BY id DESC LIMIT 1")
    finally:
        engine.dispose()
    configs = []
    for folder in [*candidates, CONFIG_DIR]:
        try:
            configs.append(load_hub_config(folder))
        except Exception:  # noqa: BLE001 - a test's deliberately broken copy
            continue
    for config in configs:
        if last and config_digest(config) == last[0][0]:
            return config
    return configs[-1]


def test_passed(request) -> bool:  # type: ignore[no-untyped-def]
    report = getattr(request.node, "rep_call", None)
    return report is not None and report.passed


# --- servers in processes of their own ------------------------------------------------------


def free_port() -> int:
    """A TCP port free on the loopback interface (the kernel's pick, released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the process group of ``proc`` (started with ``start_new_session=True``, so
    its children go too); SIGKILL if it has not exited within ``timeout`` seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_http(
    url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    """Return once ``url`` answers 200; an AssertionError with the tail of ``log`` when
    ``timeout`` seconds pass first, or ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{url} did not answer within {timeout} s:\n{tail}")
        time.sleep(0.5)


def start_webserver(env: dict[str, str], root: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """``dagster-webserver`` on the shipped ``workspace.yaml`` and a free port (``args``: more
    flags, such as ``-h`` or ``--read-only``), in a session of its own, once it answers; its
    output goes to ``root/webserver-PORT.log``. Stop it with :func:`stop_process_group`."""
    from tests.conftest import REPO

    port = free_port()
    log = root / f"webserver-{port}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-webserver"),
                "-w",
                str(REPO / "workspace.yaml"),
                "-p",
                str(port),
                *args,
            ],
            env=env,
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", 120, proc, log)
    except BaseException:
        stop_process_group(proc)
        raise
    return proc, port


def launch_run(port: int, timeout: float) -> dict:
    """Ask the Dagster webserver on ``port`` to launch ``cleanse_job`` over GraphQL; its
    answer (``data.launchRun.__typename`` is ``UnauthorizedError`` from a read-only one)."""
    query = (
        "mutation { launchRun(executionParams: {selector: {repositoryLocationName: "
        '"mdm_orchestration.definitions:defs", repositoryName: "__repository__", '
        'jobName: "cleanse_job"}}) { __typename } }'
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def statements_run(
    engine: sa.Engine, kinds: tuple[str, ...] = ("SELECT",)
) -> Iterator[dict[str, object]]:
    """Every distinct statement of ``kinds`` that ``engine`` runs inside the block, with the
    parameters it first ran with."""
    statements: dict[str, object] = {}

    def seen(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(kinds):
            statements.setdefault(statement, parameters)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def query_plans(engine: sa.Engine, statements: dict[str, object]) -> dict[str, list[str]]:
    """SQLite's ``EXPLAIN QUERY PLAN`` lines of each statement, with its parameters."""
    with engine.connect() as conn:
        return {
            statement: [
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ]
            for statement, parameters in statements.items()
        }
