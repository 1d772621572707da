"""The ``mdm`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DEMO_PEOPLE = 2000

#: The local Dagster instance's settings: one hub writer at a time (every asset that writes the
#: hub is in the ``hub_writer`` pool), and no telemetry.
LOCAL_DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def _use_environment(hub: str | None, landing: Path | None, config: str | None) -> None:
    """The code location's resources read these variables; the CLI runs that same location."""
    if hub:
        os.environ["MDM_HUB_URL"] = hub
    if landing is not None:
        os.environ["MDM_LANDING_DIR"] = str(landing.resolve())
    if config:
        os.environ["MDM_CONFIG_DIR"] = str(Path(config).resolve())


def _dagster_instance():  # type: ignore[no-untyped-def]
    """The persistent Dagster instance (``DAGSTER_HOME``, else ``$MDM_HOME/dagster_home``), so
    that runs made here show in ``dagster dev`` started on the same home."""
    import dagster as dg

    from mdm_orchestration.hub.store import mdm_home

    if not os.environ.get("DAGSTER_HOME"):
        home = mdm_home() / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(LOCAL_DAGSTER_YAML, encoding="utf-8")
    return dg.DagsterInstance.get()


def run_landing(landing: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Ingest every file that has landed, each through the ``ingest_job`` of the code location.

    Files whose bytes the hub already holds are skipped without a run.
    """
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.definitions import defs
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.ingestion import file_sha256, loaded_extract_id, scan_landing
    from mdm_orchestration.jobs import INGEST_JOB
    from mdm_orchestration.partitions import landed_files

    config = load_hub_config()
    engine = create_hub_engine()
    instance = _dagster_instance()
    job = defs.resolve_job_def(INGEST_JOB)
    files = scan_landing(landing, [s.landing_folder for s in config.sources.values()])
    summary: dict[str, Any] = {"files": len(files), "ingested": 0, "skipped": 0, "failed": []}
    started = time.perf_counter()
    for f in files:
        source = config.source_for_folder(f.key.split("/", 1)[0])
        if source is not None and loaded_extract_id(engine, source.name, file_sha256(f.path)):
            summary["skipped"] += 1
            continue
        if not instance.has_dynamic_partition(landed_files.name, f.key):
            instance.add_dynamic_partitions(landed_files.name, [f.key])
        result = job.execute_in_process(
            partition_key=f.key,
            instance=instance,
            raise_on_error=False,
            tags={"mdm/trigger": "cli"},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        if result.success:
            summary["ingested"] += 1
        else:
            summary["failed"].append(f.key)
        if not quiet:
            print(f"  {'ok    ' if result.success else 'FAILED'} {f.key}", file=sys.stderr)
    from mdm_orchestration.cleansing.runner import pending_extracts

    with engine.connect() as conn:
        anything_to_cleanse = bool(pending_extracts(conn))
    # Nothing new, no run: re-running the command is idempotent in the Dagster UI too.
    summary["cleansed"] = run_job(instance, "cleanse_job", quiet) if anything_to_cleanse else True
    summary["matched"] = run_matching(
        instance, engine, quiet=quiet, after_cleansing=anything_to_cleanse
    )
    summary["mastered"] = run_mastering(instance, engine, quiet=quiet)
    summary["syndicated"] = run_syndication(instance, engine, quiet=quiet)
    engine.dispose()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def run_job(instance: Any, name: str, quiet: bool = False) -> bool:  # noqa: ANN401
    """Execute one of the code location's unpartitioned jobs in-process, in ``instance``."""
    from mdm_orchestration.definitions import defs

    result = defs.resolve_job_def(name).execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={"mdm/trigger": "cli"},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not quiet:
        print(f"  {'ok    ' if result.success else 'FAILED'} {name}", file=sys.stderr)
    return result.success


def run_matching(
    instance: Any,
    engine: Any,
    *,
    quiet: bool = False,  # noqa: ANN401
    after_cleansing: bool = False,
) -> bool:
    """Run ``match_job`` when the clustering is stale (new records, labels or overrides)."""
    from mdm_orchestration.matching.store import needs_rematch

    with engine.connect() as conn:
        stale = after_cleansing or needs_rematch(conn)
    return run_job(instance, "match_job", quiet) if stale else True


def run_mastering(instance: Any, engine: Any, *, quiet: bool = False) -> bool:  # noqa: ANN401
    """Run ``master_job`` when the golden records are stale (new clusters, changed rules)."""
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.survivorship.store import needs_consolidation

    with engine.connect() as conn:
        stale = needs_consolidation(conn, load_hub_config())
    return run_job(instance, "master_job", quiet) if stale else True


def run_syndication(
    instance: Any,
    engine: Any,
    *,
    quiet: bool = False,  # noqa: ANN401
    only: str | None = None,
) -> bool:
    """Run ``syndicate_job`` for each subscriber (or ``only`` one) with something to deliver."""
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.definitions import defs
    from mdm_orchestration.partitions import subscribers
    from mdm_orchestration.syndication.delivery import subscriber_status

    config = load_hub_config()
    if only is not None and only not in config.subscriptions.subscribers:
        raise ValueError(f"no subscriber {only!r} in subscriptions.yaml")
    job = defs.resolve_job_def("syndicate_job")
    ok = True
    for name, state in subscriber_status(engine, config).items():
        if (only and name != only) or (state["pending"] == 0 and state["snapshot_done"]):
            continue
        if not instance.has_dynamic_partition(subscribers.name, name):
            instance.add_dynamic_partitions(subscribers.name, [name])
        result = job.execute_in_process(
            partition_key=name,
            instance=instance,
            raise_on_error=False,
            tags={"mdm/trigger": "cli"},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        ok = ok and result.success
        if not quiet:
            print(
                f"  {'ok    ' if result.success else 'FAILED'} syndicate_job {name}",
                file=sys.stderr,
            )
    return ok


def _status(hub: str | None) -> dict[str, Any]:
    from mdm_orchestration.config import ConfigError, load_hub_config
    from mdm_orchestration.hub.status import hub_status
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.syndication.delivery import subscriber_status

    engine = create_hub_engine(hub)
    try:
        status = hub_status(engine)
        try:
            subs = subscriber_status(engine, load_hub_config())
        except ConfigError:
            subs = {}
        status["pending_events"] = {name: s["pending"] for name, s in subs.items()}
        status["subscribers"] = subs
        return status
    finally:
        engine.dispose()


def _print_status(status: dict[str, Any]) -> None:
    print(
        f"extracts loaded {status['extracts']}, rejected {status['rejected_extracts']}, "
        f"duplicate drops {status['duplicate_extracts']}"
    )
    print(
        f"rows landed {status['rows_landed']} = loaded {status['rows_loaded']} "
        f"+ quarantined {status['quarantined_rows']}"
    )
    print(
        f"source records {status['source_records']} (versions {status['source_record_versions']})"
    )
    if status["per_source"]:
        print(
            f"{'source':<12}{'extracts':>9}{'landed':>10}{'loaded':>10}{'quarant.':>10}{'records':>10}"
        )
        for source, s in status["per_source"].items():
            print(
                f"{source:<12}{s.get('extracts', 0):>9}{s.get('rows_landed', 0):>10}"
                f"{s.get('rows_loaded', 0):>10}{s.get('quarantined_rows', 0):>10}"
                f"{s.get('source_records', 0):>10}"
            )
    print(
        f"cleansed records {status['cleansed_records']}, quarantined by cleansing "
        f"{status['cleanse_quarantined_rows']}, pending {status['versions_pending_cleansing']}"
    )
    print(
        f"clusters {status['clusters']} over {status['clustered_records']} records, "
        f"review queue {status['review_queue']}"
    )
    print(
        f"golden records {status['golden_records']} (persons {status['golden_persons']}, "
        f"organisations {status['golden_organisations']}), households "
        f"{status['multi_person_households']} with 2+ persons, change events "
        f"{status['golden_changes']}"
    )
    for name, s in status.get("subscribers", {}).items():
        since = f", failing since {s['failing_since']}" if s["failing_since"] else ""
        print(
            f"subscriber {name}: {s['status']}, delivered {s['delivered_total']}, "
            f"pending {s['pending']}{since}"
        )
    if status["quarantine_reasons"]:
        reasons = ", ".join(f"{k} {v}" for k, v in status["quarantine_reasons"].items())
        print(f"quarantine reasons: {reasons}")


def cmd_generate(args: argparse.Namespace) -> int:
    from mdm_orchestration.sample_data import generate

    started = time.perf_counter()
    summary = generate(Path(args.out), people=args.people, seed=args.seed)
    seconds = time.perf_counter() - started
    print(
        f"{summary.rows} source records for {summary.people} people and "
        f"{summary.organisations} organisations in {len(summary.files)} files "
        f"({seconds:.1f} s) under {Path(args.out) / 'landing'}; truth in {Path(args.out) / 'truth.csv'}"
    )
    for source, n in summary.rows_per_source.items():
        print(f"  {source:<10} {n:>9} rows")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    landing = Path(args.landing)
    if not landing.is_dir():
        print(f"mdm run: landing folder {landing} does not exist", file=sys.stderr)
        return 2
    _use_environment(args.hub, landing, args.config)
    summary = run_landing(landing)
    print(
        f"{summary['files']} file(s) landed: {summary['ingested']} ingested, "
        f"{summary['skipped']} already in the hub, {len(summary['failed'])} failed "
        f"({summary['seconds']} s)"
    )
    for key in summary["failed"]:
        print(f"  failed: {key} (see the run in the Dagster UI, or `mdm status`)")
    _print_status(_status(None))
    done = summary["cleansed"] and summary["matched"] and summary["mastered"]
    done = done and summary["syndicated"]
    return 1 if summary["failed"] or not done else 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _status(args.hub)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        _print_status(status)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mdm_orchestration.hub.store import masked_url, mdm_home, resolve_hub_url
    from mdm_orchestration.sample_data import generate

    if args.home:
        os.environ["MDM_HOME"] = str(Path(args.home).resolve())
    home = mdm_home()
    print(f"Generating sample silos for {args.people} people under {home} ...")
    gen = generate(home, people=args.people, seed=args.seed)
    print(
        f"  {gen.rows} source records in {len(gen.files)} files across {len(gen.rows_per_source)} silos"
    )
    landing = home / "landing"
    _use_environment(args.hub, landing, args.config)
    print(
        "Consolidating through the Dagster assets (ingest_job, one run per landed file; "
        "then cleanse_job, match_job and master_job) ..."
    )
    summary = run_landing(landing)
    status = _status(None)
    print()
    print("Hub summary")
    print(f"  hub: {masked_url(resolve_hub_url())}")
    _print_status(status)
    ok = status["rows_loaded"] + status["quarantined_rows"] == status["rows_landed"]
    ok = ok and (
        status["cleansed_records"] + status["cleanse_quarantined_rows"] == status["rows_loaded"]
    )
    print(f"  every landed row accounted for: {'yes' if ok else 'NO'}")
    mapped = status["xref_records"] == status["clustered_records"]
    print(f"  every clustered source record has one golden id: {'yes' if mapped else 'NO'}")
    ok = ok and mapped
    print(
        f"  look one up:  MDM_HOME={home} {Path(sys.executable).parent / 'mdm'} lookup --golden G0000000001"
    )
    print()
    print("Open the Dagster UI on this hub (asset graph, runs, checks, sensors):")
    print(
        f"  MDM_HOME={home} DAGSTER_HOME={os.environ['DAGSTER_HOME']} "
        f"{Path(sys.executable).parent / 'dagster'} dev -w workspace.yaml"
    )
    print(
        "  then browse http://127.0.0.1:3000 ; drop a file into "
        f"{landing}/<source>/ and the sensors ingest it, reconsolidate and syndicate."
    )
    done = summary["cleansed"] and summary["matched"] and summary["mastered"]
    done = done and summary["syndicated"]
    return 0 if ok and not summary["failed"] and done else 1


REVIEW_FIELDS = (
    "source",
    "source_key",
    "party_type",
    "given_name",
    "middle_name",
    "family_name",
    "suffix",
    "company_key",
    "birth_date",
    "email_key",
    "phone",
    "street_number",
    "street_name",
    "unit",
    "city",
    "region",
    "postcode",
    "national_id",
)
VERDICTS = {"m": "match", "d": "distinct", "u": "unsure"}


def _steward() -> str:
    return os.environ.get("MDM_STEWARD") or os.environ.get("USER") or "steward"


def _show_pair(left: dict[str, Any], right: dict[str, Any], score: float) -> None:
    print(f"\nmatch probability {score:.2f}")
    print(f"{'':<16}{'left':<36}{'right':<36}")
    for name in REVIEW_FIELDS:
        a, b = left.get(name), right.get(name)
        a = "" if a is None or a != a else str(a)
        b = "" if b is None or b != b else str(b)
        if a or b:
            mark = " " if a == b else "≠"
            print(f"{name:<15}{mark}{a[:35]:<36}{b[:35]:<36}")


def cmd_review(args: argparse.Namespace) -> int:
    """Show uncertain pairs side by side; record match / distinct / unsure."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching.store import current_cleansed, pending_review, record_label

    engine = create_hub_engine(args.hub)
    done = 0
    try:
        with engine.connect() as conn:
            items = pending_review(conn, args.limit)
        if not items:
            print("the review queue is empty")
            return 0
        for item in items:
            with engine.connect() as conn:
                frame = current_cleansed(conn, [item.left_record_id, item.right_record_id])
            rows = {r["source_record_id"]: r for r in frame.to_dict("records")}
            if item.left_record_id not in rows or item.right_record_id not in rows:
                continue  # a record left the hub (erased or no longer current)
            _show_pair(rows[item.left_record_id], rows[item.right_record_id], item.score)
            answer = ""
            while answer not in ("m", "d", "u", "s", "q"):
                try:
                    answer = (
                        input("[m]atch, [d]istinct, [u]nsure, [s]kip, [q]uit? ").strip().lower()[:1]
                    )
                except EOFError:
                    answer = "q"
            if answer == "q":
                break
            if answer == "s":
                continue
            record_label(
                engine, item.left_record_id, item.right_record_id, VERDICTS[answer], _steward()
            )
            done += 1
    finally:
        engine.dispose()
    print(f"{done} pair(s) labelled; `mdm match` retrains and reclusters with them")
    return 0


def _override(args: argparse.Namespace, kind: str) -> int:
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.matching.store import UnknownRecord, record_override, resolve_record

    engine = create_hub_engine(args.hub)
    try:
        with engine.connect() as conn:
            left, right = resolve_record(conn, args.left), resolve_record(conn, args.right)
        record_override(engine, left, right, kind, _steward(), args.reason)
    except (UnknownRecord, ValueError) as exc:
        print(f"mdm: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    verb = "always together" if kind == "must_link" else "never together"
    print(f"{args.left} and {args.right}: {verb}; `mdm match` applies it")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    return _override(args, "must_link")


def cmd_split(args: argparse.Namespace) -> int:
    return _override(args, "cannot_link")


def cmd_match(args: argparse.Namespace) -> int:
    """Retrain if labels changed and recluster, through the code location's match_job."""
    from mdm_orchestration.hub.store import create_hub_engine

    _use_environment(args.hub, None, args.config)
    instance = _dagster_instance()
    engine = create_hub_engine()
    try:
        ok = run_matching(instance, engine, after_cleansing=args.force)
    finally:
        engine.dispose()
    _print_status(_status(None))
    return 0 if ok else 1


def cmd_lookup(args: argparse.Namespace) -> int:
    """Golden records by email, phone, name, source record or golden id, as JSON."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.survivorship.lookup import lookup

    engine = create_hub_engine(args.hub)
    if args.as_of is not None:
        return _lookup_as_of(engine, args)
    try:
        with engine.connect() as conn:
            found = lookup(
                conn,
                golden_id=args.golden,
                email=args.email,
                phone=args.phone,
                name=args.name,
                source=args.source,
                key=args.key,
                country=args.country,
            )
    except ValueError as exc:
        print(f"mdm lookup: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps(found, indent=2, ensure_ascii=False, default=str))
    return 0 if found else 1


def _lookup_as_of(engine: Any, args: argparse.Namespace) -> int:  # noqa: ANN401
    """A golden record's version as it was at a past time (its history)."""
    from datetime import UTC, datetime

    from mdm_orchestration.survivorship.store import golden_as_of

    try:
        if args.golden is None:
            raise ValueError("--as-of reads one golden record's history: give --golden")
        at = datetime.fromisoformat(args.as_of)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        with engine.connect() as conn:
            version = golden_as_of(conn, args.golden, at)
    except ValueError as exc:
        print(f"mdm lookup: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if version is None:
        print(f"mdm lookup: {args.golden} did not exist at {args.as_of}", file=sys.stderr)
        return 1
    print(json.dumps(version, indent=2, ensure_ascii=False, default=str))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """golden, xref or changes as CSV, safe to open in a spreadsheet."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.survivorship.lookup import export_csv

    engine = create_hub_engine(args.hub)
    try:
        with engine.connect() as conn:
            n = export_csv(conn, args.kind, Path(args.out))
    finally:
        engine.dispose()
    print(f"{n} {args.kind} row(s) written to {args.out}")
    return 0


def cmd_syndicate(args: argparse.Namespace) -> int:
    """Deliver pending changes to the subscribers (or one) through syndicate_job."""
    from mdm_orchestration.hub.store import create_hub_engine

    _use_environment(args.hub, None, args.config)
    instance = _dagster_instance()
    engine = create_hub_engine()
    try:
        ok = run_syndication(instance, engine, only=args.subscriber)
    except ValueError as exc:
        print(f"mdm syndicate: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    _print_status(_status(None))
    return 0 if ok else 1


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase a person from the hub; subscribers that received them are told at the next
    syndication (``mdm syndicate`` or the syndication sensor)."""
    from mdm_orchestration.hub.store import create_hub_engine
    from mdm_orchestration.syndication.erasure import NothingToErase, erase

    engine = create_hub_engine(args.hub)
    try:
        result = erase(
            engine, golden_id=args.golden, source=args.source, key=args.key, by=_steward()
        )
    except (NothingToErase, ValueError) as exc:
        print(f"mdm erase: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(
        f"erasure {result.erasure_id}: golden record {result.golden_id or '(none)'}, "
        f"{result.records} source record(s) removed, {result.golden_records_blanked} golden "
        "record(s) blanked; subscribers hear of it at the next syndication"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdm", description="Customer MDM hub on Dagster")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write sample silo extracts and truth.csv")
    p.add_argument("--out", required=True, help="folder for landing/ and truth.csv")
    p.add_argument("--people", type=int, default=DEFAULT_DEMO_PEOPLE)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="consolidate everything that has landed, in-process")
    p.add_argument("--landing", required=True, help="landing root (<root>/<source>/<file>)")
    p.add_argument("--config", help="configuration folder (default: MDM_CONFIG_DIR or ./config)")
    p.add_argument("--hub", help="hub database URL (default: MDM_HUB_URL or SQLite in MDM_HOME)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="what the hub holds")
    p.add_argument("--hub", help="hub database URL (default: MDM_HUB_URL or SQLite in MDM_HOME)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("review", help="label uncertain pairs from the review queue")
    p.add_argument("--hub", help="hub database URL (default: MDM_HUB_URL or SQLite in MDM_HOME)")
    p.add_argument("--limit", type=int, default=20, help="at most this many pairs")
    p.set_defaults(func=cmd_review)

    for name, func, text in (
        ("merge", cmd_merge, "two records are the same customer, whatever the model says"),
        ("split", cmd_split, "two records are different customers, whatever the model says"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("left", help="SOURCE:KEY (or a source record id)")
        p.add_argument("right", help="SOURCE:KEY (or a source record id)")
        p.add_argument("--reason")
        p.add_argument("--hub", help="hub database URL")
        p.set_defaults(func=func)

    p = sub.add_parser("match", help="retrain (if labels changed) and recluster via match_job")
    p.add_argument("--hub", help="hub database URL")
    p.add_argument("--config", help="configuration folder")
    p.add_argument("--force", action="store_true", help="recluster even if nothing changed")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("lookup", help="find golden records (JSON with xref and lineage)")
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--name", help="a person's or an organisation's name")
    p.add_argument("--source", help="with --key: a source record")
    p.add_argument("--key", help="the source's own record key")
    p.add_argument("--golden", help="a golden id (a merged one leads to its survivor)")
    p.add_argument("--country", default="US", help="country of a national phone number")
    p.add_argument("--as-of", help="with --golden: the version current at this ISO time")
    p.add_argument("--hub", help="hub database URL")
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("export", help="golden records, cross-reference or change events as CSV")
    p.add_argument("kind", choices=("golden", "xref", "changes"))
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--hub", help="hub database URL")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("syndicate", help="deliver pending golden-record changes (syndicate_job)")
    p.add_argument("--subscriber", help="only this subscriber")
    p.add_argument("--hub", help="hub database URL")
    p.add_argument("--config", help="configuration folder")
    p.set_defaults(func=cmd_syndicate)

    p = sub.add_parser("erase", help="erase a person from the hub (GDPR Art. 17)")
    p.add_argument("--golden", help="the golden id of the person")
    p.add_argument("--source", help="with --key: a source record of the person")
    p.add_argument("--key")
    p.add_argument("--hub", help="hub database URL")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("demo", help="generate sample silos, consolidate them, print a summary")
    p.add_argument("--people", type=int, default=DEFAULT_DEMO_PEOPLE)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--home", help="local folder for hub, landing and Dagster (default: MDM_HOME or ./.mdm)"
    )
    p.add_argument("--hub", help="hub database URL (default: SQLite in the home folder)")
    p.add_argument("--config", help="configuration folder")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mdm_orchestration.config import ConfigError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mdm lookup ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
