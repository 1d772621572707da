"""The landing zone: which files have landed, and which of them are complete.

Files land as ``<landing root>/<source folder>/<file>``. A file is a candidate unless it is a
dotfile, has a temporary name (``.tmp``, ``.part``, ...), is not a regular file, or resolves
outside the landing root. A candidate is *complete* once its size and modification time have
not changed between two looks, or once it has not been modified for ``settle_seconds``
(writers are asked to write elsewhere and rename, which makes a file complete at once).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TEMPORARY_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".filepart", ".swp")
INVALID_KEY_PARTS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing zone. ``key`` is ``<folder>/<file>``, for the hub and the CLI; Dagster
    gets an opaque partition key instead (:func:`~mdm_orchestration.ingestion.keys.partition_key`)."""

    key: str
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SkippedFile:
    """A file the scan did not hand on, and why. ``path`` is relative to the landing root with
    unprintable characters escaped: for the hub and ``mdm status``, never for Dagster."""

    path: str
    reason: str


#: Why a landed entry is skipped (stable codes; dotfiles and temporary names are skipped
#: silently, since they are files still being written).
OUTSIDE_ROOT = "outside_landing_root"
DIRECTORY_LINK = "directory_link"
NOT_A_FILE = "not_a_regular_file"
BAD_NAME = "invalid_name"
AT_ROOT = "at_landing_root"
UNKNOWN_FOLDER = "unknown_folder"


def printable(name: str) -> str:
    """``name`` with control characters, lone surrogates (undecodable bytes) and backslashes
    escaped, so it can be stored and printed as it is."""
    out = []
    for ch in name:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def _skip_reason(path: Path, real_root: Path) -> str | None:
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return OUTSIDE_ROOT
    if not real.is_relative_to(real_root):
        return OUTSIDE_ROOT
    if path.is_symlink() and real.is_dir():
        return DIRECTORY_LINK
    if not real.is_file():
        return NOT_A_FILE
    return None


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def scan_landing(
    root: Path, folders: list[str], skipped: list[SkippedFile] | None = None
) -> list[LandedFile]:
    """Candidate files under the given source folders, oldest first (then by name).

    Entries that are not candidates (other than dotfiles and temporary names) are appended to
    ``skipped`` with their reason when it is given: files at the landing root, folders that are
    no source's, links out of the root or to a folder, names with control characters.
    """
    found: list[LandedFile] = []
    real_root = root.resolve()
    skips: list[SkippedFile] = []
    if skipped is not None and root.is_dir():
        with os.scandir(root) as entries:
            for entry in entries:
                if _ignored(entry.name) or entry.name in folders:
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                reason = UNKNOWN_FOLDER if is_dir else (_skip_reason(Path(entry.path), real_root))
                skips.append(SkippedFile(printable(entry.name), reason or AT_ROOT))
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        with os.scandir(base) as entries:
            for entry in entries:
                name = entry.name
                if _ignored(name):
                    continue
                key = f"{folder}/{name}"
                if any(bad in name for bad in INVALID_KEY_PARTS):
                    skips.append(SkippedFile(printable(key), BAD_NAME))
                    continue
                path = Path(entry.path)
                reason = _skip_reason(path, real_root)
                if reason is not None:
                    skips.append(SkippedFile(printable(key), reason))
                    continue
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:  # bytes that are not UTF-8 in the name
                    skips.append(SkippedFile(printable(key), BAD_NAME))
                    continue
                stat = path.resolve().stat()
                found.append(LandedFile(key, path, stat.st_size, stat.st_mtime_ns))
    found.sort(key=lambda f: (f.mtime_ns, f.key))
    if skipped is not None:
        skipped.extend(sorted(skips, key=lambda s: s.path))
    return found


def cursor_key(file_key: str) -> str:
    """What the sensor's cursor (kept in Dagster's storage) calls a file: a hash of its key, since
    a file name can carry customer data."""
    return hashlib.sha256(file_key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass
class LandingCursor:
    """What the landing sensor remembers between ticks (serialised as the sensor's cursor).

    ``pending``: files seen but not yet complete, with the (size, mtime) last seen.
    ``done``: files already handed on (or skipped), with the (size, mtime, sha256) handled, so a
    file is considered again only when its bytes may have changed.
    Both are keyed by :func:`cursor_key`, never by the file's name.
    """

    pending: dict[str, list[int]] = field(default_factory=dict)
    done: dict[str, list[int | str]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(pending=data.get("pending", {}), done=data.get("done", {}))

    def to_json(self) -> str:
        return json.dumps({"pending": self.pending, "done": self.done}, sort_keys=True)


def complete_files(
    files: list[LandedFile], cursor: LandingCursor, now_ns: int, settle_seconds: float
) -> list[LandedFile]:
    """Files that are complete and new (or changed) since they were last handed on.

    Updates ``cursor.pending`` in place; the caller records handled files in ``cursor.done``.
    Files that disappeared are forgotten.
    """
    ready: list[LandedFile] = []
    present = {cursor_key(f.key) for f in files}
    for key in list(cursor.pending):
        if key not in present:
            del cursor.pending[key]
    for key in list(cursor.done):
        if key not in present:
            del cursor.done[key]
    settle_ns = int(settle_seconds * 1e9)
    for f in files:
        ck = cursor_key(f.key)
        done = cursor.done.get(ck)
        if done is not None and done[0] == f.size and done[1] == f.mtime_ns:
            continue
        seen = cursor.pending.get(ck)
        stable = seen is not None and seen == [f.size, f.mtime_ns]
        settled = now_ns - f.mtime_ns >= settle_ns
        if stable or settled:
            cursor.pending.pop(ck, None)
            ready.append(f)
        else:
            cursor.pending[ck] = [f.size, f.mtime_ns]
    return ready
