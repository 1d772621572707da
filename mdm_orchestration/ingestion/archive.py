"""The archive: where ingested files go when they leave the landing zone, and how long they stay.

With ``ingest.archive.enabled`` in ``sources.yaml``, a file that was loaded (or found to be a
duplicate of bytes already loaded) moves out of the landing zone into
``<archive>/<source folder>/<sha256 of its bytes><suffix>``: named by content, never by the
landed name (which can carry customer data), folders 0700 and files 0600. The archive folder is
``ingest.archive.folder`` (relative to ``MDM_HOME``), by default ``<MDM_HOME>/archive``; it
must be outside the landing root, so nothing there is ever scanned or ingested again (and a
copy put back into landing is a duplicate of bytes the ledger knows). Each archived file's
modification time is the time it was archived: :func:`purge_expired` deletes it
``retention_days`` later (the landing sensor and the ingestion asset both call it).

Erasure (:mod:`mdm_orchestration.syndication.erasure`) calls :func:`scrub_erased`: every archived
file, and every complete file still in the landing zone, that holds a row of an erased source
record is rewritten without those rows (atomically; other rows byte for byte) or removed when no
data row is left. A file archived after an erasure is scrubbed as it arrives (a re-drop of an
old extract). What was rewritten is reported by path hash (:class:`ScrubbedFile`), never by name.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, select

from mdm_orchestration.config import HubConfig, SourceConfig
from mdm_orchestration.config.sources import FileFormat
from mdm_orchestration.hub.models import ExtractStatus, source_record_id
from mdm_orchestration.hub.store import PRIVATE_FILE_MODE, private_dir
from mdm_orchestration.hub.tables import ERASED, EXTRACTS
from mdm_orchestration.ingestion.landing import (
    manifest_path,
    read_manifest,
    scan_landing,
)
from mdm_orchestration.settings import settings

ARCHIVE_FOLDER = "archive"
#: Suffixes kept on an archived file's name (a format marker, never a customer value).
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
#: Temporary files of an interrupted rewrite older than this are removed by the purge.
STALE_TEMPORARY_SECONDS = 24 * 3600


class ArchiveError(ValueError):
    """The archive is misconfigured (inside the landing root)."""


@dataclass(frozen=True)
class ScrubbedFile:
    """One file an erasure rewrote or removed. ``path_sha256`` hashes ``<where>:<path relative
    to the archive or landing root>``: a record without the name."""

    where: str  # "archive" | "landing"
    path_sha256: str
    action: str  # "rewritten" | "removed" | "archived" (a landed file moved out, scrubbed)
    rows_removed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "path_sha256": self.path_sha256,
            "action": self.action,
            "rows_removed": self.rows_removed,
        }


def path_hash(where: str, relative: str) -> str:
    return hashlib.sha256(f"{where}:{relative}".encode("utf-8", "surrogateescape")).hexdigest()


def archive_root(config: HubConfig, home: Path | None = None) -> Path:
    """The archive folder: ``ingest.archive.folder`` (relative to ``home``/``MDM_HOME``), else
    ``<MDM_HOME>/archive``."""
    base = Path(home) if home is not None else settings().home
    folder = config.ingest.archive.folder
    path = Path(folder).expanduser() if folder else Path(ARCHIVE_FOLDER)
    return (path if path.is_absolute() else base / path).resolve()


def _checked_root(config: HubConfig, landing_root: Path, home: Path | None) -> Path:
    root = archive_root(config, home)
    landing = landing_root.resolve()
    if root == landing or root.is_relative_to(landing):
        raise ArchiveError(
            "sources.yaml: ingest.archive.folder must be outside the landing root "
            "(archived files would be scanned again)"
        )
    return root


def _suffix(name: str) -> str:
    suffix = Path(name).suffix
    return suffix.lower() if _SUFFIX.match(suffix) else ""


def archived_path(root: Path, folder: str, content_hash: str, name: str) -> Path:
    """Where the file with these bytes, landed as ``name`` in ``folder``, is archived."""
    return root / folder / f"{content_hash}{_suffix(name)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(folder: Path, name: str, mode: int) -> tuple[Path, IO[bytes]]:
    """A new file beside ``name`` in ``folder`` (a dotfile, so the landing scan ignores it)."""
    temp = folder / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)
    return temp, os.fdopen(fd, "wb")


def _move(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest`` (a rename; across file systems a fsynced copy, then the
    original is removed)."""
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temp, out = _temporary(dest.parent, dest.name, PRIVATE_FILE_MODE)
        try:
            with out, src.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, dest)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        src.unlink()
    os.chmod(dest, PRIVATE_FILE_MODE)
    _fsync_dir(dest.parent)


