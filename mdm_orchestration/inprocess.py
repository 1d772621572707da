"""The code location's jobs run in-process, in the persistent Dagster instance (the CLI's way).

The CLI's flags travel as resource overrides (:func:`Target.resources`); nothing here reads or
writes ``os.environ`` (an unset flag keeps the environment's default, read by the resources
through :mod:`mdm_orchestration.settings`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdm_orchestration.settings import scoped, settings

#: The local Dagster instance's settings: one hub writer at a time (every asset that writes the
#: hub is in the ``hub_writer`` pool), and no telemetry.
LOCAL_DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""

#: In-process runs log warnings and errors only.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Target:
    """What the CLI's flags point at; ``None`` keeps the environment's default."""

    hub: str | None = None
    config: str | None = None
    landing: Path | None = None
    home: Path | None = None

    def resources(self) -> dict[str, Any]:
        from mdm_orchestration.resources import in_process_resources

        # The hub URL is not a resource value: Dagster stores resource config in the job
        # snapshot, where a password would show in the UI. It reaches the resource through
        # settings (``execute_job`` scopes it), like a URL in MDM_HUB_URL does.
        return in_process_resources(landing=self.landing, config=self.config, home=self.home)

    def hub_config(self):  # type: ignore[no-untyped-def]
        from mdm_orchestration.config import load_hub_config

        return load_hub_config(self.config)

    def engine(self):  # type: ignore[no-untyped-def]
        from mdm_orchestration.hub.store import create_hub_engine

        return create_hub_engine(self.hub)


def dagster_home(home: Path | None = None) -> Path:
    """``DAGSTER_HOME``, else ``<home>/dagster_home`` (``home`` defaults to ``MDM_HOME``)."""
    env = settings()
    return (env.dagster_home or (home or env.home) / "dagster_home").expanduser().resolve()


def dagster_instance(home: Path | None = None):  # type: ignore[no-untyped-def]
    """The persistent Dagster instance of :func:`dagster_home`, so that runs made here show in
    ``dg dev`` started on the same home."""
    import dagster as dg

    path = dagster_home(home)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists():
        (path / "dagster.yaml").write_text(LOCAL_DAGSTER_YAML, encoding="utf-8")
    return dg.DagsterInstance.from_config(str(path))


def execute_job(
    instance: Any,  # noqa: ANN401
    name: str,
    target: Target,
    **options: Any,  # noqa: ANN401
) -> bool:
    """Whether :func:`run_job` (same arguments) succeeded."""
    return run_job(instance, name, target, **options).success


def run_job(
    instance: Any,  # noqa: ANN401
    name: str,
    target: Target,
    *,
    partition_key: str | None = None,
    label: str | None = None,
    quiet: bool = False,
) -> Any:  # noqa: ANN401
    """Execute one of the code location's jobs in-process, in ``instance``, with ``target``'s
    resources (a dynamic partition it names is added first); Dagster's result, with its
    materializations' metadata. Says on stderr how it ended and how long it took."""
    import dagster as dg

    from mdm_orchestration.definitions import defs

    job = defs.resolve_job_def(name)
    partitions = job.partitions_def
    dynamic = isinstance(partitions, dg.DynamicPartitionsDefinition) and partition_key
    if dynamic and not instance.has_dynamic_partition(partitions.name, partition_key):
        instance.add_dynamic_partitions(partitions.name, [partition_key])
    # The hub URL (and the home, for the hub's default SQLite file) reach the resources through
    # settings, scoped to this call: never through os.environ, never into the run's snapshot.
    started = time.perf_counter()
    with scoped(mdm_home=target.home, mdm_hub_url=target.hub):
        result = job.execute_in_process(
            partition_key=partition_key,
            instance=instance,
            raise_on_error=False,
            resources=target.resources(),
            tags={"mdm/trigger": "cli"},
            run_config=QUIET_LOGS,
        )
    if not quiet:
        seconds = time.perf_counter() - started
        print(
            f"  {'ok    ' if result.success else 'FAILED'} {label or name} ({seconds:.1f} s)",
            file=sys.stderr,
        )
    return result


def run_landing(instance: Any, target: Target, *, quiet: bool = False) -> dict[str, Any]:  # noqa: ANN401
    """Ingest every file that has landed under ``target.landing``, each through ``ingest_job``,
    then run what the daemon's sensors would: ``reconsolidate_job`` when anything is stale, and
    ``syndicate_job`` per subscriber with something to deliver.

    Files whose bytes the hub already holds, or already rejected, are skipped without a run.
    """
    from mdm_orchestration.cli_progress import Pace
    from mdm_orchestration.ingestion import (
        SkippedFile,
        manifest_folders,
        record_skipped,
        scan_landing,
    )

    assert target.landing is not None
    config = target.hub_config()
    engine = target.engine()
    skipped: list[SkippedFile] = []
    # The same scan as the landing sensor's: a source that completes by manifest is complete
    # when its manifest says so, not when the file has been still for a while.
    files = scan_landing(
        target.landing,
        [s.landing_folder for s in config.sources.values()],
        skipped,
        manifest_folders=manifest_folders(config.sources.values()),
    )
    record_skipped(engine, skipped)  # names in the hub (`mdm status`), never in Dagster
    summary: dict[str, Any] = {
        "files": len(files),
        "skipped_landing_files": len(skipped),
        "ingested": 0,
        "skipped": 0,
        "rejected_before": 0,
        "failed": [],
    }
    started = time.perf_counter()
    with Pace(quiet).stage("ingest", len(files), "rows") as stage:
        for f in files:
            status, rows = _ingest_landed(instance, target, engine, config, f, quiet)
            if status == "ingested":
                summary["ingested"] += 1
            elif status == "failed":
                summary["failed"].append(f.key)
            else:
                summary[status] += 1
            stage.advance(rows)
    # The daemon's path: what landed is absorbed by one reconsolidate_job (cleanse, match what
    # changed, re-survive what that reaches), then each subscriber with news gets syndicate_job.
    summary["reconsolidated"] = run_reconsolidation(instance, target, engine, quiet=quiet)
    summary["syndicated"] = run_syndication(instance, target, engine, quiet=quiet)
    engine.dispose()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["done"] = all(summary[k] for k in ("reconsolidated", "syndicated"))
    return summary


