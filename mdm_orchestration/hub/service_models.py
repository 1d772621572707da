"""The tables of the HTTP service: its API keys and the records written through it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class ApiKey(SQLModel, table=True):
    """A client's key: its public id, a name, its scopes and the SHA-256 of its secret.

    The secret itself is never stored: it is 256 random bits, so a plain SHA-256 of it cannot be
    searched backwards (a slow password hash guards low-entropy secrets that people choose, and
    would cost every request tens of milliseconds for nothing here).
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index("uq_api_keys_hash", "key_hash", unique=True),)

    id: str = Field(primary_key=True, max_length=16)
    name: str = Field(max_length=128)
    key_hash: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=128)
    created_at: datetime
    revoked_at: datetime | None = None


class ApiWrite(SQLModel, table=True):
    """One record written through ``POST /v1/sources/{source}/records``: the one-row extract it
    became, who wrote it, and the answer given, so that a retry with the same
    ``Idempotency-Key`` gets the same answer and writes nothing."""

    __tablename__ = "api_writes"
    __table_args__ = (
        Index("uq_api_writes_idempotency", "api_key_id", "idempotency_key_hash", unique=True),
        Index("ix_api_writes_extract", "extract_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    extract_id: int = Field(foreign_key="extracts.id")
    source: str = Field(max_length=40)
    source_record_id: str = Field(max_length=32)
    api_key_id: str = Field(max_length=16)
    idempotency_key_hash: str | None = Field(default=None, max_length=64)
    request_hash: str = Field(max_length=64)
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime
