"""The ``mdm`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mdm_orchestration.cli_output import emit, hub_report, print_hub, print_status
from mdm_orchestration.cli_service import add_service_commands
from mdm_orchestration.cli_steward import (
    add_override_commands,
    cmd_erase,
    cmd_erasure_replay,
    cmd_export,
    cmd_lookup,
    cmd_merge,
    cmd_review,
    cmd_split,
)
from mdm_orchestration.cli_syndication import add_syndicate_commands
from mdm_orchestration.cli_workbench import add_user_commands
from mdm_orchestration.inprocess import Target

DEFAULT_DEMO_PEOPLE = 2000

#: What ``mdm`` exits with (also in ``mdm --help``).
EXIT_CODES = """\
exit codes:
  0  done (lookup: found)
  1  a run failed, a check found a problem, or lookup found nothing
  2  bad usage or configuration (the message says what)
"""


def ui_command(home: Path) -> str:
    """The command that opens the UI on ``home``: ``dg dev`` in a checkout (``[tool.dg]`` in its
    pyproject.toml), else the webserver on the installed code location."""
    from mdm_orchestration.inprocess import dagster_home

    env = f"MDM_HOME={home} DAGSTER_HOME={dagster_home(home)}"
    bin_dir = Path(sys.executable).parent
    project = Path(__file__).resolve().parent.parent
    pyproject = project / "pyproject.toml"
    if (bin_dir / "dg").exists() and pyproject.is_file() and "[tool.dg]" in pyproject.read_text():
        return f"cd {project} && {env} {bin_dir / 'dg'} dev"
    return f"{env} {bin_dir / 'dagster'} dev -m mdm_orchestration.definitions"


def _generate(out: Path, people: int, seed: int, *, quiet: bool) -> Any:  # noqa: ANN401
    """The sample silos, with their progress on stderr (rows per second)."""
    from mdm_orchestration.cli_progress import Pace
    from mdm_orchestration.sample_data import generate
    from mdm_orchestration.sample_data.generator import SILOS

    with Pace(quiet).stage("generate", SILOS, "rows") as stage:
        return generate(out, people=people, seed=seed, on_silo=lambda rows: stage.advance(rows))


def cmd_generate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    summary = _generate(Path(args.out), args.people, args.seed, quiet=args.json)
    seconds = time.perf_counter() - started
    if args.json:
        data = {
            "rows": summary.rows,
            "people": summary.people,
            "organisations": summary.organisations,
            "files": [str(f) for f in summary.files],
            "rows_per_source": dict(summary.rows_per_source),
            "seconds": round(seconds, 2),
        }
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(
        f"{summary.rows} source records for {summary.people} people and "
        f"{summary.organisations} organisations in {len(summary.files)} files "
        f"({seconds:.1f} s) under {Path(args.out) / 'landing'}; truth in {Path(args.out) / 'truth.csv'}"
    )
    for source, n in summary.rows_per_source.items():
        print(f"  {source:<10} {n:>9} rows")
    return 0


def _report(args: argparse.Namespace, summary: dict[str, Any], status: dict[str, Any]) -> None:
    """``--json``: the run's summary and the hub's status as one JSON document on stdout."""
    if args.json:
        print(json.dumps({"run": summary, "status": status}, indent=2, sort_keys=True, default=str))


def cmd_run(args: argparse.Namespace) -> int:
    from mdm_orchestration.inprocess import dagster_instance, run_landing

    landing = Path(args.landing)
    if not landing.is_dir():
        print(f"mdm run: landing folder {landing} does not exist", file=sys.stderr)
        return 2
    target = Target(hub=args.hub, config=args.config, landing=landing)
    summary = run_landing(dagster_instance(), target, quiet=args.json)
    status = hub_report(target)
    if not args.json:
        print(
            f"{summary['files']} file(s) landed: {summary['ingested']} ingested, "
            f"{summary['skipped']} already in the hub, {len(summary['failed'])} failed "
            f"({summary['seconds']} s)"
        )
        for key in summary["failed"]:
            print(f"  failed: {key} (see the run in the Dagster UI, or `mdm status`)")
        print_status(status)
    _report(args, summary, status)
    return 1 if summary["failed"] or not summary["done"] else 0


def cmd_status(args: argparse.Namespace) -> int:
    print_hub(args, Target(hub=args.hub))
    return 0


def _demo_checks(status: dict[str, Any]) -> dict[str, bool]:
    landed = status["rows_loaded"] + status["quarantined_rows"] == status["rows_landed"]
    cleansed = status["cleansed_records"] + status["cleanse_quarantined_rows"]
    return {
        "every_landed_row_accounted_for": landed and cleansed == status["rows_loaded"],
        "every_clustered_record_has_one_golden_id": (
            status["xref_records"] == status["clustered_records"]
        ),
    }


def cmd_demo(args: argparse.Namespace) -> int:
    from mdm_orchestration.hub.store import masked_url, resolve_hub_url
    from mdm_orchestration.inprocess import dagster_instance, run_landing
    from mdm_orchestration.settings import settings

    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    home = Path(args.home).resolve() if args.home else settings().home
    hub = args.hub or settings().mdm_hub_url or f"sqlite:///{home / 'hub.db'}"
    say(f"Generating sample silos for {args.people} people under {home} ...")
    gen = _generate(home, args.people, args.seed, quiet=args.json)
    say(
        f"  {gen.rows} source records in {len(gen.files)} files across {len(gen.rows_per_source)} silos"
    )
    landing = home / "landing"
    target = Target(hub=hub, config=args.config, landing=landing, home=home)
    say(
        "Consolidating through the Dagster assets (ingest_job, one run per landed file; "
        "then cleanse_job, match_job and master_job) ..."
    )
    summary = run_landing(dagster_instance(home), target, quiet=args.json)
    status = hub_report(target)
    checks = _demo_checks(status)
    ok = all(checks.values())
    if args.json:
        summary = {**summary, "home": str(home), "hub": masked_url(resolve_hub_url(hub))}
        _report(args, {**summary, "checks": checks}, status)
        return 0 if ok and not summary["failed"] and summary["done"] else 1
    print()
    print("Hub summary")
    print(f"  hub: {masked_url(resolve_hub_url(hub))}")
    print_status(status)
    yes = {True: "yes", False: "NO"}
    print(f"  every landed row accounted for: {yes[checks['every_landed_row_accounted_for']]}")
    mapped = checks["every_clustered_record_has_one_golden_id"]
    print(f"  every clustered source record has one golden id: {yes[mapped]}")
    print(
        f"  look one up:  MDM_HOME={home} {Path(sys.executable).parent / 'mdm'} lookup --golden G0000000001"
    )
    print()
    print("Open the Dagster UI on this hub (asset graph, runs, checks, sensors):")
    print(f"  {ui_command(home)}")
    print(
        "  then browse http://127.0.0.1:3000 ; drop a file into "
        f"{landing}/<source>/ and the sensors ingest it, reconsolidate and syndicate."
    )
    return 0 if ok and not summary["failed"] and summary["done"] else 1


def cmd_match(args: argparse.Namespace) -> int:
    """Retrain if labels changed and recluster, through the code location's match_job."""
    from mdm_orchestration.inprocess import dagster_instance, run_matching

    target = Target(hub=args.hub, config=args.config)
    engine = target.engine()
    try:
        ok = run_matching(
            dagster_instance(), target, engine, quiet=args.json, after_cleansing=args.force
        )
    finally:
        engine.dispose()
    print_hub(args, target)
    return 0 if ok else 1


