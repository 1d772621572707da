"""Cleansing: raw source values into the canonical customer model, with a quality verdict.

Pure functions per kind of value (``names``, ``contact``, ``addresses``, ``dates``, ``ids``),
one batch function over a source's versions (``pipeline``) and the hub-side loop (``runner``).
No Dagster in here.
"""

from mdm_orchestration.cleansing.pipeline import CleanseResult, canonical_inputs, cleanse_batch
from mdm_orchestration.cleansing.runner import (
    CleanseSummary,
    SourceQualityState,
    cleanse_pending,
    quality_state,
)

__all__ = [
    "CleanseResult",
    "CleanseSummary",
    "SourceQualityState",
    "canonical_inputs",
    "cleanse_batch",
    "cleanse_pending",
    "quality_state",
]
