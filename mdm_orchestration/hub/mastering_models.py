"""The hub's tables after matching, as SQLModel classes: golden records, their history, the
cross-reference and the outbox; households; syndication's ledger; erasure; and the incremental
path's blocking index, queue, runs, kept pairs and cursors. ``hub.models`` re-exports them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

# --- mastering: golden records, their history, the cross-reference and the outbox ------------


class GoldenRecord(SQLModel, table=True):
    """The current version of a golden record: the best values of its cluster's records.

    ``status`` is ``active``, ``merged`` (into ``merged_into``) or ``retired`` (no record left).
    Rows are never deleted, so a golden id is never reused. ``keys`` holds the folded match keys
    of the surviving values (for households and lookups); ``lineage`` names, per attribute, the
    source record and the survivorship strategy that supplied it.
    """

    __tablename__ = "golden_records"
    __table_args__ = (
        Index("uq_golden_records_seq", "seq", unique=True),
        Index("ix_golden_records_status", "status"),
        Index("ix_golden_records_status_golden", "status", "golden_id"),
        Index("ix_golden_records_org_status", "organisation_golden_id", "status", "golden_id"),
        Index("ix_golden_records_updated_run", "updated_run_id"),
    )

    golden_id: str = Field(primary_key=True, max_length=16)
    seq: int = Field(sa_type=BigInteger)
    party_type: str = Field(max_length=16)
    status: str = Field(max_length=16)
    merged_into: str | None = Field(default=None, max_length=16)
    version: int
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    keys: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lineage: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    consents: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lifecycle: str | None = Field(default=None, max_length=32)
    organisation_golden_id: str | None = Field(default=None, max_length=16)
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    member_count: int
    content_hash: str = Field(max_length=64)
    created_at: datetime
    updated_at: datetime
    created_run_id: str | None = Field(default=None, max_length=64)
    updated_run_id: str | None = Field(default=None, max_length=64)


class GoldenHistory(SQLModel, table=True):
    """Every version of every golden record, as it was: read a golden record as of a past time."""

    __tablename__ = "golden_history"
    __table_args__ = (
        Index("uq_golden_history_version", "golden_id", "version", unique=True),
        Index("ix_golden_history_recorded", "recorded_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    golden_id: str = Field(max_length=16)
    version: int
    status: str = Field(max_length=16)
    change: str = Field(max_length=16)  # created | updated | merged | split | retired
    changed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    party_type: str = Field(max_length=16)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lineage: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    consents: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lifecycle: str | None = Field(default=None, max_length=32)
    organisation_golden_id: str | None = Field(default=None, max_length=16)
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    members: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    merged_into: str | None = Field(default=None, max_length=16)
    run_id: str | None = Field(default=None, max_length=64)
    recorded_at: datetime
    #: The household the version's person belonged to once the households were refreshed
    #: after the consolidation that wrote it: NULL not recorded yet, "" none.
    household_id: str | None = Field(default=None, max_length=16)


class GoldenXref(SQLModel, table=True):
    """The cross-reference: each active source record and the golden record it belongs to."""

    __tablename__ = "golden_xref"
    __table_args__ = (
        Index("uq_golden_xref_key", "source", "source_key", unique=True),
        Index("ix_golden_xref_golden", "golden_id"),
    )

    record_id: str = Field(primary_key=True, max_length=32)
    source: str = Field(max_length=40)
    source_key: str = Field(max_length=256)
    golden_id: str = Field(max_length=16)
    assigned_at: datetime


class GoldenChange(SQLModel, table=True):
    """The outbox: ordered change events, written in the transaction that changes the golden
    records. ``seq`` orders them; ``event_id`` is stable, so receivers can drop a redelivery.
    The values of the version an event announces are in ``golden_history``."""

    __tablename__ = "golden_changes"
    __table_args__ = (
        Index("uq_golden_changes_event", "event_id", unique=True),
        Index("ix_golden_changes_golden", "golden_id", "version"),
        {"sqlite_autoincrement": True},
    )

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=36)
    golden_id: str = Field(max_length=16)
    version: int
    event_type: str = Field(max_length=16)  # created | updated | merged | split | retired
    changed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    related: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    run_id: str | None = Field(default=None, max_length=64)
    created_at: datetime
    #: The business events (``events.yaml``) this change carries: address_changed, ...
    business_events: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
    )


class GoldenRun(SQLModel, table=True):
    """One consolidation: what it consumed and what it changed (counts only)."""

    __tablename__ = "golden_runs"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, max_length=64)
    clusters_at: datetime | None = None
    config_digest: str = Field(max_length=64)
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    finished_at: datetime


class HouseholdRow(SQLModel, table=True):
    """A household: persons at one normalised address with a compatible family name."""

    __tablename__ = "households"
    __table_args__ = (Index("ix_households_address", "address_key"),)

    household_id: str = Field(primary_key=True, max_length=16)
    address_key: str = Field(sa_column=Column(Text, nullable=False))
    family_key: str = Field(sa_column=Column(Text, nullable=False))
    member_count: int
    updated_at: datetime


class HouseholdMember(SQLModel, table=True):
    __tablename__ = "household_members"
    __table_args__ = (Index("ix_household_members_household", "household_id"),)

    golden_id: str = Field(primary_key=True, max_length=16)
    household_id: str = Field(max_length=16)


# --- syndication and erasure ------------------------------------------------------------------


class SubscriberState(SQLModel, table=True):
    """Where each subscriber stands in the outbox, and whether it is failing."""

    __tablename__ = "subscriber_state"

    subscriber: str = Field(primary_key=True, max_length=40)
    cursor_seq: int = Field(default=0, sa_type=BigInteger)
    snapshot_done: bool = False
    snapshot_seq: int | None = Field(default=None, sa_type=BigInteger)
    snapshot_after: str | None = Field(default=None, max_length=16)
    status: str = Field(default="ok", max_length=16)  # ok | failing
    failing_since: datetime | None = None
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    delivered_total: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime


class Delivery(SQLModel, table=True):
    """The delivery ledger: per subscriber and golden record, the last version delivered and
    whether the subscriber holds it now. A row stays after a removal: erasure notices go to
    every subscriber that ever received the golden record."""

    __tablename__ = "deliveries"

    subscriber: str = Field(primary_key=True, max_length=40)
    golden_id: str = Field(primary_key=True, max_length=16)
    version: int
    event_id: str = Field(max_length=36)
    present: bool
    delivered_at: datetime


class Erasure(SQLModel, table=True):
    """An erasure request carried out: a tombstone with no personal data."""

    __tablename__ = "erasures"

    id: int | None = Field(default=None, primary_key=True)
    golden_id: str = Field(max_length=16, index=True)
    records: int
    requested_by: str = Field(max_length=128)
    erased_at: datetime


class ErasedRecord(SQLModel, table=True):
    """Source record ids (hashes of source and key) whose subject was erased: a later extract
    carrying them is quarantined as ``erased_subject``, and a restore replays them."""

    __tablename__ = "erased_records"

    record_id: str = Field(primary_key=True, max_length=32)
    erasure_id: int = Field(foreign_key="erasures.id")


# --- incremental reconsolidation --------------------------------------------------------------


class BlockingKey(SQLModel, table=True):
    """The persisted blocking index: each clustered record's blocking keys, hashed (no values),
    so that a new record finds the existing records it could match without re-pairing the hub."""

    __tablename__ = "blocking_index"
    # SQLite: stored in primary-key order (no rowid), so a record's keys share a page.
    __table_args__ = (Index("ix_blocking_index_hash", "key_hash"), {"sqlite_with_rowid": False})

    record_id: str = Field(primary_key=True, max_length=32)
    key_name: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(max_length=32)


class ConsolidationQueue(SQLModel, table=True):
    """Records whose cluster changed since golden records were last built (written by
    matching, emptied by consolidation, each in its own transaction)."""

    __tablename__ = "consolidation_queue"

    record_id: str = Field(primary_key=True, max_length=32)


class MatchRun(SQLModel, table=True):
    """One matching run: full or incremental, what it consumed and touched (counts only)."""

    __tablename__ = "match_runs"

    id: int | None = Field(default=None, primary_key=True)
    mode: str = Field(max_length=16)  # full | incremental
    #: extracts cleansed up to this time were taken into account
    cleansed_upto: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    finished_at: datetime


class MatchPair(SQLModel, table=True):
    """A scored record pair (``left_record_id < right_record_id``), kept so that an incremental
    run re-scores only the pairs of records that changed: the match probability the model (or a
    rule) gave it. Pairs scoring below ``PAIR_FLOOR`` (matching/writes.py) are not kept; they are
    scored again if a component ever needs them."""

    __tablename__ = "match_pairs"
    __table_args__ = (
        Index("ix_match_pairs_right", "right_record_id"),
        {"sqlite_with_rowid": False},
    )

    left_record_id: str = Field(primary_key=True, max_length=32)
    right_record_id: str = Field(primary_key=True, max_length=32)
    party_type: str = Field(max_length=16)
    score: float
    by_rule: bool


class MatchStagePartition(SQLModel, table=True):
    """A partition of a partitioned full rebuild that finished scoring (issue 21): the run's
    token, which of how many partitions, a digest of what it read (the current cleansed
    versions, the models, the matching settings) and its blocking counts. Rows of a token the
    clustering step never consumed are stale: a new run clears them."""

    __tablename__ = "match_stage_partitions"

    token: str = Field(primary_key=True, max_length=32)
    part: int = Field(primary_key=True)
    partitions: int
    snapshot: str = Field(max_length=64)
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    finished_at: datetime


class MatchStagePair(SQLModel, table=True):
    """A pair one partition of a partitioned full rebuild scored, as the engine scored it
    (``score`` the unrounded probability, ``weak`` capped for want of evidence, ``rules`` the
    bits of the deterministic rules that matched it), until the clustering step joins them."""

    __tablename__ = "match_stage_pairs"
    __table_args__ = ({"sqlite_with_rowid": False},)

    token: str = Field(primary_key=True, max_length=32)
    part: int = Field(primary_key=True)
    left_record_id: str = Field(primary_key=True, max_length=32)
    right_record_id: str = Field(primary_key=True, max_length=32)
    party_type: str = Field(max_length=16)
    score: float
    by_rule: bool
    weak: bool
    rules: int


class TermFrequency(SQLModel, table=True):
    """How many current records of a party type carry a value of a compared field (the value as
    a hash: ``hub.tables.value_key``), hub-wide: the counts behind frequency-aware matching,
    kept by the incremental path so that it and a full rebuild weigh an agreement alike."""

    __tablename__ = "term_frequencies"
    __table_args__ = ({"sqlite_with_rowid": False},)

    party_type: str = Field(primary_key=True, max_length=16)
    field: str = Field(primary_key=True, max_length=16)
    value_key: str = Field(primary_key=True, max_length=32)
    count: int


class HubCursor(SQLModel, table=True):
    """How far an internal consumer of the outbox has read (``households``: the last
    ``golden_changes.seq`` whose golden records its households reflect)."""

    __tablename__ = "hub_cursors"

    name: str = Field(primary_key=True, max_length=64)
    value: int
