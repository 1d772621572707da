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
    website: str | None = Field(default=None, sa_column=Column(Text))
    #: registrable domain of the website, else of a business (not free-mail) email address
    web_domain: str | None = Field(default=None, max_length=253)
    #: the digits of a phone number that failed validation (still evidence when two agree)
    phone_digits: str | None = Field(default=None, max_length=32)
    legal_form_family: str | None = Field(default=None, max_length=32)
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
        Index("ix_review_queue_priority", "status", "priority"),
    )

    party_type: str = Field(max_length=16)
    score: float
    status: str = Field(max_length=16, index=True)  # pending | done
    created_at: datetime
    #: how much deciding it changes: uncertainty x records of the two clusters
    priority: float | None = None
    records_affected: int | None = None
    left_cluster_id: str | None = Field(default=None, max_length=32)
    right_cluster_id: str | None = Field(default=None, max_length=32)
    #: digest of the two records' versions when the item was raised (decided items come back
    #: only when it changes)
    records_digest: str | None = Field(default=None, max_length=64)


def source_record_id(source: str, source_key: str) -> str:
    """Deterministic id of a source record: the same ``(source, key)`` always gives the same id."""
    return hashlib.sha256(f"{source}\x1f{source_key}".encode()).hexdigest()[:32]


# The tables of mastering, syndication, erasure and the incremental path live in their own
# module (imported here so that every table is registered whenever the models are).
from mdm_orchestration.hub.mastering_models import (  # noqa: E402
    BlockingKey,
    ConsolidationQueue,
    Delivery,
    ErasedRecord,
    Erasure,
    GoldenChange,
    GoldenHistory,
    GoldenRecord,
    GoldenRun,
    GoldenXref,
    HouseholdMember,
    HouseholdRow,
    HubCursor,
    MatchPair,
    MatchRun,
    MatchStagePair,
    MatchStagePartition,
    SubscriberState,
    TermFrequency,
)

__all__ = [
    "BlockingKey",
    "CleansedRecord",
    "ConsolidationQueue",
    "Delivery",
    "ErasedRecord",
    "Erasure",
    "Extract",
    "ExtractStatus",
    "GoldenChange",
    "GoldenHistory",
    "GoldenRecord",
    "GoldenRun",
    "GoldenXref",
    "HouseholdMember",
    "HouseholdRow",
    "HubCursor",
    "MatchCluster",
    "MatchModelRow",
    "MatchOverride",
    "MatchPair",
    "MatchStagePair",
    "MatchStagePartition",
    "TermFrequency",
    "MatchRun",
    "QuarantineRow",
    "ReviewItem",
    "SourceRecord",
    "SourceRecordVersion",
    "SubscriberState",
    "TrainingLabel",
    "source_record_id",
]


class LandingSkip(SQLModel, table=True):
    """A file the landing scan skipped, and why (a symlink out of the landing root, a folder
    link, a name with control characters, a file at the landing root...), as of the last scan.

    ``path`` is relative to the landing root, with unprintable characters escaped. It is for
    operators (``mdm status``) and never goes into Dagster, which sees counts and reasons only.
    """

    __tablename__ = "landing_skips"

    path: str = Field(primary_key=True, max_length=1024)
    reason: str = Field(max_length=40)
    first_seen_at: datetime


class LandedFileKey(SQLModel, table=True):
    """The file behind an opaque ``landed_files`` partition key (``<source>:<sha256 prefix>``).

    Dagster sees only the key; the file's name (which may carry customer data) stays here.
    """

    __tablename__ = "landed_file_keys"

    partition_key: str = Field(primary_key=True, max_length=64)
    source: str = Field(max_length=40)
    file_name: str = Field(max_length=512)
    content_hash: str = Field(max_length=64)
    registered_at: datetime


# The HTTP service's tables (API keys, records written through the API).
from mdm_orchestration.hub.service_models import ApiKey, ApiWrite  # noqa: E402

__all__ += ["ApiKey", "ApiWrite"]

from sqlalchemy import UniqueConstraint  # noqa: E402


class DeadLetter(SQLModel, table=True):
    """An outbox event a subscriber refused permanently (``state`` ``dead``), or one held behind
    such an event because it concerns the same golden record (``held``): order per golden id.

    No customer values: the event's ids, how often it was tried and the class of the last
    error (``HTTP`` and a status, or an exception class). ``seq`` is empty for a snapshot row.
    ``queued`` (``mdm syndicate dlq retry``) goes out with the next delivery; ``delivered``,
    ``dropped`` (with ``reason`` and ``resolved_by``) and ``superseded`` (an erasure of the
    golden record was delivered) are resolved. See ``syndication.delivery``.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("subscriber", "event_id", name="uq_dead_letters_subscriber_event"),
        Index("ix_dead_letters_subscriber_state", "subscriber", "state"),
        Index("ix_dead_letters_subscriber_golden", "subscriber", "golden_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber: str = Field(max_length=40)
    event_id: str = Field(max_length=36)
    seq: int | None = Field(default=None, sa_type=BigInteger)
    golden_id: str = Field(max_length=16)
    version: int
    state: str = Field(max_length=16)  # dead held queued delivered dropped superseded
    attempts: int
    error_class: str | None = Field(default=None, max_length=40)
    error_status: int | None = None
    dead_lettered_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(default=None, max_length=80)
    reason: str | None = Field(default=None, sa_column=Column(Text))


__all__ += ["DeadLetter"]

# --- the steward workbench (issue 19) ---------------------------------------------------------
from mdm_orchestration.hub.workbench_models import WorkbenchAudit, WorkbenchUser  # noqa: E402

__all__ += ["WorkbenchAudit", "WorkbenchUser"]

# --- steward corrections survivorship and matching apply (issue 19) ----------------------------
from mdm_orchestration.hub.override_models import (  # noqa: E402
    AttributeOverride,
    AttributeOverrideEvent,
    MatchOverrideRemoval,
)

__all__ += ["AttributeOverride", "AttributeOverrideEvent", "MatchOverrideRemoval"]
