"""The tables of the steward workbench: its local users and the audit trail of its actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel


class WorkbenchUser(SQLModel, table=True):
    """A person who signs in to the workbench: a role (viewer, steward, admin), an argon2 hash
    of the password (never the password) and whether the account may sign in."""

    __tablename__ = "workbench_users"

    name: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    enabled: bool
    created_by: str = Field(max_length=128)
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None


class WorkbenchAudit(SQLModel, table=True):
    """One workbench action: who, when, what (an action and its target: a review item, a golden
    id, source record ids) and why (the reason a steward gave). ``details`` holds ids and
    verdicts, never a customer's values."""

    __tablename__ = "workbench_audit"
    __table_args__ = (
        Index("ix_workbench_audit_at", "at"),
        Index("ix_workbench_audit_actor", "actor"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    actor: str = Field(max_length=64)
    action: str = Field(max_length=40)
    target: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
