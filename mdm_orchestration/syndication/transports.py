"""Delivery adapters: a folder of batch files, an HTTP webhook, a table in a SQL database.

Each ``send`` delivers messages in order and either returns (all delivered) or raises
:class:`DeliveryError` saying how many were delivered before the failure, so the caller records
exactly those. Errors carry no customer data (an HTTP status or an exception class).

A failure is *permanent* when the target refused that one message and would refuse it again
(the delivery loop dead-letters it after ``dead_letter_after`` tries and goes on with the
other golden records); anything else is transient (retried with backoff, then the subscriber
is failing):

- webhook: HTTP 4xx is permanent except 408, 425 and 429 (try later) and 401, 403, 404, 405
  and 407 (the endpoint or its credentials refuse every message, not this one: dead-lettering
  would drain the whole queue into the dead letters); 5xx, redirects, timeouts, refused
  connections are transient;
- sql: an ``IntegrityError`` or ``DataError`` (a constraint, a value the column refuses) is
  permanent; the batch is then written one message per transaction, so that the refused
  message is known and the ones before it are delivered; every other error is transient;
- file: every error is transient (a full disk, a permission).
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from mdm_orchestration.config import (
    AmqpTarget,
    FileTarget,
    SqlTarget,
    Subscriber,
    WebhookTarget,
    expand_env,
    webhook_url_problem,
)
from mdm_orchestration.hub.store import private_dir
from mdm_orchestration.survivorship import formula_safe
from mdm_orchestration.syndication.messages import Message, message_json, subscribed_attributes


class DeliveryError(RuntimeError):
    """``delivered`` messages got through before the failure; ``permanent``: the target refused
    message ``delivered`` itself (see the module docstring); ``error_class`` (``HTTP`` or an
    exception class) and ``status`` (an HTTP status) classify it, never with customer data."""

    def __init__(
        self,
        message: str,
        delivered: int = 0,
        *,
        permanent: bool = False,
        error_class: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.permanent = permanent
        self.error_class = error_class
        self.status = status

    def after(self, delivered: int) -> DeliveryError:
        """The same failure, ``delivered`` messages into a batch."""
        return DeliveryError(
            str(self),
            delivered,
            permanent=self.permanent,
            error_class=self.error_class,
            status=self.status,
        )


#: HTTP 4xx answers that are not about the one message: try later, or the endpoint refuses all.
TRANSIENT_4XX = frozenset({408, 425, 429})
ENDPOINT_4XX = frozenset({401, 403, 404, 405, 407})


def http_failure(status: int) -> DeliveryError:
    """The failure an HTTP ``status`` outside 2xx stands for (permanent or not, see above)."""
    permanent = 400 <= status < 500 and status not in TRANSIENT_4XX | ENDPOINT_4XX
    return DeliveryError(
        f"webhook: HTTP {status}", permanent=permanent, error_class="HTTP", status=status
    )


class Transport(Protocol):
    def send(self, messages: Sequence[Message], batch_name: str) -> None: ...

    def close(self) -> None: ...


def _expand(value: str, where: str) -> str:
    """``${MDM_SECRET_...}`` expanded (nothing else: see ``config.golden.SECRET_PREFIX``)."""
    try:
        return expand_env(value)
    except ValueError as exc:
        raise DeliveryError(f"{where}: {exc}") from None


#: The message fields a CSV file subscriber's rows end with, after the attributes.
CSV_MESSAGE_FIELDS = (
    "changed",
    "source_keys",
    "household_id",
    "organisation_golden_id",
    "consents",
    "caused_by",
    "change_type",
)


class FileTransport:
    """One file per batch, written under a temporary name and renamed into place. The name
    comes from the batch (its outbox range), so a redelivered batch replaces its own file."""

    def __init__(self, name: str, sub: Subscriber, target: FileTarget, home: Path) -> None:
        folder = Path(_expand(target.folder, "file: folder")).expanduser()
        self.folder = folder if folder.is_absolute() else home / folder
        self.format = target.format
        self.name = name
        self.columns = [
            "event_id",
            "event_type",
            "golden_id",
            "version",
            "seq",
            "occurred_at",
            "party_type",
            "lifecycle",
            *subscribed_attributes(sub),
            "sources",
            "related",
            "reason",
            # The fields every message carries (lists and objects as JSON), as in JSON Lines.
            *CSV_MESSAGE_FIELDS,
        ]

    def send(self, messages: Sequence[Message], batch_name: str) -> None:
        if not messages:
            return
        try:
            private_dir(self.folder)  # 0700 where created; the batch itself is 0600 (mkstemp)
        except OSError as exc:
            raise DeliveryError(f"file: {type(exc).__name__}") from exc
        final = self.folder / f"{self.name}-{batch_name}.{self.format}"
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                if self.format == "jsonl":
                    for m in messages:
                        fh.write(message_json(m).decode())
                        fh.write("\n")
                else:
                    writer = csv.writer(fh)
                    writer.writerow(self.columns)
                    for m in messages:
                        row = m.as_dict()
                        row.update(m.attributes or {})
                        writer.writerow([formula_safe(row.get(c)) for c in self.columns])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise DeliveryError(f"file: {type(exc).__name__}") from exc

    def close(self) -> None:
        return None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: urllib would turn the POST into a body-less GET to
    another address (forwarding the headers) and report success although nothing arrived."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN201
        return None


class _Deadline:
    """One request's total time: connect, send and read together. Socket timeouts alone apply
    to each operation, so a server sending a byte a second would hold a delivery for ever; at
    the deadline a timer shuts the request's sockets down, which ends any blocked call."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.001, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # Already closed, or detached when TLS wrapped it (the wrapper is watched too).
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _deadline_connection(base: type[http.client.HTTPConnection], deadline: _Deadline) -> type:
    """``base`` whose sockets (the TCP one, then its TLS wrapper) the deadline can shut."""

    class Connection(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
            kwargs["timeout"] = deadline.remaining()
            super().__init__(*args, **kwargs)
            create = self._create_connection

            def watched(address: Any, timeout: Any, source: Any = None) -> socket.socket:  # noqa: ANN401
                sock = create(address, min(timeout, deadline.remaining()), source)
                deadline.watch(sock)
                return sock

            self._create_connection = watched

        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    return Connection


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_deadline_connection(http.client.HTTPConnection, self.deadline), req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _deadline_connection(http.client.HTTPSConnection, self.deadline),
            req,
            context=self._context,
        )


