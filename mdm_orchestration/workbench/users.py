"""The workbench's local users: a name, a role, an argon2id hash of the password, enabled or not.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults: RFC 9106's second recommended
profile, 64 MiB and 3 passes), never stored or logged. Signing in checks the hash with the same
work whether the user exists or not, so the answer's timing does not tell names apart; a hash
made with older parameters is upgraded at the next sign-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Engine, insert, select, update

from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import WORKBENCH_USERS, utcnow

VIEWER, STEWARD, ADMIN = "viewer", "steward", "admin"
#: Each role may do what the roles before it may.
ROLES = (VIEWER, STEWARD, ADMIN)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
#: Checked against when the user is unknown or disabled, so that the work done is the same.
_DUMMY_HASH = _hasher.hash("not a password of anyone's")


class UserError(ValueError):
    """A user cannot be created or changed as asked (the message says why)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    enabled: bool

    def may(self, role: str) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def may_see_values(self) -> bool:
        """Stewards and admins see emails, phones and ids; viewers see them masked."""
        return self.may(STEWARD)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise UserError(
            "a user name is 1 to 64 letters, digits or . _ @ - (starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"the role must be one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password must have at most {MAX_PASSWORD} characters")
    return password


def create_user(engine: Engine, name: str, role: str, password: str, by: str) -> User:
    """A new enabled user (an existing name is refused: use :func:`set_password` / enable)."""
    check_name(name)
    check_role(role)
    check_password(password)
    hashed = _hasher.hash(password)
    now = utcnow()
    with write_transaction(engine) as conn:
        if conn.execute(select(WORKBENCH_USERS.c.name).where(_named(name))).first():
            raise UserError(f"a user {name!r} exists already")
        conn.execute(
            insert(WORKBENCH_USERS).values(
                name=name,
                role=role,
                password_hash=hashed,
                enabled=True,
                created_by=by[:128],
                created_at=now,
                updated_at=now,
            )
        )
    return User(name, role, True)


def _named(name: str) -> Any:  # noqa: ANN401 - a SQL condition
    return WORKBENCH_USERS.c.name == name


def _update(engine: Engine, name: str, **values: Any) -> None:  # noqa: ANN401
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(WORKBENCH_USERS).where(_named(name)).values(updated_at=utcnow(), **values)
        ).rowcount
    if not done:
        raise UserError(f"no user {name!r}")


def disable_user(engine: Engine, name: str) -> None:
    """The user can no longer sign in; a session already open ends at its next request."""
    _update(engine, name, enabled=False)


def enable_user(engine: Engine, name: str) -> None:
    _update(engine, name, enabled=True)


def set_role(engine: Engine, name: str, role: str) -> None:
    _update(engine, name, role=check_role(role))


def set_password(engine: Engine, name: str, password: str) -> None:
    _update(engine, name, password_hash=_hasher.hash(check_password(password)))


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(
        select(WORKBENCH_USERS.c.name, WORKBENCH_USERS.c.role, WORKBENCH_USERS.c.enabled).where(
            _named(name)
        )
    ).first()
    return None if row is None else User(row.name, row.role, bool(row.enabled))


def list_users(engine: Engine) -> list[dict[str, Any]]:
    """Every user: name, role, enabled, when created and by whom, last sign-in. Never a hash."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                WORKBENCH_USERS.c.name,
                WORKBENCH_USERS.c.role,
                WORKBENCH_USERS.c.enabled,
                WORKBENCH_USERS.c.created_by,
                WORKBENCH_USERS.c.created_at,
                WORKBENCH_USERS.c.last_login_at,
            ).order_by(WORKBENCH_USERS.c.name)
        ).mappings()
        return [
            {
                **dict(r),
                "enabled": bool(r["enabled"]),
                "created_at": _iso(r["created_at"]),
                "last_login_at": _iso(r["last_login_at"]),
            }
            for r in rows
        ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The enabled user with this name and password, or None (the same work either way)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                WORKBENCH_USERS.c.name,
                WORKBENCH_USERS.c.role,
                WORKBENCH_USERS.c.enabled,
                WORKBENCH_USERS.c.password_hash,
            ).where(_named(name))
        ).first()
    usable = row is not None and bool(row.enabled) and len(password) <= MAX_PASSWORD
    hashed = row.password_hash if usable else _DUMMY_HASH
    try:
        _hasher.verify(hashed, password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not usable:
        return None
    values: dict[str, Any] = {"last_login_at": utcnow()}
    if _hasher.check_needs_rehash(hashed):
        values["password_hash"] = _hasher.hash(password)
    with write_transaction(engine) as conn:
        conn.execute(update(WORKBENCH_USERS).where(_named(name)).values(**values))
    return User(row.name, row.role, True)
