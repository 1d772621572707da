"""Cleansing: raw source values into the canonical customer model, with a quality verdict.

Pure functions per kind of value (``names``, ``contact``, ``addresses``, ``dates``, ``ids``),
one batch function over a source's versions (``pipeline``, scored by ``quality``), the same over
a stream of batches on worker processes (``parallel``) and the hub-side loop (``runner``).
No Dagster in here. This module is the stage's face: callers import from here.
"""

from mdm_orchestration.cleansing.parallel import cleanse_batches, resolve_workers
from mdm_orchestration.cleansing.pipeline import CleanseResult, canonical_inputs, cleanse_batch
from mdm_orchestration.cleansing.rows import cleanse_rows
from mdm_orchestration.cleansing.runner import (
    CleanseSummary,
    SourceQualityState,
    cleanse_pending,
    pending_extracts,
    quality_state,
)

__all__ = [
    "CleanseResult",
    "CleanseSummary",
    "SourceQualityState",
    "canonical_inputs",
    "cleanse_batch",
    "cleanse_batches",
    "cleanse_pending",
    "cleanse_rows",
    "pending_extracts",
    "quality_state",
    "resolve_workers",
]
