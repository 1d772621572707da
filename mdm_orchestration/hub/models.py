"""The hub's tables as SQLModel classes.

The schema is owned by the Alembic migrations in ``hub/migrations``; these classes describe the
current head so that code can query it. A test checks that migrating an empty database gives
exactly these tables and columns.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, LargeBinary, Text, text
from sqlmodel import Field, SQLModel


class ExtractStatus(StrEnum):
    loaded = "loaded"
    rejected = "rejected"
    duplicate = "duplicate"


class Extract(SQLModel, table=True):
    """The ingest ledger: one row per attempt to ingest a landed file.

    Only one *loaded* extract may exist per ``(source, content_hash)``: the same bytes landing
    twice (under any name) are ingested once; the later drop is recorded as ``duplicate``.
    Rejected files are recorded too, but do not block a fixed re-drop.
    """

    __tablename__ = "extracts"
    __table_args__ = (
        Index(
            "uq_extracts_loaded_content",
            "source",
            "content_hash",
            unique=True,
            sqlite_where=text("status = 'loaded'"),
            postgresql_where=text("status = 'loaded'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=40, index=True)
    file_name: str = Field(max_length=512)
    content_hash: str = Field(max_length=64)
    size_bytes: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16, index=True)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    rows_landed: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    unmapped_columns: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    duplicate_of: int | None = Field(default=None, foreign_key="extracts.id")
    run_id: str | None = Field(default=None, max_length=64)
    started_at: datetime
    finished_at: datetime | None = None
    #: When cleansing finished this extract's rows (``None``: not yet, or to be redone).
    cleansed_at: datetime | None = None


class SourceRecordVersion(SQLModel, table=True):
    """One data row of one loaded extract, verbatim: the raw values keyed by column name."""

    __tablename__ = "source_record_versions"
    __table_args__ = (Index("ix_srv_record", "source_record_id"),)

    extract_id: int = Field(foreign_key="extracts.id", primary_key=True)
    row_number: int = Field(primary_key=True)
    source_record_id: str = Field(max_length=32)
    source: str = Field(max_length=40)
    source_key: str = Field(max_length=256)
    raw: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    raw_hash: str = Field(max_length=32)
    source_updated_at: datetime | None = None
    loaded_at: datetime


class SourceRecord(SQLModel, table=True):
    """A source record ``(source, source_key)`` and a pointer to its current version.

    The current version is the one with the latest source updated-at; on a tie (or without an
    updated-at column) the one loaded last. So an old extract landing late does not overwrite
    newer data.
    """

    __tablename__ = "source_records"
    __table_args__ = (Index("uq_source_records_key", "source", "source_key", unique=True),)

    id: str = Field(primary_key=True, max_length=32)
    source: str = Field(max_length=40)
    source_key: str = Field(max_length=256)
    current_extract_id: int = Field(foreign_key="extracts.id")
    current_row_number: int
    source_updated_at: datetime | None = None
    first_loaded_at: datetime
    last_loaded_at: datetime


class QuarantineRow(SQLModel, table=True):
    """A row that could not go on, with where and why. Never the offending value itself."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_extract", "extract_id", "row_number"),)

    id: int | None = Field(default=None, primary_key=True)
    extract_id: int = Field(foreign_key="extracts.id")
    row_number: int
    stage: str = Field(max_length=16, index=True)
    field: str | None = Field(default=None, max_length=128)
    reason: str = Field(max_length=64)
    detail: str | None = Field(default=None, sa_column=Column(Text))
    quarantined_at: datetime


class CleansedRecord(SQLModel, table=True):
    """One source-record version in the canonical customer model, with its quality verdict.

    Display values keep the source's accents; ``*_key`` and ``*_phonetic`` columns are folded
    match keys. ``*_valid`` is ``None`` where there was no value to judge. ``quality_flags`` lists
    the rules the record failed (``required_missing:<field>`` per missing required field).
    """

    __tablename__ = "cleansed_records"
    __table_args__ = (
        Index("ix_cleansed_source_record", "source_record_id"),
        Index("ix_cleansed_source", "source"),
    )

    extract_id: int = Field(foreign_key="extracts.id", primary_key=True)
    row_number: int = Field(primary_key=True)
    source_record_id: str = Field(max_length=32)
    source: str = Field(max_length=40)
    source_key: str = Field(max_length=256)
    source_updated_at: datetime | None = None
    party_type: str = Field(max_length=16)
    lifecycle: str | None = Field(default=None, max_length=32)
    title: str | None = Field(default=None, sa_column=Column(Text))
    given_name: str | None = Field(default=None, sa_column=Column(Text))
    middle_name: str | None = Field(default=None, sa_column=Column(Text))
    family_name: str | None = Field(default=None, sa_column=Column(Text))
    suffix: str | None = Field(default=None, sa_column=Column(Text))
    full_name: str | None = Field(default=None, sa_column=Column(Text))
    given_key: str | None = Field(default=None, sa_column=Column(Text))
    family_key: str | None = Field(default=None, sa_column=Column(Text))
    given_phonetic: str | None = Field(default=None, max_length=16)
    family_phonetic: str | None = Field(default=None, max_length=16)
    company_name: str | None = Field(default=None, sa_column=Column(Text))
    legal_form: str | None = Field(default=None, max_length=32)
    company_key: str | None = Field(default=None, sa_column=Column(Text))
    job_title: str | None = Field(default=None, sa_column=Column(Text))
    organisation_record_id: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, sa_column=Column(Text))
    email_key: str | None = Field(default=None, sa_column=Column(Text))
    email_valid: bool | None = Field(default=None, sa_column=Column(Boolean))
    phone: str | None = Field(default=None, sa_column=Column(Text))
    phone_valid: bool | None = Field(default=None, sa_column=Column(Boolean))
    street_number: str | None = Field(default=None, sa_column=Column(Text))
    street_name: str | None = Field(default=None, sa_column=Column(Text))
    unit: str | None = Field(default=None, sa_column=Column(Text))
    street: str | None = Field(default=None, sa_column=Column(Text))
    city: str | None = Field(default=None, sa_column=Column(Text))
    region: str | None = Field(default=None, sa_column=Column(Text))
    postcode: str | None = Field(default=None, sa_column=Column(Text))
    country: str | None = Field(default=None, max_length=2)
    address_key: str | None = Field(default=None, sa_column=Column(Text))
    birth_date: date | None = None
    national_id: str | None = Field(default=None, sa_column=Column(Text))
    national_id_type: str | None = Field(default=None, max_length=32)
    national_id_valid: bool | None = Field(default=None, sa_column=Column(Boolean))
    consents: dict[str, bool] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    quality_score: float
    quality_flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cleansed_at: datetime


