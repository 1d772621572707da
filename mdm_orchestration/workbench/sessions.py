"""Signed session cookies, CSRF tokens and sign-in throttling.

A session is a cookie signed with itsdangerous (HMAC-SHA1 over a key derived from the secret,
with a timestamp): the user's name, a CSRF token and when it was issued. It is HttpOnly,
SameSite=Lax, limited to ``/workbench`` and Secure when the request came over HTTPS. The
cookie carries no role: each request reads the user's role and enabled flag from the hub, so
``mdm user disable`` ends a session at its next request.

The signing secret lives outside the hub database, like the model-signing key: the file
``<MDM_HOME>/workbench.key`` (created on first use, 0600 in a 0700 folder) or a path given to
the workbench, so that whoever can write the hub cannot forge a session.

Not done with starlette's ``SessionMiddleware``: that is a middleware of the whole application
(the API's requests would carry and parse it too); a cookie read by the workbench's own
dependencies keeps the API untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from mdm_orchestration.hub.store import make_secret_file

COOKIE = "mdm_workbench"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: A session lasts a working day.
MAX_AGE_SECONDS = 8 * 3600
KEY_BYTES = 32


def session_key(path: Path) -> bytes:
    """The signing secret kept in ``path`` (made on first use: 32 random bytes, hex, 0600)."""
    with contextlib.suppress(FileNotFoundError):
        return _read_key(path)
    make_secret_file(path, KEY_BYTES)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="ascii") as fh:
        if os.name == "posix" and os.fstat(fh.fileno()).st_mode & 0o077:
            raise PermissionError(
                f"{path}: the workbench's session key is open to other users: whoever reads it "
                "can sign in as anyone. Make it the owner's alone (chmod 600), or delete it (a "
                "new one is made; every session ends)"
            )
        key = bytes.fromhex(fh.read().strip())
    if len(key) < KEY_BYTES:
        raise ValueError(f"{path}: the session key must hold at least {KEY_BYTES} bytes (hex)")
    return key


@dataclass(frozen=True)
class Session:
    user: str | None
    csrf: str
    issued: float


class SessionCodec:
    """Sessions to and from their cookie value."""

    def __init__(self, key: bytes, max_age: int = MAX_AGE_SECONDS) -> None:
        self._signer = URLSafeTimedSerializer(key, salt="mdm-workbench-session")
        self.max_age = max_age

    def dump(self, session: Session) -> str:
        return self._signer.dumps({"u": session.user, "c": session.csrf, "i": session.issued})

    def load(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data: Any = self._signer.loads(value, max_age=self.max_age)
        except (BadSignature, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        user = data.get("u")
        return Session(user if isinstance(user, str) else None, data["c"], float(data["i"]))


def new_session(user: str | None) -> Session:
    """A fresh session (and CSRF token): made at sign-in, so a token seen before is useless."""
    return Session(user, secrets.token_urlsafe(32), time.time())


def csrf_ok(session: Session | None, given: str | None) -> bool:
    return bool(session and given) and secrets.compare_digest(session.csrf, given or "")


@dataclass
class LoginThrottle:
    """Repeated failed sign-ins, per user name and per client address: after ``allowed``
    failures within ``window`` seconds, further attempts are refused for ``lockout`` seconds
    (doubling with each further failure, up to ``max_lockout``). In this process only: one
    ``mdm serve`` is one limit."""

    allowed: int = 5
    window: float = 15 * 60
    lockout: float = 30
    max_lockout: float = 15 * 60
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, name: str, client: str) -> tuple[str, str]:
        return f"user:{name.lower()}", f"addr:{client}"

    def wait(self, name: str, client: str, now: float | None = None) -> float:
        """Seconds until a sign-in may be tried again (0: now)."""
        now = time.monotonic() if now is None else now
        longest = 0.0
        with self._lock:
            for key in self._keys(name, client):
                recent = [t for t in self._failures.get(key, []) if now - t < self.window]
                self._failures[key] = recent
                over = len(recent) - self.allowed
                if over >= 0:
                    hold = min(self.max_lockout, self.lockout * 2**over)
                    longest = max(longest, recent[-1] + hold - now)
        return max(0.0, longest)

    def failed(self, name: str, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in self._keys(name, client):
                self._failures.setdefault(key, []).append(now)
            if len(self._failures) > 10_000:  # forget the oldest keys, bounded memory
                for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[:5_000]:
                    del self._failures[key]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{name.lower()}", None)