def cmd_init(args: argparse.Namespace) -> int:
    """Write an editable copy of the shipped configuration (``--config DIR`` then reads it)."""
    from mdm_orchestration.config import init_config_dir

    written = init_config_dir(Path(args.dir))
    names = ", ".join(p.name for p in written)
    emit(
        args,
        f"{len(written)} configuration file(s) written to {Path(args.dir).resolve()}: {names}; "
        f"edit them, then pass --config {args.dir} (or set MDM_CONFIG_DIR)",
        files=[str(p) for p in written],
    )
    return 0


HUB_HELP = "hub database URL (default: MDM_HUB_URL, else SQLite in MDM_HOME)"
CONFIG_HELP = "configuration folder (default: MDM_CONFIG_DIR, else the shipped defaults)"
JSON_HELP = "print the result as JSON on stdout"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mdm-orchestration")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


ERASE_LANDING_HELP = (
    "landing root whose files lose the person's rows too (default: MDM_LANDING_DIR); the "
    "archive is found through --config"
)


def _command(sub: Any, name: str, func: Any, text: str, *flags: str) -> argparse.ArgumentParser:  # noqa: ANN401
    """A sub-command with the shared flags it takes (``hub``, ``config``, ``json``)."""
    p = sub.add_parser(
        name,
        help=text,
        description=text,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if "hub" in flags:
        p.add_argument("--hub", help=HUB_HELP)
    if "config" in flags:
        p.add_argument("--config", help=CONFIG_HELP)
    if "json" in flags:
        p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdm",
        description="Customer MDM hub on Dagster",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "generate", cmd_generate, "write sample silo extracts and truth.csv", "json")
    p.add_argument("--out", required=True, help="folder for landing/ and truth.csv")
    p.add_argument(
        "--people",
        type=int,
        default=DEFAULT_DEMO_PEOPLE,
        help="how many people (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")

    p = _command(sub, "init", cmd_init, "write an editable configuration folder", "json")
    p.add_argument("dir", help="folder to write the configuration files into")

    p = _command(
        sub,
        "run",
        cmd_run,
        "consolidate everything that has landed, in-process",
        "hub",
        "config",
        "json",
    )
    p.add_argument("--landing", required=True, help="landing root (<root>/<source>/<file>)")

    _command(sub, "status", cmd_status, "what the hub holds", "hub", "json")

    p = _command(
        sub, "review", cmd_review, "label uncertain pairs from the review queue", "hub", "json"
    )
    p.add_argument("--limit", type=int, default=20, help="at most this many pairs")

    for name, func, text in (
        ("merge", cmd_merge, "two records are the same customer, whatever the model says"),
        ("split", cmd_split, "two records are different customers, whatever the model says"),
    ):
        p = _command(sub, name, func, text, "hub", "json")
        p.add_argument("left", help="SOURCE:KEY (or a source record id)")
        p.add_argument("right", help="SOURCE:KEY (or a source record id)")
        p.add_argument("--reason", help="why, kept with the override")
        p.add_argument(
            "--undo", action="store_true", help=f"take back an earlier mdm {name} of the two"
        )

    p = _command(
        sub,
        "match",
        cmd_match,
        "retrain (if labels changed) and recluster via match_job",
        "hub",
        "config",
        "json",
    )
    p.add_argument("--force", action="store_true", help="recluster even if nothing changed")

    p = _command(
        sub, "lookup", cmd_lookup, "find golden records (JSON with xref and lineage)", "hub"
    )
    p.add_argument("--email", help="an email address")
    p.add_argument("--phone", help="a phone number (national numbers: see --country)")
    p.add_argument("--name", help="a person's or an organisation's name")
    p.add_argument("--source", help="with --key: a source record")
    p.add_argument("--key", help="the source's own record key")
    p.add_argument("--golden", help="a golden id (a merged one leads to its survivor)")
    p.add_argument("--country", default="US", help="country of a national phone number")
    p.add_argument("--as-of", help="with --golden: the version current at this ISO time")

    p = _command(
        sub,
        "export",
        cmd_export,
        "golden records, cross-reference or change events as CSV",
        "hub",
        "json",
    )
    p.add_argument("kind", choices=("golden", "xref", "changes"), help="what to export")
    p.add_argument("--out", required=True, help="CSV file to write")

    add_syndicate_commands(sub, _command)
    add_service_commands(sub, _command)
    add_user_commands(sub, _command)
    add_override_commands(sub, _command)

    p = _command(
        sub,
        "erase",
        cmd_erase,
        "erase a person from the hub (GDPR Art. 17)",
        "hub",
        "config",
        "json",
    )
    p.add_argument("--golden", help="the golden id of the person")
    p.add_argument("--source", help="with --key: a source record of the person")
    p.add_argument("--key", help="with --source: the source's own record key")
    p.add_argument("--landing", help=ERASE_LANDING_HELP)

    p = sub.add_parser(
        "erasure",
        help="the erasure ledger kept outside the hub (replay it after a restore)",
        description="the erasure ledger kept outside the hub (replay it after a restore)",
    )
    erasure = p.add_subparsers(dest="erasure_command", required=True)
    p = _command(
        erasure,
        "replay",
        cmd_erasure_replay,
        "after restoring a backup: redo every erasure of the ledger that the hub lacks",
        "hub",
        "config",
        "json",
    )
    p.add_argument(
        "--ledger", help="the erasure ledger (default: erasure-ledger.jsonl in MDM_HOME)"
    )
    p.add_argument("--landing", help=ERASE_LANDING_HELP)

    p = _command(
        sub,
        "demo",
        cmd_demo,
        "generate sample silos, consolidate them, print a summary",
        "config",
        "json",
    )
    p.add_argument(
        "--people",
        type=int,
        default=DEFAULT_DEMO_PEOPLE,
        help="how many people (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    p.add_argument(
        "--home", help="local folder for hub, landing and Dagster (default: MDM_HOME or ./.mdm)"
    )
    p.add_argument("--hub", help="hub database URL (default: SQLite in the home folder)")
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