class _RecordPair(SQLModel):
    """Columns of the tables about a pair of source records, stored with ``left < right`` and
    unique per pair (each table adds its ``uq_<table>_pair`` index)."""

    id: int | None = Field(default=None, primary_key=True)
    left_record_id: str = Field(max_length=32)
    right_record_id: str = Field(max_length=32)


def _pair_index(table: str) -> Index:
    return Index(f"uq_{table}_pair", "left_record_id", "right_record_id", unique=True)


class TrainingLabel(_RecordPair, table=True):
    """A steward's verdict on a pair of source records; the latest wins."""

    __tablename__ = "training_labels"
    __table_args__ = (_pair_index("training_labels"),)

    party_type: str = Field(max_length=16)
    label: str = Field(max_length=16)  # match | distinct | unsure
    labelled_by: str = Field(max_length=128)
    labelled_at: datetime


class MatchOverride(_RecordPair, table=True):
    """A steward's must-link (merge) or cannot-link (split) between two source records."""

    __tablename__ = "match_overrides"
    __table_args__ = (_pair_index("match_overrides"),)

    kind: str = Field(max_length=16)  # must_link | cannot_link
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_by: str = Field(max_length=128)
    created_at: datetime


class MatchModelRow(SQLModel, table=True):
    """A trained model per party type: dedupe settings written by the hub, with the digest of
    the labels it was trained on (a change of labels means a retrain)."""

    __tablename__ = "match_models"
    __table_args__ = (Index("ix_match_models_party", "party_type", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    party_type: str = Field(max_length=16)
    labels_digest: str = Field(max_length=64)
    threshold: float
    settings: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    settings_sha256: str = Field(max_length=64)
    metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime


class MatchCluster(SQLModel, table=True):
    """Which cluster each current source record belongs to, with dedupe's confidence."""

    __tablename__ = "match_clusters"
    __table_args__ = (
        Index("ix_match_clusters_cluster", "cluster_id"),
        Index("ix_match_clusters_org", "organisation_cluster_id"),
    )

    record_id: str = Field(primary_key=True, max_length=32)
    party_type: str = Field(max_length=16)
    cluster_id: str = Field(max_length=32)
    confidence: float
    organisation_cluster_id: str | None = Field(default=None, max_length=32)
    clustered_at: datetime
    #: The cleansed version that was clustered (a newer current version means: match again).
    extract_id: int | None = None
    row_number: int | None = None


class ReviewItem(_RecordPair, table=True):
    """A candidate pair the model was unsure of, waiting for (or given) a steward's verdict."""

    __tablename__ = "review_queue"
    __table_args__ = (
        _pair_index("review_queue"),
        # The pair index finds a record on the left; this one on the right (incremental runs).
        Index("ix_review_queue_right", "right_record_id"),
    )

    party_type: str = Field(max_length=16)
    score: float
    status: str = Field(max_length=16, index=True)  # pending | done
    created_at: datetime


def source_record_id(source: str, source_key: str) -> str:
    """Deterministic id of a source record: the same ``(source, key)`` always gives the same id."""
    return hashlib.sha256(f"{source}\x1f{source_key}".encode()).hexdigest()[:32]


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
        Index("ix_golden_records_org", "organisation_golden_id"),
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


class HubCursor(SQLModel, table=True):
    """How far an internal consumer of the outbox has read (``households``: the last
    ``golden_changes.seq`` whose golden records its households reflect)."""

    __tablename__ = "hub_cursors"

    name: str = Field(primary_key=True, max_length=64)
    value: int
