"""Hub plumbing every store shares, written once: the table handles, the current-version join,
the party types, the clock, chunked ``IN`` lists, advisory locks and connected components.

Stores import from here instead of aliasing ``Model.__table__`` or re-writing a helper.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import Connection, Table, and_, text

from mdm_orchestration.hub.models import (
    BlockingKey,
    CleansedRecord,
    ConsolidationQueue,
    Delivery,
    ErasedRecord,
    Erasure,
    Extract,
    GoldenChange,
    GoldenHistory,
    GoldenRecord,
    GoldenRun,
    GoldenXref,
    HouseholdMember,
    HouseholdRow,
    HubCursor,
    MatchCluster,
    MatchModelRow,
    MatchOverride,
    MatchPair,
    MatchRun,
    QuarantineRow,
    ReviewItem,
    SourceRecord,
    SourceRecordVersion,
    SubscriberState,
    TermFrequency,
    TrainingLabel,
)
from mdm_orchestration.hub.store import as_utc, chunks, in_chunks


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


# --- table handles ----------------------------------------------------------------------------
EXTRACTS = _table(Extract)
VERSIONS = _table(SourceRecordVersion)
SOURCES = _table(SourceRecord)
QUARANTINE = _table(QuarantineRow)
CLEANSED = _table(CleansedRecord)
LABELS = _table(TrainingLabel)
OVERRIDES = _table(MatchOverride)
MODELS = _table(MatchModelRow)
CLUSTERS = _table(MatchCluster)
REVIEW = _table(ReviewItem)
INDEX = _table(BlockingKey)
PAIRS = _table(MatchPair)
MATCH_RUNS = _table(MatchRun)
QUEUE = _table(ConsolidationQueue)
GOLDEN = _table(GoldenRecord)
HISTORY = _table(GoldenHistory)
XREF = _table(GoldenXref)
CHANGES = _table(GoldenChange)
GOLDEN_RUNS = _table(GoldenRun)
HOUSEHOLDS = _table(HouseholdRow)
HOUSEHOLD_MEMBERS = _table(HouseholdMember)
SUBSCRIBERS = _table(SubscriberState)
DELIVERIES = _table(Delivery)
ERASURES = _table(Erasure)
ERASED = _table(ErasedRecord)
CURSORS = _table(HubCursor)
TERM_FREQUENCIES = _table(TermFrequency)

#: Each source record's current version, cleansed: the join every stage after cleansing reads.
CURRENT_CLEANSED = CLEANSED.join(
    SOURCES,
    and_(
        SOURCES.c.current_extract_id == CLEANSED.c.extract_id,
        SOURCES.c.current_row_number == CLEANSED.c.row_number,
        # Redundant for a current version, but it lets the database find a record by its id.
        SOURCES.c.id == CLEANSED.c.source_record_id,
    ),
)

# --- party types ------------------------------------------------------------------------------
PERSON = "person"
ORGANISATION = "organisation"
PARTY_TYPES = (PERSON, ORGANISATION)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (the hub stores every timestamp in UTC)."""
    return datetime.now(UTC)


# --- advisory locks ---------------------------------------------------------------------------
#: ``pg_advisory_xact_lock`` keys, one per writer that must be alone (one writer of the hub at a time).
MIGRATION_LOCK_KEY = 0x6D646D01
CONSOLIDATE_LOCK_KEY = 0x6D646D02
MATCH_LOCK_KEY = 0x6D646D03


def advisory_xact_lock(conn: Connection, key: int) -> None:
    """Hold ``key`` until the transaction ends (PostgreSQL; SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# --- graphs -----------------------------------------------------------------------------------
def component_labels(n: int, left: Iterable[int], right: Iterable[int]) -> np.ndarray:
    """The connected component of each of ``n`` nodes joined by the edges ``left[i]-right[i]``
    (scipy's ``connected_components``, not a home-made union-find)."""
    a = np.fromiter(left, dtype=np.int64)
    b = np.fromiter(right, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _count, labels = connected_components(graph, directed=False)
    return labels


# --- bulk-write column orders -----------------------------------------------------------------
#: The columns of a ``quarantine`` row, in the order ``hub.bulk.bulk_insert`` takes them (every
#: stage that quarantines writes these).
QUARANTINE_COLUMNS = (
    "extract_id",
    "row_number",
    "stage",
    "field",
    "reason",
    "detail",
    "quarantined_at",
)

__all__ = [
    "CHANGES",
    "CLEANSED",
    "CLUSTERS",
    "CONSOLIDATE_LOCK_KEY",
    "CURRENT_CLEANSED",
    "CURSORS",
    "DELIVERIES",
    "ERASED",
    "ERASURES",
    "EXTRACTS",
    "GOLDEN",
    "GOLDEN_RUNS",
    "HISTORY",
    "HOUSEHOLDS",
    "HOUSEHOLD_MEMBERS",
    "INDEX",
    "LABELS",
    "MATCH_LOCK_KEY",
    "MATCH_RUNS",
    "MIGRATION_LOCK_KEY",
    "MODELS",
    "ORGANISATION",
    "OVERRIDES",
    "PAIRS",
    "TERM_FREQUENCIES",
    "PARTY_TYPES",
    "PERSON",
    "QUARANTINE",
    "QUARANTINE_COLUMNS",
    "QUEUE",
    "REVIEW",
    "SOURCES",
    "SUBSCRIBERS",
    "VERSIONS",
    "XREF",
    "advisory_xact_lock",
    "as_utc",
    "chunks",
    "component_labels",
    "in_chunks",
    "utcnow",
]


# --- landing-scan skips (issue 17) ------------------------------------------------------------
from mdm_orchestration.hub.models import LandingSkip  # noqa: E402

LANDING_SKIPS = _table(LandingSkip)

from mdm_orchestration.hub.models import LandedFileKey  # noqa: E402

LANDED_FILE_KEYS = _table(LandedFileKey)

# The HTTP service's API keys and API-written records.
from mdm_orchestration.hub.models import ApiKey, ApiWrite  # noqa: E402

API_KEYS = _table(ApiKey)
API_WRITES = _table(ApiWrite)

# --- syndication's dead letters (issue 17) ----------------------------------------------------
from mdm_orchestration.hub.models import DeadLetter  # noqa: E402

DEAD_LETTERS = _table(DeadLetter)

# --- the steward workbench's users and audit trail (issue 19) ---------------------------------
from mdm_orchestration.hub.models import WorkbenchAudit, WorkbenchUser  # noqa: E402

WORKBENCH_USERS = _table(WorkbenchUser)
WORKBENCH_AUDIT = _table(WorkbenchAudit)

# --- attribute overrides and removed links (issue 19) -----------------------------------------
from mdm_orchestration.hub.models import (  # noqa: E402
    AttributeOverride,
    AttributeOverrideEvent,
    MatchOverrideRemoval,
)

ATTRIBUTE_OVERRIDES = _table(AttributeOverride)
OVERRIDE_HISTORY = _table(AttributeOverrideEvent)
OVERRIDE_REMOVALS = _table(MatchOverrideRemoval)

# --- the partitioned full rebuild's staging (issue 21) ----------------------------------------
from mdm_orchestration.hub.models import MatchStagePair, MatchStagePartition  # noqa: E402

STAGE_PARTITIONS = _table(MatchStagePartition)
STAGE_PAIRS = _table(MatchStagePair)
