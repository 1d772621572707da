"""Connecting to the hub database and keeping its schema current.

The same code runs on SQLite (the embedded default, nothing to start) and PostgreSQL.
Migrations are applied automatically the first time a process connects.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from mdm_orchestration.settings import settings

#: Key for ``pg_advisory_xact_lock`` while migrating (two processes starting at once).
_MIGRATION_LOCK_KEY = 0x6D646D01

_migrated: set[str] = set()
_migrated_lock = threading.Lock()


def mdm_home() -> Path:
    """The local folder of the embedded default (``MDM_HOME``, else ``./.mdm``)."""
    return settings().home


#: Files holding customer data (the SQLite hub and its -wal/-shm, exports, subscriber batches,
#: the erasure ledger) and the folders the hub creates for them: the owner's alone.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
#: Files SQLite keeps beside a database (they hold its pages too).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def make_secret_file(path: Path, nbytes: int) -> None:
    """Write ``nbytes`` random bytes, hex, to ``path`` unless it exists: 0600 in a 0700 folder,
    written whole under a temporary name and linked into place, so a process racing this one
    reads either no file or the complete secret, and the first one made wins."""
    import secrets

    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        os.write(fd, (secrets.token_hex(nbytes) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()


def private_dir(path: Path) -> Path:
    """``path`` as a folder, each part created here made 0700 (whatever the umask); folders
    that already exist are left as they are (they may be the operator's)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR_MODE)
            os.chmod(folder, PRIVATE_DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(str(path))
    return path


def private_sqlite_file(database: str | os.PathLike[str]) -> None:
    """Make a SQLite database file 0600 before SQLite opens it: created empty with that mode
    when missing (SQLite would create it 0644, and gives its -wal and -shm the database's
    mode), else tightened with its side files when this user owns them."""
    path = Path(database)
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    me = os.getuid() if hasattr(os, "getuid") else None
    for f in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            st = f.stat()
            if me in (None, st.st_uid) and st.st_mode & 0o077:
                os.chmod(f, PRIVATE_FILE_MODE)


def sqlite_file_of(url: str) -> str | None:
    """The file of a ``sqlite://`` URL (``None``: not SQLite, in memory or a ``file:`` URI)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def default_hub_url() -> str:
    return f"sqlite:///{mdm_home() / 'hub.db'}"


def resolve_hub_url(url: str | None = None) -> str:
    """The hub URL: the argument, else ``MDM_HUB_URL``, else SQLite under :func:`mdm_home`.

    ``postgresql://`` is read as psycopg2 (the driver we ship), not SQLAlchemy 2.1's psycopg 3.
    """
    chosen = url or settings().mdm_hub_url or default_hub_url()
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg2://" + chosen.split("://", 1)[1]
    return chosen


def masked_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "mdm_orchestration.hub:migrations")
    return cfg


def schema_head() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def chunks(items: Iterable[str], size: int = 500) -> list[list[str]]:
    """``items`` (sorted) in lists of at most ``size``: the bound parameters of one ``IN``."""
    ordered = sorted(items)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def in_chunks(column: Any, values: Iterable[str], size: int = 500) -> list[Any]:  # noqa: ANN401
    """``column IN (...)`` conditions, at most ``size`` values each (SQLite's parameter limit;
    short lists also keep PostgreSQL's plans on the index)."""
    return [column.in_(chunk) for chunk in chunks(values, size)]


def as_utc(stamp: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite returns naive ones)."""
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: committed on success, rolled back on any error."""
    with engine.connect() as conn:
        conn = conn.execution_options(mdm_write=True)
        with conn.begin():
            yield conn


#: Session-level ``pg_advisory_lock`` key held for a whole cleansing, matching or
#: consolidation run.
RECONSOLIDATION_LOCK_KEY = 0x6D646D10


@contextmanager
def reconsolidation_lock(engine: Engine) -> Iterator[None]:
    """One cleansing, matching or consolidation run at a time, besides the Dagster pool: a
    second one started outside it (two processes, a pool turned off) waits here, then finds
    the work done, instead of failing on the first one's rows or on its commit (RELIABILITY
    row 11). PostgreSQL: a session advisory lock. SQLite: an exclusive ``flock`` on a file
    beside the database (SQLite has one writer anyway, but a run that planned while another
    wrote would find its plan stale at write time and fail); each run still checks at write
    time that nothing committed since it read."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": RECONSOLIDATION_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RECONSOLIDATION_LOCK_KEY})
                conn.commit()
        return
    with _sqlite_run_lock(engine):
        yield


#: Per SQLite database file: a lock for this process's threads (re-entered by the thread
#: holding it) and how deep it holds the file lock.
_sqlite_run_locks: dict[str, tuple[threading.RLock, list[int]]] = {}


@contextmanager
def _sqlite_run_lock(engine: Engine) -> Iterator[None]:
    """An exclusive ``flock`` on ``<database>-reconsolidation.lock`` (0600, empty) held while
    the block runs, behind a lock of this process's threads (a thread that holds it already
    goes on: a run nested in a run, as tests stage a race, must not wait for itself). None
    for an in-memory database, without ``fcntl`` or where the file cannot be opened (the
    write-time checks remain)."""
    database = sqlite_file_of(engine.url.render_as_string(hide_password=False))
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        fcntl = None  # type: ignore[assignment]
    if not database or fcntl is None:
        yield
        return
    key = os.path.abspath(database)
    with _migrated_lock:
        rlock, depth = _sqlite_run_locks.setdefault(key, (threading.RLock(), [0]))
    with rlock:
        fd = None
        if depth[0] == 0:
            with contextlib.suppress(OSError):
                fd = os.open(
                    f"{key}-reconsolidation.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE
                )
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the file lock


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest version. Safe to call from many processes at once."""
    cfg = _alembic_config()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        if MigrationContext.configure(conn).get_current_revision() == schema_head():
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL lets readers (the UI, `mdm status`) work while a run writes; busy_timeout makes a
    # second writer wait instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    # The default 2 MB page cache makes index inserts on hashed ids miss on every page once the
    # hub passes a few hundred thousand rows; 256 MB keeps the hot index pages in memory.
    cur.execute("PRAGMA cache_size=-262144")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


#: 19 digits in a row: perhaps an integer orjson would read as a float (beyond 64 bits).
_LONG_DIGITS = re.compile(r"\d{19}")


def _json_loads(text: str | bytes) -> Any:  # noqa: ANN401
    """A JSON column's value: orjson (several times faster than ``json.loads``, the same
    values); ``json.loads`` for what orjson refuses (``NaN``, ``1e400``, a lone surrogate) and
    for text with a run of 19 digits (orjson reads an integer beyond 64 bits as a float)."""
    if isinstance(text, bytes):
        text = text.decode()
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


#: How the hub's engines read a JSON column, for code that reads one as text and decodes it
#: elsewhere (cleansing decodes the stored raw rows in its worker processes).
json_loads = _json_loads


def create_hub_engine(url: str | None = None, *, auto_migrate: bool = True) -> Engine:
    """An engine on the hub, with the schema migrated to the newest version on first use."""
    resolved = resolve_hub_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_file_of(resolved)
        if database:
            private_sqlite_file(database)
        engine = create_engine(
            resolved, connect_args={"timeout": 60}, json_deserializer=_json_loads
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # type: ignore[no-untyped-def]
            # Writers take the write lock at BEGIN, so two writers queue (busy_timeout) instead
            # of failing when a read lock is upgraded; readers stay deferred (WAL).
            write = conn.get_execution_options().get("mdm_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        # pysqlite's own transaction handling must be off for the BEGIN above to be ours.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None

    else:
        engine = create_engine(resolved, pool_pre_ping=True, json_deserializer=_json_loads)
    if auto_migrate:
        key = engine.url.render_as_string(hide_password=False)
        with _migrated_lock:
            if key not in _migrated:
                migrate(engine)
                _migrated.add(key)
    return engine