def erased_ids(engine: Engine) -> set[str]:
    """Every erased source record id the hub's tombstone holds."""
    with engine.connect() as conn:
        return set(conn.execute(select(ERASED.c.record_id)).scalars())


def archive_landed(
    engine: Engine,
    config: HubConfig,
    path: Path,
    landing_root: Path,
    content_hash: str,
    *,
    home: Path | None = None,
) -> bool:
    """Move an ingested landed file (its bytes hashing to ``content_hash``) into the archive,
    scrubbed of every erased source record, and drop its manifest. True when it left the
    landing zone. Nothing happens when archiving is off, or when the file changed since it was
    ingested (new bytes are the sensor's to see)."""
    if not config.ingest.archive.enabled:
        return False
    root = _checked_root(config, landing_root, home)
    real = path.resolve()
    landing = landing_root.resolve()
    if not real.is_relative_to(landing) or not real.is_file():
        return False
    relative = real.relative_to(landing)
    source = config.source_for_folder(relative.parts[0]) if len(relative.parts) > 1 else None
    if source is None or _sha256(real) != content_hash:
        return False
    private_dir(root / source.landing_folder)
    dest = archived_path(root, source.landing_folder, content_hash, real.name)
    if dest.exists():
        real.unlink()  # the same bytes are archived already (and scrubbed, if need be)
        _fsync_dir(real.parent)
    else:
        _move(real, dest)
        now = time.time_ns()
        os.utime(dest, ns=(now, now))  # the retention clock starts now
        erased = erased_ids(engine)
        if erased:
            scrub_file(dest, source, erased, keep_mtime=True)
    manifest_path(real).unlink(missing_ok=True)
    if path != real and path.is_symlink():
        path.unlink(missing_ok=True)
    return True


def purge_expired(config: HubConfig, *, home: Path | None = None, now: float | None = None) -> int:
    """Delete archived files older than ``retention_days`` (and temporary files of an
    interrupted rewrite older than a day): how many went. Nothing when archiving is off."""
    archive = config.ingest.archive
    if not archive.enabled:
        return 0
    root = archive_root(config, home)
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    cutoff = now - archive.retention_days * 86400
    stale = now - STALE_TEMPORARY_SECONDS
    removed = 0
    for source in config.sources.values():
        folder = root / source.landing_folder
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                limit = stale if entry.name.startswith(".") else cutoff
                if entry.stat(follow_symlinks=False).st_mtime < limit:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    return removed


# --- rewriting a file without some source records -------------------------------------------


def _key_text(value: Any) -> str | None:  # noqa: ANN401 - a JSON or Parquet value
    """A key value as the readers give it to the loader (then stripped), or ``None``."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value).strip()


class _Lines:
    """A text file's lines, remembering those handed out since the last :meth:`take`."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh
        self._taken: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._fh.readline()
        if not line:
            raise StopIteration
        self._taken.append(line)
        return line

    def take(self) -> str:
        text, self._taken = "".join(self._taken), []
        return text


def _csv_encoding(source: SourceConfig) -> str:
    encoding = source.encoding.lower().replace("_", "-")
    return "utf-8" if encoding in ("utf-8", "utf8", "utf-8-sig") else source.encoding


def _scrub_csv(
    path: Path, source: SourceConfig, drop: Collection[str], out: IO[bytes]
) -> tuple[int, int]:
    """Copy ``path`` to ``out`` without the records of ``drop``: (rows removed, rows kept).
    Each kept record is copied as it was (quoting, line endings, a byte-order mark)."""
    encoding = _csv_encoding(source)
    removed = kept = 0
    with path.open("r", encoding=encoding, errors="surrogateescape", newline="") as fh:
        lines = _Lines(fh)
        reader = csv.reader(lines, delimiter=source.delimiter, strict=False)
        try:
            header = next(reader)
        except StopIteration:
            return 0, 0
        columns = [c.strip().lstrip("\ufeff").strip() for c in header]
        out.write(lines.take().encode(encoding, "surrogateescape"))
        index = columns.index(source.key_column) if source.key_column in columns else None
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error:
                fields = None
            raw = lines.take()
            key = (
                fields[index].strip()
                if fields and index is not None and index < len(fields)
                else None
            )
            if key and source_record_id(source.name, key) in drop:
                removed += 1
                continue
            if fields and any(f.strip() for f in fields):
                kept += 1
            out.write(raw.encode(encoding, "surrogateescape"))
    return removed, kept


