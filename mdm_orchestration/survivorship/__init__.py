"""Golden records: survivorship, lineage, stable golden ids, cross-reference, history,
households. Pure Python over the hub; nothing here knows Dagster."""

from mdm_orchestration.survivorship.consolidate import GoldenState, Plan, plan_consolidation
from mdm_orchestration.survivorship.households import Household, build_households
from mdm_orchestration.survivorship.ids import Assignment, assign_golden_ids
from mdm_orchestration.survivorship.rules import ATTRIBUTES, Survived, Survivor

__all__ = [
    "ATTRIBUTES",
    "Assignment",
    "GoldenState",
    "Household",
    "Plan",
    "Survived",
    "Survivor",
    "assign_golden_ids",
    "build_households",
    "plan_consolidation",
]
