"""The landing zone: which files have landed, and which of them are complete.

Files land as ``<landing root>/<source folder>/<file>``. A file is a candidate unless it is a
dotfile, has a temporary name (``.tmp``, ``.part``, ...), is not a regular file, or resolves
outside the landing root. A candidate is *complete* once its size and modification time have
not changed between two looks, or once it has not been modified for ``settle_seconds``
(writers are asked to write elsewhere and rename, which makes a file complete at once).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TEMPORARY_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".filepart", ".swp")
INVALID_KEY_PARTS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing zone. ``key`` is ``<folder>/<file>``: the dynamic partition key."""

    key: str
    path: Path
    size: int
    mtime_ns: int


def scan_landing(root: Path, folders: list[str]) -> list[LandedFile]:
    """Candidate files under the given source folders, oldest first (then by name)."""
    found: list[LandedFile] = []
    real_root = root.resolve()
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        with os.scandir(base) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES):
                    continue
                if any(bad in name for bad in INVALID_KEY_PARTS):
                    continue
                path = Path(entry.path)
                real = path.resolve()
                if not real.is_relative_to(real_root) or not real.is_file():
                    continue  # a symlink out of the landing zone, a folder, a socket...
                stat = real.stat()
                found.append(LandedFile(f"{folder}/{name}", path, stat.st_size, stat.st_mtime_ns))
    found.sort(key=lambda f: (f.mtime_ns, f.key))
    return found


@dataclass
class LandingCursor:
    """What the landing sensor remembers between ticks (serialised as the sensor's cursor).

    ``pending``: files seen but not yet complete, with the (size, mtime) last seen.
    ``done``: files already handed on (or skipped), with the (size, mtime, sha256) handled, so a
    file is considered again only when its bytes may have changed.
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
    present = {f.key for f in files}
    for key in list(cursor.pending):
        if key not in present:
            del cursor.pending[key]
    for key in list(cursor.done):
        if key not in present:
            del cursor.done[key]
    settle_ns = int(settle_seconds * 1e9)
    for f in files:
        done = cursor.done.get(f.key)
        if done is not None and done[0] == f.size and done[1] == f.mtime_ns:
            continue
        seen = cursor.pending.get(f.key)
        stable = seen is not None and seen == [f.size, f.mtime_ns]
        settled = now_ns - f.mtime_ns >= settle_ns
        if stable or settled:
            cursor.pending.pop(f.key, None)
            ready.append(f)
        else:
            cursor.pending[f.key] = [f.size, f.mtime_ns]
    return ready
