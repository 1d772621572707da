"""Golden records: survivorship, lineage, stable golden ids, cross-reference, history,
households. Pure Python over the hub; nothing here knows Dagster.

This is survivorship's face: callers (assets, the CLI, syndication, tests, benchmarks) import
from here. Behind it: the pure plan (``consolidate``, ``rules``, ``ids``, ``households``), the
hub reads it plans from (``reading``), the write transaction (``writing``), household refresh
(``householding``), attribute overrides (``overrides`` pure, ``pinning`` for stewards,
``override_store`` for the runs), checks and statistics (``health``), look-ups and export
(``lookup``).
"""

from mdm_orchestration.survivorship.consolidate import GoldenState, Plan, plan_consolidation
from mdm_orchestration.survivorship.health import (
    GoldenHealth,
    GoldenStatistics,
    golden_health,
    golden_statistics,
    pending_events,
    stray_household_members,
)
from mdm_orchestration.survivorship.householding import rebuild_households, refresh_households
from mdm_orchestration.survivorship.households import Household, build_households
from mdm_orchestration.survivorship.ids import Assignment, assign_golden_ids, golden_id_for
from mdm_orchestration.survivorship.lookup import (
    EXPORT_KINDS,
    export_csv,
    find_record_ids,
    formula_safe,
    golden_as_of,
    golden_documents,
    golden_history,
    golden_ids_matching,
    golden_ids_of_records,
    lookup,
    resolve_golden_id,
)
from mdm_orchestration.survivorship.override_store import forget_overrides
from mdm_orchestration.survivorship.overrides import (
    ATTRIBUTE_GROUPS,
    OVERRIDE_RULE,
    Override,
    OverrideOutcome,
    apply_overrides,
)
from mdm_orchestration.survivorship.pinning import (
    AttributeOverrideView,
    OverrideError,
    OverrideEvent,
    attribute_overrides,
    override_counts,
    override_history,
    pin_attribute,
    remove_attribute_override,
    review_retired_override,
)
from mdm_orchestration.survivorship.reading import needs_consolidation
from mdm_orchestration.survivorship.rows import (
    ACTIVE,
    CHANGE_COLUMNS,
    GOLDEN_COLUMNS,
    HISTORY_COLUMNS,
    config_digest,
    event_id,
)
from mdm_orchestration.survivorship.rules import ATTRIBUTES, Survived, Survivor
from mdm_orchestration.survivorship.writing import (
    ConcurrentConsolidation,
    ConsolidationResult,
    consolidate,
)

__all__ = [
    "ACTIVE",
    "ATTRIBUTES",
    "ATTRIBUTE_GROUPS",
    "CHANGE_COLUMNS",
    "EXPORT_KINDS",
    "GOLDEN_COLUMNS",
    "HISTORY_COLUMNS",
    "OVERRIDE_RULE",
    "Assignment",
    "AttributeOverrideView",
    "ConcurrentConsolidation",
    "ConsolidationResult",
    "GoldenHealth",
    "GoldenState",
    "GoldenStatistics",
    "Household",
    "Override",
    "OverrideError",
    "OverrideEvent",
    "OverrideOutcome",
    "Plan",
    "Survived",
    "Survivor",
    "apply_overrides",
    "assign_golden_ids",
    "attribute_overrides",
    "build_households",
    "config_digest",
    "consolidate",
    "event_id",
    "export_csv",
    "find_record_ids",
    "forget_overrides",
    "formula_safe",
    "golden_as_of",
    "golden_documents",
    "golden_history",
    "golden_ids_matching",
    "golden_ids_of_records",
    "golden_health",
    "golden_id_for",
    "golden_statistics",
    "lookup",
    "needs_consolidation",
    "override_counts",
    "override_history",
    "pending_events",
    "pin_attribute",
    "plan_consolidation",
    "rebuild_households",
    "refresh_households",
    "remove_attribute_override",
    "resolve_golden_id",
    "review_retired_override",
    "stray_household_members",
]