def _json_key(obj: dict[str, Any], column: str) -> str | None:
    if column in obj:
        return _key_text(obj[column])
    node: Any = obj
    for part in column.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return _key_text(node)


def _scrub_jsonl(
    path: Path, source: SourceConfig, drop: Collection[str], out: IO[bytes]
) -> tuple[int, int]:
    removed = kept = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh):
            line = raw[3:] if number == 0 and raw.startswith(b"\xef\xbb\xbf") else raw
            key = None
            if line.strip():
                try:
                    obj = json.loads(line.decode(source.encoding, "surrogateescape"))
                except (ValueError, RecursionError):
                    obj = None
                if isinstance(obj, dict):
                    key = _json_key(obj, source.key_column)
                if key and source_record_id(source.name, key) in drop:
                    removed += 1
                    continue
                kept += 1
            out.write(raw)
    return removed, kept


def _scrub_parquet(
    path: Path, source: SourceConfig, drop: Collection[str], out: IO[bytes]
) -> tuple[int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if source.key_column not in table.column_names:
        return 0, table.num_rows
    keys = table.column(source.key_column).to_pylist()
    mask = []
    for value in keys:
        key = _key_text(value)
        mask.append(not (key and source_record_id(source.name, key) in drop))
    kept = sum(mask)
    removed = len(mask) - kept
    if removed:
        pq.write_table(table.filter(pa.array(mask, type=pa.bool_())), out)
    return removed, kept


_SCRUBBERS = {
    FileFormat.csv: _scrub_csv,
    FileFormat.jsonl: _scrub_jsonl,
    FileFormat.parquet: _scrub_parquet,
}


def scrub_file(
    path: Path,
    source: SourceConfig,
    record_ids: Collection[str],
    *,
    keep_mtime: bool = False,
    mode: int | None = None,
) -> tuple[str, int] | None:
    """Rewrite ``path`` without the rows of ``record_ids`` (source record ids of ``source``),
    atomically (a temporary file beside it, fsynced, renamed over it); removed when no data row
    is left. ``(action, rows removed)``, ``("kept", 0)`` when it holds none of them, ``None``
    when it cannot be parsed (left as it is)."""
    file_mode = PRIVATE_FILE_MODE if mode is None else mode
    before = path.stat()
    temp, out = _temporary(path.parent, path.name, file_mode)
    try:
        with out:
            try:
                removed, kept = _SCRUBBERS[source.format](path, source, record_ids, out)
            except Exception:  # noqa: BLE001 - an unreadable file is left as it is
                temp.unlink(missing_ok=True)
                return None
            out.flush()
            os.fsync(out.fileno())
        if not removed:
            temp.unlink()
            return "kept", 0
        if not kept:
            temp.unlink()
            path.unlink()
            _fsync_dir(path.parent)
            return "removed", removed
        if keep_mtime:
            os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(temp, path)
        _fsync_dir(path.parent)
        return "rewritten", removed
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_manifest(path: Path, sha256: str, mode: int) -> None:
    """A manifest for the rewritten ``path`` (the hub vouches for the bytes it wrote)."""
    target = manifest_path(path)
    temp, out = _temporary(path.parent, target.name, mode)
    with out:
        out.write((json.dumps({"sha256": sha256}) + "\n").encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)


def _scrub_landed(
    path: Path, source: SourceConfig, record_ids: Collection[str]
) -> tuple[str, int] | None:
    """A file still in the landing zone, rewritten in place. Its manifest (if any) goes first
    and is written anew for the new bytes after, so the file is never seen with a manifest
    that does not vouch for it."""
    manifest = manifest_path(path)
    had_manifest = manifest.exists()
    mode = path.stat().st_mode & 0o777
    probe = scrub_file(path, source, record_ids, mode=mode) if not had_manifest else None
    if not had_manifest:
        return probe
    manifest_mode = manifest.stat().st_mode & 0o777
    try:
        declared = read_manifest(path)
    except ValueError:
        declared = None  # an unusable manifest is not rewritten
    held = manifest.with_name(f".{manifest.name}.{uuid.uuid4().hex[:8]}.tmp")
    manifest.rename(held)
    try:
        result = scrub_file(path, source, record_ids, mode=mode)
    except BaseException:
        held.rename(manifest)
        raise
    if result is None or result[0] == "kept":
        held.rename(manifest)
    elif result[0] == "removed":
        held.unlink()
    else:
        held.unlink()
        if declared is not None:
            _write_manifest(path, _sha256(path), manifest_mode)
    return result


def scrub_erased(
    engine: Engine,
    config: HubConfig,
    record_ids: Collection[str],
    *,
    landing_root: Path | None = None,
    home: Path | None = None,
    sources: Collection[str] | None = None,
    now_ns: int | None = None,
) -> list[ScrubbedFile]:
    """Rewrite (or remove) every archived file and every complete landed file of ``sources``
    (source names; default all) that holds a row of ``record_ids``.

    Landed files: when archiving is on and the hub has already loaded those bytes, the file is
    archived (moved out, scrubbed); otherwise it is rewritten in place, so a file not ingested
    yet arrives without the person. Files still being written (temporary names, a source's
    missing manifest, modified within ``settle_seconds``) are left: ingesting them quarantines
    the erased rows as ``erased_subject``, and archiving them scrubs the file.
    """
    ids = set(record_ids)
    if not ids:
        return []
    chosen = [s for s in config.sources.values() if sources is None or s.name in sources]
    out: list[ScrubbedFile] = []
    landing = (landing_root or settings().landing_dir).resolve()
    root = archive_root(config, home)
    if root.is_dir():
        for source in chosen:
            folder = root / source.landing_folder
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or not path.is_file() or path.is_symlink():
                    continue
                result = scrub_file(path, source, ids, keep_mtime=True)
                if result is not None and result[0] != "kept":
                    relative = f"{source.landing_folder}/{path.name}"
                    out.append(ScrubbedFile("archive", path_hash("archive", relative), *result))
    if not landing.is_dir():
        return out
    now_ns = time.time_ns() if now_ns is None else now_ns
    settle_ns = int(config.ingest.settle_seconds * 1e9)
    by_manifest = {s.landing_folder for s in chosen if s.complete_when.value == "manifest"}
    files = scan_landing(landing, [s.landing_folder for s in chosen], manifest_folders=by_manifest)
    loaded = (
        _loaded_hashes(engine, [s.name for s in chosen]) if config.ingest.archive.enabled else {}
    )
    for f in files:
        source = config.source_for_folder(f.key.split("/", 1)[0])
        if source is None:
            continue
        if not f.complete_by_manifest and now_ns - f.mtime_ns < settle_ns:
            continue  # maybe still being written
        where = path_hash("landing", f.key)
        sha = _sha256(f.path) if loaded else ""
        if sha and sha in loaded.get(source.name, set()):
            holds = _holds(f.path, source, ids)
            if holds and archive_landed(engine, config, f.path, landing, sha, home=home):
                out.append(ScrubbedFile("landing", where, "archived", holds))
            continue
        result = _scrub_landed(f.path, source, ids)
        if result is not None and result[0] != "kept":
            out.append(ScrubbedFile("landing", where, *result))
    return out


def _holds(path: Path, source: SourceConfig, ids: Collection[str]) -> int:
    """How many rows of ``ids`` the file holds (0 when it cannot be parsed)."""
    with open(os.devnull, "wb") as sink:
        try:
            removed, _kept = _SCRUBBERS[source.format](path, source, ids, sink)
        except Exception:  # noqa: BLE001
            return 0
    return removed


def _loaded_hashes(engine: Engine, sources: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for source, sha in conn.execute(
            select(EXTRACTS.c.source, EXTRACTS.c.content_hash).where(
                EXTRACTS.c.source.in_(sources),
                EXTRACTS.c.status == ExtractStatus.loaded.value,
            )
        ):
            out.setdefault(source, set()).add(sha)
    return out