#: The most of a response body read (the hub needs only the status).
_MAX_RESPONSE_BYTES = 64 * 1024


class WebhookTransport:
    """One JSON POST per message, with the event id as ``Idempotency-Key``. Only a 2xx answer
    from the configured URL counts as delivered; a redirect (3xx) is a failure. Each request
    has ``timeout_seconds`` in all (connect, send and read), not per socket operation."""

    def __init__(self, target: WebhookTarget) -> None:
        self.url = _expand(target.url, "webhook: url")
        problem = webhook_url_problem(self.url)
        if problem:
            raise DeliveryError(f"webhook: url: {problem}")
        self.timeout = target.timeout_seconds
        self.headers = {k: _expand(v, f"webhook: header {k}") for k, v in target.headers.items()}

    def _post(self, request: urllib.request.Request) -> None:
        deadline = _Deadline(self.timeout)
        opener = urllib.request.build_opener(
            _RefuseRedirects, _DeadlineHTTPHandler(deadline), _DeadlineHTTPSHandler(deadline)
        )
        try:
            with opener.open(request, timeout=deadline.remaining()) as response:
                response.read(_MAX_RESPONSE_BYTES)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            raise http_failure(exc.code) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise DeliveryError(
                    f"webhook: TimeoutError (no answer within {self.timeout:g}s in all)"
                ) from None
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook: {type(reason).__name__}") from None
        finally:
            deadline.cancel()
        if deadline.expired:  # the answer was cut off at the deadline
            raise DeliveryError(
                f"webhook: TimeoutError (no answer within {self.timeout:g}s in all)"
            )
        if not 200 <= status < 300:
            raise http_failure(status)

    def send(self, messages: Sequence[Message], batch_name: str) -> None:
        for i, m in enumerate(messages):
            body = message_json(m)
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": m.event_id,
                    **self.headers,
                },
            )
            try:
                self._post(request)
            except DeliveryError as exc:
                raise exc.after(i) from None

    def close(self) -> None:
        return None


