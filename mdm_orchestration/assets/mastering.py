"""Mastering: golden records with lineage and stable ids, the outbox of their changes, and
households."""

import dagster as dg

from mdm_orchestration.assets.errors import customer_safe_errors
from mdm_orchestration.assets.pace import stopwatch
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.survivorship import (
    consolidate,
    golden_health,
    golden_statistics,
    refresh_households,
    stray_household_members,
)

ONE_GOLDEN_ID = "every_source_record_has_one_golden_id"
NO_EMPTY = "no_golden_record_without_members"
UNIQUE_IDS = "golden_ids_unique"
LINEAGE = "lineage_complete"
HOUSEHOLD_MEMBERS_ACTIVE = "household_members_are_active_persons"
_COMMON = {
    "group_name": "mastering",
    "kinds": {"python", "sql"},
    "owners": ["team:mdm"],
    "tags": {"stage": "mastering"},
}

#: The columns of golden_records' ``this_run`` table: the run's counts by change.
THIS_RUN = ("created", "updated", "merged", "split", "retired", "unchanged")


def _this_run_table(counts: dict[str, int]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({k: counts[k] for k in THIS_RUN})],
        schema=dg.TableSchema(columns=[dg.TableColumn(k, "int") for k in THIS_RUN]),
    )


class GoldenRecordsConfig(dg.Config):
    #: Survive every cluster again, not only those that changed (after editing sources.yaml's
    #: trust ranks, say; a change of survivorship.yaml is noticed by itself).
    full: bool = False


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "golden_records",
            deps=["match_clusters"],
            description=(
                "One golden record per cluster: each attribute survives from one record by the "
                "strategies of survivorship.yaml (validity, source trust, recency, frequency, "
                "completeness), with its lineage. Golden ids are stable across re-runs and "
                "retrains; merges keep the oldest id, splits keep the id with the largest part. "
                "Also writes the cross-reference (source, key -> golden id) and the history."
            ),
            **_COMMON,
        ),
        dg.AssetSpec(
            "golden_changes",
            deps=["golden_records"],
            description=(
                "The outbox: ordered change events (created, updated with the changed "
                "attributes, merged, split, retired), written in the same transaction as the "
                "golden records. Syndication reads it."
            ),
            **_COMMON,
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            ONE_GOLDEN_ID,
            asset="golden_records",
            description="Every current, cleansed source record maps to exactly one "
            "active golden id in the cross-reference (an incremental run checks "
            "the records it considered; a full run, every record).",
        ),
        dg.AssetCheckSpec(
            NO_EMPTY,
            asset="golden_records",
            description="Every active golden record has at least one source record "
            "(an incremental run checks the golden records it reached).",
        ),
        dg.AssetCheckSpec(
            UNIQUE_IDS,
            asset="golden_records",
            description="Golden ids are unique and never reused.",
        ),
        dg.AssetCheckSpec(
            LINEAGE,
            asset="golden_records",
            description="Every attribute of the golden records written by the run "
            "names the source record and the rule that supplied it.",
        ),
    ],
    pool="hub_writer",
)
@customer_safe_errors
def consolidate_golden_records(
    context: dg.AssetExecutionContext,
    config: GoldenRecordsConfig,
    hub: HubDatabase,
    landing: LandingZone,
):  # type: ignore[no-untyped-def]
    """Survive the clusters that changed into golden records; write changes and their events
    at once."""
    with stopwatch() as watch:
        result = consolidate(
            hub.engine, landing.hub_config(), run_id=context.run.run_id, full=config.full
        )
    health = golden_health(hub.engine, run_id=context.run.run_id, scope=result.scope)
    stats = golden_statistics(hub.engine)
    counts = result.counts
    context.log.info(
        f"golden records {result.golden_records}; this run: {counts}; "
        + watch.said(result.records, "source records")
    )
    yield dg.MaterializeResult(
        asset_key="golden_records",
        metadata={
            "golden_records": result.golden_records,
            "persons": result.by_party.get("person", 0),
            "organisations": result.by_party.get("organisation", 0),
            "source_records": result.records,
            **watch.metadata(result.records, "records"),
            **{k: v for k, v in counts.items()},
            "contacts_linked_to_organisations": stats.linked_contacts,
            "lifecycles": dg.MetadataValue.json(stats.lifecycles),
            "this_run": _this_run_table(counts),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ONE_GOLDEN_ID,
                passed=health.active_records == health.mapped_records == health.xref_rows
                and health.xref_to_inactive == 0,
                metadata={
                    "scope": "run" if result.scope is not None else "hub",
                    "source_records": health.active_records,
                    "mapped": health.mapped_records,
                    "xref_rows": health.xref_rows,
                    "xref_to_inactive_golden": health.xref_to_inactive,
                },
            ),
            dg.AssetCheckResult(
                check_name=NO_EMPTY,
                passed=health.goldens_without_members == 0,
                metadata={"empty": health.goldens_without_members},
            ),
            dg.AssetCheckResult(
                check_name=UNIQUE_IDS,
                passed=health.golden_rows == health.distinct_golden_ids,
                metadata={"golden_ids": health.golden_rows, "distinct": health.distinct_golden_ids},
            ),
            dg.AssetCheckResult(
                check_name=LINEAGE,
                passed=health.lineage_gaps == 0,
                metadata={
                    "checked_golden_records": health.checked_for_lineage,
                    "attributes_without_lineage": health.lineage_gaps,
                },
            ),
        ],
    )
    yield dg.MaterializeResult(
        asset_key="golden_changes",
        metadata={
            "events_this_run": result.events,
            "events_total": stats.events_total,
            "last_seq": stats.last_seq,
            "events_by_type_this_run": dg.MetadataValue.json(
                {k: v for k, v in counts.items() if k != "unchanged"}
            ),
        },
    )


@dg.asset(
    deps=["golden_records"],
    pool="hub_writer",
    check_specs=[
        dg.AssetCheckSpec(
            HOUSEHOLD_MEMBERS_ACTIVE,
            asset="households",
            description="Every household member is an active person golden record.",
        ),
    ],
    **_COMMON,
)
@customer_safe_errors
def households(context: dg.AssetExecutionContext, hub: HubDatabase) -> dg.MaterializeResult:
    """Households: persons' golden records at the same normalised address with a compatible
    family name (the same, or one part of a double-barrelled one). Only the addresses of golden
    records changed since the last run are redone (read from the outbox). Organisations and
    their contacts are linked on the golden records themselves (organisation_golden_id)."""
    with stopwatch() as watch:
        stats = refresh_households(hub.engine)
    stray = stray_household_members(hub.engine)
    context.log.info(f"households: {stats} in {watch.seconds:.1f} s")
    return dg.MaterializeResult(
        metadata={**stats, "seconds": round(watch.seconds, 3)},
        check_results=[
            dg.AssetCheckResult(
                check_name=HOUSEHOLD_MEMBERS_ACTIVE,
                passed=stray == 0,
                metadata={"stray_members": stray},
            )
        ],
    )
