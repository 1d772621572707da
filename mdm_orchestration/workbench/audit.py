"""The audit trail: every workbench action, who did it, when, on what and why.

Rows hold ids (review items, golden ids, source record ids, user names) and verdicts, and the
reason a steward typed; never a customer's values. An action is audited in the transaction
that carries it out where the action is the workbench's own; where a domain face commits on its
own (a label, an override), the audit row follows it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from mdm_orchestration.hub.store import as_utc, write_transaction
from mdm_orchestration.hub.tables import WORKBENCH_AUDIT, utcnow

SIGN_IN, SIGN_IN_FAILED, SIGN_OUT = "sign_in", "sign_in_failed", "sign_out"
DECIDE, MERGE, SPLIT = "review_decision", "merge", "split"
UNDO_SPLIT = "undo_split"
PIN, UNPIN, PIN_REVIEWED = "attribute_pin", "attribute_unpin", "override_reviewed"
USER_CREATED, USER_DISABLED, USER_ENABLED = "user_created", "user_disabled", "user_enabled"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    reason: str | None
    details: dict[str, Any]


def write_audit(
    conn: Connection,
    actor: str,
    action: str,
    target: str | None = None,
    reason: str | None = None,
    **details: Any,  # noqa: ANN401
) -> None:
    """One audit row in the caller's transaction."""
    conn.execute(
        insert(WORKBENCH_AUDIT).values(
            at=utcnow(),
            actor=actor[:64],
            action=action,
            target=None if target is None else target[:200],
            reason=reason,
            details=details,
        )
    )


def audit(
    engine: Engine,
    actor: str,
    action: str,
    target: str | None = None,
    reason: str | None = None,
    **details: Any,  # noqa: ANN401
) -> None:
    """One audit row, in a transaction of its own."""
    with write_transaction(engine) as conn:
        write_audit(conn, actor, action, target, reason, **details)


def audit_trail(
    conn: Connection,
    *,
    limit: int = 200,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
) -> list[AuditEntry]:
    """The newest entries first."""
    query = select(WORKBENCH_AUDIT)
    if actor:
        query = query.where(WORKBENCH_AUDIT.c.actor == actor)
    if action:
        query = query.where(WORKBENCH_AUDIT.c.action == action)
    if target:
        query = query.where(WORKBENCH_AUDIT.c.target == target)
    rows = conn.execute(query.order_by(WORKBENCH_AUDIT.c.id.desc()).limit(limit)).mappings()
    return [_entry(r) for r in rows]


def audit_entry(conn: Connection, entry_id: int) -> AuditEntry | None:
    row = conn.execute(select(WORKBENCH_AUDIT).where(WORKBENCH_AUDIT.c.id == entry_id)).mappings()
    found = row.first()
    return None if found is None else _entry(found)


def _entry(r: Any) -> AuditEntry:  # noqa: ANN401 - a row mapping
    return AuditEntry(
        id=r["id"],
        at=as_utc(r["at"]),
        actor=r["actor"],
        action=r["action"],
        target=r["target"],
        reason=r["reason"],
        details=dict(r["details"] or {}),
    )
