"""The steward workbench: pages under ``/workbench`` in the service's web application (review
with explanations, the golden record's whole story, merge and split corrections, undoing a
split, attribute overrides), its local users and roles, and the audit trail of every action. No Dagster in here: what stewards decide
lands in the hub (labels, overrides) and the next reconsolidation applies it.

The face: :func:`workbench_router` (mounted by ``service.create_app``), the user functions
behind ``mdm user``, and the audit trail.
"""

from mdm_orchestration.workbench.app import create_workbench_app
from mdm_orchestration.workbench.audit import (
    DECIDE,
    MERGE,
    PIN,
    PIN_REVIEWED,
    SIGN_IN,
    SIGN_IN_FAILED,
    SIGN_OUT,
    SPLIT,
    UNDO_SPLIT,
    UNPIN,
    USER_CREATED,
    USER_DISABLED,
    USER_ENABLED,
    AuditEntry,
    audit,
    audit_trail,
)
from mdm_orchestration.workbench.pages import PREFIX, STATIC, TEMPLATES, workbench_router
from mdm_orchestration.workbench.users import (
    ADMIN,
    ROLES,
    STEWARD,
    VIEWER,
    User,
    UserError,
    authenticate,
    create_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
    set_role,
)

__all__ = [
    "ADMIN",
    "DECIDE",
    "MERGE",
    "PIN",
    "PIN_REVIEWED",
    "PREFIX",
    "ROLES",
    "SIGN_IN",
    "SIGN_IN_FAILED",
    "SIGN_OUT",
    "SPLIT",
    "STATIC",
    "STEWARD",
    "TEMPLATES",
    "UNDO_SPLIT",
    "UNPIN",
    "USER_CREATED",
    "USER_DISABLED",
    "USER_ENABLED",
    "VIEWER",
    "AuditEntry",
    "User",
    "UserError",
    "audit",
    "audit_trail",
    "authenticate",
    "create_workbench_app",
    "create_user",
    "disable_user",
    "enable_user",
    "list_users",
    "set_password",
    "set_role",
    "workbench_router",
]