def _ingest_landed(
    instance: Any,  # noqa: ANN401
    target: Target,
    engine: Any,  # noqa: ANN401
    config: Any,  # noqa: ANN401
    f: Any,  # noqa: ANN401
    quiet: bool,
) -> tuple[str, int]:
    """One landed file through ``ingest_job`` (``ingested`` or ``failed``, and its rows), or
    ``skipped`` / ``rejected_before`` without a run."""
    from mdm_orchestration.ingestion import (
        file_sha256,
        loaded_extract_id,
        register_landed_file,
        rejected_extract_id,
    )

    folder = f.key.split("/", 1)[0]
    source = config.source_for_folder(folder)
    sha = file_sha256(f.path)
    if source is not None:
        if loaded_extract_id(engine, source.name, sha):
            return "skipped", 0
        # Rejected content is recorded once and not tried again; new bytes are.
        if rejected_extract_id(engine, source.name, sha):
            return "rejected_before", 0
    # Dagster gets an opaque partition key; the file's name stays in the hub (and on the
    # terminal, as the label).
    key = register_landed_file(engine, source.name if source else folder, f.key, sha)
    result = run_job(instance, "ingest_job", target, partition_key=key, label=f.key, quiet=quiet)
    if not result.success:
        return "failed", 0
    rows = 0
    for mat in result.asset_materializations_for_node("source_extracts"):
        landed = mat.metadata.get("rows_landed")
        rows += int(landed.value) if landed is not None else 0
    return "ingested", rows


def run_reconsolidation(instance: Any, target: Target, engine: Any, *, quiet: bool = False) -> bool:  # noqa: ANN401
    """Run ``reconsolidate_job`` (the job ``reconsolidation_sensor`` requests) when anything is
    stale: extracts not cleansed yet, clusters behind the records, labels or overrides, or
    golden records behind the clusters or the survivorship rules. Nothing stale, no run."""
    from mdm_orchestration.cleansing import pending_extracts
    from mdm_orchestration.matching import needs_rematch
    from mdm_orchestration.survivorship import needs_consolidation

    with engine.connect() as conn:
        stale = (
            bool(pending_extracts(conn))
            or needs_rematch(conn, target.hub_config().matching)
            or needs_consolidation(conn, target.hub_config())
        )
    return execute_job(instance, "reconsolidate_job", target, quiet=quiet) if stale else True


def run_matching(
    instance: Any,  # noqa: ANN401
    target: Target,
    engine: Any,  # noqa: ANN401
    *,
    quiet: bool = False,
    after_cleansing: bool = False,
) -> bool:
    """Run ``match_job`` when the clustering is stale (new records, labels or overrides)."""
    from mdm_orchestration.matching import needs_rematch

    with engine.connect() as conn:
        stale = after_cleansing or needs_rematch(conn, target.hub_config().matching)
    return execute_job(instance, "match_job", target, quiet=quiet) if stale else True


def run_mastering(instance: Any, target: Target, engine: Any, *, quiet: bool = False) -> bool:  # noqa: ANN401
    """Run ``master_job`` when the golden records are stale (new clusters, changed rules)."""
    from mdm_orchestration.survivorship import needs_consolidation

    with engine.connect() as conn:
        stale = needs_consolidation(conn, target.hub_config())
    return execute_job(instance, "master_job", target, quiet=quiet) if stale else True


def run_syndication(
    instance: Any,  # noqa: ANN401
    target: Target,
    engine: Any,  # noqa: ANN401
    *,
    quiet: bool = False,
    only: str | None = None,
) -> bool:
    """Run ``syndicate_job`` for each subscriber (or ``only`` one) with something to deliver."""
    from mdm_orchestration.syndication import subscriber_status

    config = target.hub_config()
    if only is not None and only not in config.subscriptions.subscribers:
        raise ValueError(f"no subscriber {only!r} in subscriptions.yaml")
    ok = True
    for name, state in subscriber_status(engine, config).items():
        if (only and name != only) or (state["pending"] == 0 and state["snapshot_done"]):
            continue
        label = f"syndicate_job {name}"
        ok = (
            execute_job(
                instance, "syndicate_job", target, partition_key=name, label=label, quiet=quiet
            )
            and ok
        )
    return ok


__all__ = [
    "LOCAL_DAGSTER_YAML",
    "Target",
    "dagster_home",
    "dagster_instance",
    "execute_job",
    "run_job",
    "run_landing",
    "run_matching",
    "run_mastering",
    "run_syndication",
]
