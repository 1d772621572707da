"""Cleansing: new source-record versions into the canonical customer model."""

import dagster as dg

from mdm_orchestration.assets.errors import customer_safe_errors
from mdm_orchestration.assets.pace import stopwatch
from mdm_orchestration.cleansing import (
    CleanseSummary,
    SourceQualityState,
    cleanse_pending,
    quality_state,
)
from mdm_orchestration.config import HubConfig
from mdm_orchestration.resources import HubDatabase, LandingZone

QUARANTINE_RATE = "quarantine_rate_below_threshold"
COMPLETENESS = "required_fields_complete"


class CleanseConfig(dg.Config):
    """Launchpad options for ``cleansed_records``."""

    #: Cleanse every extract again (after changing ``quality.yaml`` or the source mappings).
    rebuild: bool = False


#: The per-source quality table: column name and type, as the Dagster UI shows it.
QUALITY_COLUMNS = (
    ("source", "string"),
    ("cleansed", "int"),
    ("quarantined", "int"),
    ("quarantine_rate", "float"),
    ("mean_score", "float"),
    ("lowest_completeness", "string"),
)


QualityRow = dict[str, str | int | float | None]


def _quality_rows(state: dict[str, SourceQualityState]) -> list[QualityRow]:
    rows: list[QualityRow] = []
    for name, s in state.items():
        worst = min(s.completeness.items(), key=lambda kv: kv[1], default=None)
        rows.append(
            {
                "source": name,
                "cleansed": s.cleansed,
                "quarantined": s.quarantined,
                "quarantine_rate": s.quarantine_rate,
                "mean_score": s.mean_score,
                "lowest_completeness": f"{worst[0]} {worst[1]:.1%}" if worst else None,
            }
        )
    return rows


def _quality_table(rows: list[QualityRow]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in QUALITY_COLUMNS]),
    )


def _quality_markdown(rows: list[QualityRow]) -> str:
    """The same rows as a markdown table (the ``quality_by_source`` key, kept for its readers)."""
    lines = [
        "| source | cleansed | quarantined | quarantine rate | mean score | lowest completeness |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        score = f"{r['mean_score']:.3f}" if r["mean_score"] is not None else "-"
        lines.append(
            f"| {r['source']} | {r['cleansed']} | {r['quarantined']} | "
            f"{r['quarantine_rate']:.2%} | {score} | {r['lowest_completeness'] or '-'} |"
        )
    return "\n".join(lines)


def _threshold_check(
    name: str,
    severity: dg.AssetCheckSeverity,
    failures: dict[str, float],
    verdict: str,
    metadata: dict[str, object],
) -> dg.AssetCheckResult:
    """Passed when nothing is over its threshold; the description names what is."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failures,
        severity=severity,
        description=(
            f"{verdict}: " + ", ".join(f"{k} {v:.2%}" for k, v in failures.items())
            if failures
            else "Every source within its thresholds."
        ),
        metadata={"failing": dg.MetadataValue.json(failures)}
        | {k: dg.MetadataValue.json(v) for k, v in metadata.items()},
    )


def _checks(config: HubConfig, state: dict[str, SourceQualityState]) -> list[dg.AssetCheckResult]:
    thresholds = {n: config.quality.thresholds_for(n) for n in state}
    over_rate = {
        name: round(s.quarantine_rate, 4)
        for name, s in state.items()
        if s.quarantine_rate > thresholds[name].max_quarantine_rate
    }
    incomplete = {
        f"{name}.{fld}": share
        for name, s in state.items()
        for fld, share in s.completeness.items()
        if share < thresholds[name].min_completeness
    }
    return [
        _threshold_check(
            QUARANTINE_RATE,
            dg.AssetCheckSeverity.ERROR,
            over_rate,
            "Quarantine rate over threshold",
            {
                "quarantine_rate_by_source": {
                    n: round(s.quarantine_rate, 4) for n, s in state.items()
                },
                "threshold_by_source": {n: t.max_quarantine_rate for n, t in thresholds.items()},
            },
        ),
        _threshold_check(
            COMPLETENESS,
            dg.AssetCheckSeverity.WARN,
            incomplete,
            "Completeness below threshold",
            {
                "completeness_by_source": {n: s.completeness for n, s in state.items()},
                "threshold_by_source": {n: t.min_completeness for n, t in thresholds.items()},
            },
        ),
    ]


@dg.asset(
    deps=["source_extracts"],
    group_name="cleansing",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "cleansing"},
    pool="hub_writer",
    check_specs=[
        dg.AssetCheckSpec(
            QUARANTINE_RATE,
            asset="cleansed_records",
            description="Per source, the share of rows quarantined by cleansing (blocking "
            "quality rules) stays within quality.yaml's max_quarantine_rate.",
        ),
        dg.AssetCheckSpec(
            COMPLETENESS,
            asset="cleansed_records",
            description="Per source, each required field (quality.yaml) is filled and valid "
            "in at least min_completeness of its records.",
        ),
    ],
)
@customer_safe_errors
def cleansed_records(
    context: dg.AssetExecutionContext,
    config: CleanseConfig,
    hub: HubDatabase,
    landing: LandingZone,
) -> dg.MaterializeResult:
    """Every source-record version in the canonical customer model, with a quality verdict.

    Names split and keyed (nicknames to formal names), organisations with legal forms apart,
    emails and phones validated (E.164), addresses parsed (USPS abbreviations, ISO countries,
    postcode formats), birth dates read in each source's date order, national ids checked.
    Only extracts not cleansed yet are read; a record failing a blocking rule of quality.yaml
    goes to quarantine with the field and rule instead.
    """
    hub_config = landing.hub_config()
    with stopwatch() as watch:
        summary: CleanseSummary = cleanse_pending(hub.engine, hub_config, rebuild=config.rebuild)
    state = quality_state(hub.engine, hub_config)
    context.log.info(
        f"cleansed {summary.cleansed} and quarantined {summary.quarantined} of "
        f"{summary.versions} new versions from {summary.extracts} extract(s) "
        + watch.said(summary.versions, "versions")
    )
    if summary.skipped_extracts:
        context.log.warning(
            f"{summary.skipped_extracts} extract(s) belong to sources no longer configured; "
            "left uncleansed"
        )
    quality_rows = _quality_rows(state)
    return dg.MaterializeResult(
        metadata={
            "extracts_cleansed": summary.extracts,
            "versions_read": summary.versions,
            "records_cleansed": summary.cleansed,
            "records_quarantined": summary.quarantined,
            **watch.metadata(summary.versions, "versions"),
            "skipped_extracts": summary.skipped_extracts,
            "rebuild": config.rebuild,
            "this_run_by_source": dg.MetadataValue.json(summary.per_source),
            "rule_failures_this_run": dg.MetadataValue.json(summary.rule_totals),
            "rule_failures_by_source_this_run": dg.MetadataValue.json(summary.rule_counts),
            "hub_total_cleansed": sum(s.cleansed for s in state.values()),
            "quality": _quality_table(quality_rows),
            "quality_by_source": dg.MetadataValue.md(_quality_markdown(quality_rows)),
        },
        check_results=_checks(hub_config, state),
    )
