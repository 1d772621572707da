"""The tables of steward corrections that survivorship and matching apply: attribute overrides
(a value, or a source record, pinned for one attribute group of a golden record), their
history, and the must-links / cannot-links a steward removed (an undone split)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel


class AttributeOverride(SQLModel, table=True):
    """A steward's pin of one attribute group of a golden record: ``kind`` ``value`` (the
    group's fields as given in ``pinned``) or ``record`` (the group as ``record_id`` holds it).
    ``baseline`` is what the pin was made over (the pinned record's values, or the values
    survivorship chose): when that changes, the pin is retired and ``review_status`` is
    ``pending`` until a steward has looked at it. ``applied_*`` say which consolidation first
    wrote the golden record with it."""

    __tablename__ = "attribute_overrides"
    __table_args__ = (
        Index("ix_attribute_overrides_golden", "golden_id", "status"),
        Index("ix_attribute_overrides_review", "review_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    golden_id: str = Field(max_length=16)
    attribute_group: str = Field(max_length=24)
    kind: str = Field(max_length=8)  # value | record
    record_id: str | None = Field(default=None, max_length=32)
    pinned: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    baseline: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=16)  # active | retired | removed
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=64)
    created_at: datetime
    applied_at: datetime | None = None
    applied_version: int | None = None
    ended_at: datetime | None = None
    ended_by: str | None = Field(default=None, max_length=64)
    end_reason: str | None = Field(default=None, sa_column=Column(Text))
    review_status: str | None = Field(default=None, max_length=16)  # pending | done


class AttributeOverrideEvent(SQLModel, table=True):
    """The history of an override: pinned, applied, retired, removed, replaced, reviewed; who
    (a steward, or ``consolidation``), when, why, and the golden record's version."""

    __tablename__ = "attribute_override_history"
    __table_args__ = (Index("ix_attribute_override_history_override", "override_id"),)

    id: int | None = Field(default=None, primary_key=True)
    override_id: int
    golden_id: str = Field(max_length=16)
    action: str = Field(max_length=16)
    at: datetime
    actor: str = Field(max_length=64)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    version: int | None = None
    run_id: str | None = Field(default=None, max_length=64)


class MatchOverrideRemoval(SQLModel, table=True):
    """A must-link or cannot-link a steward took back (a split undone), with the link as it was
    and who removed it, when and why. A removal newer than the last matching run makes the next
    one a full rebuild, as a new link does."""

    __tablename__ = "match_override_removals"
    __table_args__ = (Index("ix_match_override_removals_at", "removed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    left_record_id: str = Field(max_length=32)
    right_record_id: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_by: str = Field(max_length=128)
    created_at: datetime
    removed_by: str = Field(max_length=128)
    removed_at: datetime
    removed_reason: str | None = Field(default=None, sa_column=Column(Text))