class SqlTransport:
    """A table keyed by golden id: upserts never replace a newer version; removals delete."""

    def __init__(self, sub: Subscriber, target: SqlTarget) -> None:
        from mdm_orchestration.hub.store import (
            private_sqlite_file,
            resolve_hub_url,
            sqlite_file_of,
        )

        url = resolve_hub_url(_expand(target.url, "sql: url"))
        database = sqlite_file_of(url)
        if database:
            try:
                private_sqlite_file(database)  # rows of customer data: 0600, like the hub
            except OSError as exc:
                raise DeliveryError(f"sql: {type(exc).__name__}") from None
        self.engine = sa.create_engine(url)
        self.attributes = subscribed_attributes(sub)
        metadata = sa.MetaData()
        self.table = sa.Table(
            target.table,
            metadata,
            sa.Column("golden_id", sa.String(16), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("event_id", sa.String(36), nullable=False),
            sa.Column("party_type", sa.String(16)),
            sa.Column("lifecycle", sa.String(32)),
            *[sa.Column(a, sa.Text) for a in self.attributes],
            sa.Column("updated_at", sa.String(40), nullable=False),
        )
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.SQLAlchemyError as exc:
            raise DeliveryError(f"sql: {type(exc).__name__}") from None

    def _upsert(self, conn: sa.Connection, m: Message) -> None:
        values: dict[str, Any] = {
            "golden_id": m.golden_id,
            "version": m.version,
            "event_id": m.event_id,
            "party_type": m.party_type,
            "lifecycle": m.lifecycle,
            "updated_at": m.occurred_at,
            **{
                a: None if (v := (m.attributes or {}).get(a)) is None else str(v)
                for a in self.attributes
            },
        }
        t = self.table
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            module = sqlite if dialect == "sqlite" else postgresql
            stmt = module.insert(t).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.golden_id],
                set_={k: stmt.excluded[k] for k in values if k != "golden_id"},
                where=stmt.excluded.version >= t.c.version,
            )
            conn.execute(stmt)
            return
        updated = conn.execute(
            t.update()
            .where(t.c.golden_id == m.golden_id, t.c.version <= m.version)
            .values(**values)
        )
        if (
            updated.rowcount == 0
            and conn.execute(sa.select(t.c.golden_id).where(t.c.golden_id == m.golden_id)).first()
            is None
        ):
            conn.execute(t.insert().values(**values))

    def _write(self, conn: sa.Connection, m: Message) -> None:
        if m.removes:
            conn.execute(
                self.table.delete().where(
                    self.table.c.golden_id == m.golden_id,
                    self.table.c.version <= m.version,
                )
            )
        else:
            self._upsert(conn, m)

    @staticmethod
    def _failure(exc: sa.exc.SQLAlchemyError, delivered: int) -> DeliveryError:
        name = type(exc).__name__
        return DeliveryError(
            f"sql: {name}",
            delivered,
            permanent=isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)),
            error_class=name,
        )

    def send(self, messages: Sequence[Message], batch_name: str) -> None:
        try:
            with self.engine.begin() as conn:  # the whole batch, or none of it
                for m in messages:
                    self._write(conn, m)
            return
        except sa.exc.SQLAlchemyError as exc:
            failure = self._failure(exc, 0)
        if not failure.permanent or len(messages) == 1:
            raise failure
        # A message the table refuses: one transaction each, to deliver those before it and
        # name it (its index is ``delivered``).
        for i, m in enumerate(messages):
            try:
                with self.engine.begin() as conn:
                    self._write(conn, m)
            except sa.exc.SQLAlchemyError as exc:
                raise self._failure(exc, i) from None

    def close(self) -> None:
        self.engine.dispose()


def make_transport(name: str, sub: Subscriber, home: Path) -> Transport:
    target = sub.target()
    if isinstance(target, FileTarget):
        return FileTransport(name, sub, target, home)
    if isinstance(target, WebhookTarget):
        return WebhookTransport(target)
    if isinstance(target, AmqpTarget):
        from mdm_orchestration.syndication.amqp import AmqpTransport  # imports this module

        return AmqpTransport(target)
    return SqlTransport(sub, target)
