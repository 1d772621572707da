"""Where a full rebuild's time and memory go, phase by phase, on a copy of an existing hub.

``rebuild_clusters`` as the ``match_clusters`` asset runs it, in this process, on a copy of the
given SQLite hub file (the original is never opened for writing), or on a PostgreSQL hub
(``--url``; it is rebuilt in place). Per phase: wall and CPU seconds, the RSS when it started
and its peak RSS (VmHWM, reset at the start of each phase, so a nested phase's peak is its own
and its parent's peak is the highest of all). The phases are ``read_inputs`` (with each read
inside it), ``match_records`` (with the engine's steps inside it: the party frames, each
party's blocking, scoring and clustering, ``assemble``), ``write_rebuild`` (with each step inside
it, the commit included) and, beneath them, every SQL statement kind that took more than a
quarter second in all. ``rss1`` is the RSS when the phase ended: what it left behind.

    .venv/bin/python benchmarks/rebuild_io.py /path/to/hub.db [--work DIR] [--dump DIR]
        [--profile FILE.prof] [--url postgresql+psycopg2://...]

``--dump DIR`` writes what the rebuild wrote (clusters without their time, the blocking index,
the pairs, the pending review items, the term counts, the consolidation queue, the run's
counts), one sorted file per table plus ``digests.json``, to compare two versions of the code
(``diff -r``): hashed record ids and counts only, no record values.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Per table: the query whose rows a rebuild must reproduce exactly (times left out).
DUMPS = {
    "match_clusters": "SELECT record_id, party_type, cluster_id, confidence, "
    "organisation_cluster_id, extract_id, row_number FROM match_clusters ORDER BY record_id",
    "blocking_index": "SELECT record_id, key_name, key_hash FROM blocking_index "
    "ORDER BY record_id, key_name",
    "match_pairs": "SELECT left_record_id, right_record_id, party_type, score, by_rule "
    "FROM match_pairs ORDER BY left_record_id, right_record_id",
    "review_pending": "SELECT id, left_record_id, right_record_id, party_type, score, status, "
    "priority, records_affected, left_cluster_id, right_cluster_id, records_digest "
    "FROM review_queue WHERE status = 'pending' ORDER BY left_record_id, right_record_id",
    "term_frequencies": "SELECT party_type, field, value_key, count FROM term_frequencies "
    "ORDER BY party_type, field, value_key",
    "consolidation_queue": "SELECT record_id FROM consolidation_queue ORDER BY record_id",
    "match_runs": "SELECT id, mode, counts FROM match_runs ORDER BY id",
}

#: Functions timed as phases, by the module attribute the rebuild calls them through.
READS = ("load_models", "model_ids", "cleansed_upto", "current_cleansed", "versions_of")
READS += ("overrides", "judged_pairs", "erasure_mark")
WRITES = ("index_rows", "sorted_index_rows", "cluster_rows", "write_clusters", "write_index")
WRITES += ("index_delta", "replace_counts", "index_counts", "write_pairs", "review_rows")
WRITES += ("write_review", "queue_all", "record_run", "replace_full_index")
#: The steps of ``match_records``, timed through the engine module's names for them.
MATCHES = ("party_frames", "match_party", "candidate_pairs", "cluster_candidates")
MATCHES += ("cluster_scored", "_missing_pairs_in_components", "cluster_pairs", "review_items")
MATCHES += ("assemble",)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


class Phases:
    """Nested phase timers; a phase's peak RSS is the highest VmHWM read while it ran."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._stack: list[dict[str, Any]] = []

    def _note_peak(self) -> None:
        peak = _status_kb("VmHWM")
        for open_phase in self._stack:
            open_phase["peak_kb"] = max(open_phase["peak_kb"], peak)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._note_peak()
        _reset_peak()
        row = {
            "phase": "  " * len(self._stack) + name,
            "rss_start_kb": _status_kb("VmRSS"),
            "peak_kb": 0,
        }
        self.rows.append(row)
        self._stack.append(row)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            row["wall_s"] = time.perf_counter() - t0
            row["cpu_s"] = time.process_time() - c0
            row["rss_end_kb"] = _status_kb("VmRSS")
            self._note_peak()
            self._stack.pop()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            with self.phase(name):
                return fn(*args, **kwargs)

        return timed

    def wrap_context(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A context manager factory whose exit (the commit) is timed as ``name``."""

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:  # noqa: ANN401
            manager = fn(*args, **kwargs)
            value = manager.__enter__()
            try:
                yield value
            except BaseException:
                if not manager.__exit__(*sys.exc_info()):
                    raise
            else:
                with self.phase(name):
                    manager.__exit__(None, None, None)

        return timed


def _sql_timer(engine: Any) -> dict[str, list[float]]:  # noqa: ANN401
    """Seconds per statement kind (its first words), from the cursor events."""
    from sqlalchemy import event

    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        conn.info["bench_t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        words = " ".join(statement.split())
        kind = words[:70] + ("..." if len(words) > 70 else "")
        entry = spent[kind]
        entry[0] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        entry[1] += 1

    return spent


def dump(engine: Any, out: Path) -> dict[str, str]:  # noqa: ANN401
    """What the rebuild wrote, one sorted file per table; returns a digest per table."""
    from sqlalchemy import text

    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    with engine.connect() as conn:
        for table, query in DUMPS.items():
            digest = hashlib.blake2b(digest_size=16)
            with (out / f"{table}.tsv").open("w") as f:
                for row in conn.execute(text(query)):
                    values = list(row)
                    if table == "match_runs":
                        counts = values[2] if isinstance(values[2], dict) else json.loads(values[2])
                        values[2] = json.dumps(counts, sort_keys=True)
                    line = "\t".join(repr(v) for v in values)
                    f.write(line + "\n")
                    digest.update(line.encode() + b"\n")
            digests[table] = digest.hexdigest()
    (out / "digests.json").write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hub", nargs="?", help="SQLite hub file to copy (not with --url)")
    parser.add_argument("--url", help="a PostgreSQL hub URL, rebuilt in place")
    parser.add_argument("--work", type=Path, default=None, help="where the copy goes")
    parser.add_argument("--dump", type=Path, default=None, help="dump the outcome here")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output file")
    args = parser.parse_args()

    if args.url:
        url = args.url
    else:
        source = Path(args.hub).resolve()
        work = (args.work or source.parent / "bench").resolve()
        work.mkdir(parents=True, exist_ok=True)
        target = work / "hub.db"
        for suffix in ("", "-wal", "-shm"):
            (work / f"hub.db{suffix}").unlink(missing_ok=True)
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
        url = f"sqlite:///{target}"

    import mdm_orchestration.matching.engine as engine_module
    import mdm_orchestration.matching.rebuild as rebuild
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine

    config = load_hub_config()
    engine = create_hub_engine(url)
    phases = Phases()
    spent = _sql_timer(engine)

    # Each read and write step, timed through the names the rebuild calls it by.
    for name in READS + WRITES + ("match_records",):
        if hasattr(rebuild, name):
            setattr(rebuild, name, phases.wrap(name, getattr(rebuild, name)))
    for name in MATCHES:
        if hasattr(engine_module, name):
            setattr(engine_module, name, phases.wrap(name, getattr(engine_module, name)))
    scorer = engine_module.PairScorer
    scorer.__init__ = phases.wrap("PairScorer()", scorer.__init__)
    scorer.__call__ = phases.wrap("PairScorer.__call__", scorer.__call__)
    rebuild.read_inputs = phases.wrap("read_inputs", rebuild.read_inputs)
    rebuild.write_rebuild = phases.wrap("write_rebuild", rebuild.write_rebuild)
    rebuild.write_transaction = phases.wrap_context("commit", rebuild.write_transaction)

    load_start = os.getloadavg()
    profiler = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    with phases.phase("rebuild_clusters"):
        if profiler:
            profiler.enable()
        result = rebuild.rebuild_clusters(engine, config)
        if profiler:
            profiler.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profiler:
        profiler.dump_stats(str(args.profile))

    print(f"{'phase':<38}{'wall s':>9}{'cpu s':>9}{'rss0 MB':>9}{'peak MB':>9}{'rss1 MB':>9}")
    for row in phases.rows:
        print(
            f"{row['phase']:<38}{row['wall_s']:>9.2f}{row['cpu_s']:>9.2f}"
            f"{row['rss_start_kb'] / 1024:>9.0f}{row['peak_kb'] / 1024:>9.0f}"
            f"{row['rss_end_kb'] / 1024:>9.0f}"
        )
    print("\nSQL statements over 0.25 s in all (seconds, calls):")
    for kind, (seconds, calls) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
        if seconds >= 0.25:
            print(f"  {seconds:8.2f} {calls:6d}  {kind}")
    figures = {
        "records": result.counts.get("records"),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_mb": round(max(r["peak_kb"] for r in phases.rows) / 1024),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(figures))
    if args.dump:
        print(json.dumps(dump(engine, args.dump), sort_keys=True))


if __name__ == "__main__":
    main()
