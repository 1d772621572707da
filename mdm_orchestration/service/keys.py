"""API keys: created and revoked by ``mdm api-key``, checked on every request.

A key is ``mdm_<id>_<secret>``: the id is public (it names the key in ``mdm api-key list``
and in access logs), the secret is 256 random bits from :mod:`secrets`. The hub stores only
the SHA-256 of the whole key. A fast hash is enough here because the secret is not chosen by a
person: with 2^256 possible secrets a stolen hash cannot be searched backwards, and a slow
password hash (bcrypt, scrypt, argon2) would add tens of milliseconds to every request to guard
against a guessing attack that cannot succeed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, or_, select, update

from mdm_orchestration.config import HubConfig
from mdm_orchestration.config.sources import WrittenBy
from mdm_orchestration.hub.store import write_transaction
from mdm_orchestration.hub.tables import API_KEYS, utcnow

READ, MATCH = "read", "match"
WRITE_PREFIX = "write:"
KEY_PATTERN = re.compile(r"^mdm_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class ApiKeyError(ValueError):
    """A key cannot be created or revoked as asked (the message says why)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name and scopes."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def key_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: list[str], config: HubConfig) -> list[str]:
    """The scopes, checked: ``read``, ``match`` or ``write:<source>`` for a source written
    through the API."""
    if not scopes:
        raise ApiKeyError("give at least one --scope")
    api_sources = sorted(n for n, s in config.sources.items() if s.written_by is WrittenBy.api)
    out = []
    for scope in scopes:
        if scope in (READ, MATCH):
            out.append(scope)
        elif scope.startswith(WRITE_PREFIX):
            source = scope[len(WRITE_PREFIX) :]
            if source not in api_sources:
                raise ApiKeyError(
                    f"scope {scope!r}: {source!r} is not a source written through the API "
                    f"(sources.yaml written_by: api: {', '.join(api_sources) or 'none'})"
                )
            out.append(scope)
        else:
            raise ApiKeyError(f"scope {scope!r}: use read, match or write:<source>")
    return sorted(set(out))


def create_api_key(
    engine: Engine, name: str, scopes: list[str], config: HubConfig, by: str
) -> tuple[str, str]:
    """A new key: ``(key id, the key)``. The key is shown once; the hub keeps its hash."""
    if not name.strip() or len(name) > 128:
        raise ApiKeyError("--name must be 1 to 128 characters")
    checked = check_scopes(scopes, config)
    key_id = secrets.token_hex(6)
    token = f"mdm_{key_id}_{secrets.token_urlsafe(32)}"
    assert KEY_PATTERN.match(token)
    with write_transaction(engine) as conn:
        conn.execute(
            insert(API_KEYS).values(
                id=key_id,
                name=name.strip(),
                key_hash=key_hash(token),
                scopes=checked,
                created_by=by[:128],
                created_at=utcnow(),
            )
        )
    return key_id, token


def revoke_api_key(engine: Engine, ref: str) -> list[str]:
    """Revoke the key with this id (or every active key of this name): the ids revoked."""
    with write_transaction(engine) as conn:
        ids = list(
            conn.execute(
                select(API_KEYS.c.id).where(
                    or_(API_KEYS.c.id == ref, API_KEYS.c.name == ref),
                    API_KEYS.c.revoked_at.is_(None),
                )
            ).scalars()
        )
        if ids:
            conn.execute(update(API_KEYS).where(API_KEYS.c.id.in_(ids)).values(revoked_at=utcnow()))
    return ids


def list_api_keys(engine: Engine) -> list[dict[str, Any]]:
    """Every key: id, name, scopes, when created and by whom, when revoked. Never a hash."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                API_KEYS.c.id,
                API_KEYS.c.name,
                API_KEYS.c.scopes,
                API_KEYS.c.created_by,
                API_KEYS.c.created_at,
                API_KEYS.c.revoked_at,
            ).order_by(API_KEYS.c.created_at, API_KEYS.c.id)
        ).mappings()
        return [
            {
                **dict(r),
                "created_at": _iso(r["created_at"]),
                "revoked_at": _iso(r["revoked_at"]),
            }
            for r in rows
        ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The active key ``token`` is, or None (unknown, malformed or revoked)."""
    if not KEY_PATTERN.match(token):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(API_KEYS.c.id, API_KEYS.c.name, API_KEYS.c.scopes, API_KEYS.c.revoked_at).where(
                API_KEYS.c.key_hash == key_hash(token)
            )
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.id, row.name, frozenset(row.scopes))
