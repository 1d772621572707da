"""The landing zone: which files have landed, and which of them are complete.

Files land as ``<landing root>/<source folder>/<file>``. A file is a candidate unless it is a
dotfile, has a temporary name (``.tmp``, ``.part``, ...), is not a regular file, or resolves
outside the landing root. A candidate is *complete* once its size and modification time have
not changed between two looks, or once it has not been modified for ``settle_seconds``
(writers are asked to write elsewhere and rename, which makes a file complete at once).

A writer may also put a manifest beside the file: ``<file>.manifest`` holding the file's
sha256, either as JSON (``{"sha256": "<64 hex digits>"}``, other keys ignored) or as a
``sha256sum`` line (``<64 hex digits>  <file>``). Manifests are never candidates themselves.
In a source with ``complete_when: manifest`` a file without its manifest is invisible (like a
``.tmp`` name) and complete as soon as the manifest exists; elsewhere a manifest is optional.
Wherever a manifest is present, the file is ingested only if its sha256 matches
(:func:`verify_manifest`); a manifest that cannot be read skips the file (``invalid_manifest``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    #: The sha256 its ``<file>.manifest`` declares, when there is one.
    manifest: str | None = None
    #: Complete because its source completes files by manifest and the manifest is there.
    complete_by_manifest: bool = False


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
INVALID_MANIFEST = "invalid_manifest"

MANIFEST_SUFFIX = ".manifest"
#: A manifest is a line or a small JSON object; anything longer is not one.
MAX_MANIFEST_BYTES = 4096
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class ManifestError(ValueError):
    """A manifest that does not declare a sha256 (the message names no value)."""


def manifest_path(path: Path) -> Path:
    """Where the manifest of a landed file is: ``<file>.manifest`` beside it."""
    return path.with_name(path.name + MANIFEST_SUFFIX)


def parse_manifest(data: bytes) -> str:
    """The sha256 (lower-case hex) a manifest declares: JSON ``{"sha256": "..."}`` or a
    ``sha256sum`` line ``<hex>  <name>``. :class:`ManifestError` otherwise."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("the manifest is longer than a manifest can be")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ManifestError("the manifest is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ManifestError("the manifest is not valid JSON") from None
        sha = body.get("sha256") if isinstance(body, dict) else None
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise ManifestError('the JSON manifest has no "sha256" of 64 hex digits')
        return sha.lower()
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0].split()[0] if lines else ""
    # sha256sum marks binary mode with a '*' before the name; a leading '\\' escapes names.
    first = first.lstrip("\\")
    if len(lines) != 1 or not _SHA256.match(first):
        raise ManifestError("the manifest is not one sha256sum line of 64 hex digits")
    return first.lower()


def read_manifest(path: Path, landing_root: Path | None = None) -> str | None:
    """The sha256 declared by the manifest of ``path``; ``None`` when there is none.
    :class:`ManifestError` when it cannot be read, is not a regular file, resolves outside
    ``landing_root`` or does not declare a sha256."""
    mpath = manifest_path(path)
    if not mpath.exists() and not mpath.is_symlink():
        return None
    try:
        real = mpath.resolve()
        if landing_root is not None and not real.is_relative_to(landing_root.resolve()):
            raise ManifestError("the manifest resolves outside the landing folder")
        if not real.is_file():
            raise ManifestError("the manifest is not a regular file")
        with real.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, FileNotFoundError):
            return None  # removed meanwhile
        raise ManifestError(f"the manifest cannot be read ({type(exc).__name__})") from None
    return parse_manifest(data)


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
    lower = name.lower()
    return (
        name.startswith(".")
        or lower.endswith(TEMPORARY_SUFFIXES)
        or lower.endswith(MANIFEST_SUFFIX)
        or any(lower.endswith(MANIFEST_SUFFIX + t) for t in TEMPORARY_SUFFIXES)
    )


def scan_landing(
    root: Path,
    folders: list[str],
    skipped: list[SkippedFile] | None = None,
    *,
    manifest_folders: Collection[str] = (),
) -> list[LandedFile]:
    """Candidate files under the given source folders, oldest first (then by name).

    Entries that are not candidates (other than dotfiles, temporary names and manifests) are
    appended to ``skipped`` with their reason when it is given: files at the landing root,
    folders that are no source's, links out of the root or to a folder, names with control
    characters, files whose manifest cannot be read. In ``manifest_folders`` (the folders of
    sources with ``complete_when: manifest``) a file without its manifest is no candidate yet.
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
                try:
                    declared = read_manifest(path, real_root)
                except ManifestError:
                    skips.append(SkippedFile(printable(key), INVALID_MANIFEST))
                    continue
                by_manifest = folder in manifest_folders
                if by_manifest and declared is None:
                    continue  # still being written: its manifest is the signal
                stat = path.resolve().stat()
                found.append(
                    LandedFile(
                        key,
                        path,
                        stat.st_size,
                        stat.st_mtime_ns,
                        declared,
                        declared is not None and by_manifest,
                    )
                )
    found.sort(key=lambda f: (f.mtime_ns, f.key))
    if skipped is not None:
        skipped.extend(sorted(skips, key=lambda s: s.path))
    return found


def manifest_folders(sources: Iterable[Any]) -> set[str]:
    """The landing folders of the sources (``SourceConfig``) that complete files by manifest."""
    return {s.landing_folder for s in sources if str(s.complete_when) == "manifest"}


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

    def handled(self, f: LandedFile, sha256: str) -> None:
        """Record ``f`` (with the sha256 of its bytes) as handed on: it is considered again
        only when its size, mtime or manifest change."""
        entry: list[int | str] = [f.size, f.mtime_ns, sha256]
        if f.manifest is not None:
            entry.append(f.manifest)
        self.done[cursor_key(f.key)] = entry


def _unchanged(done: list[int | str], f: LandedFile) -> bool:
    manifest = done[3] if len(done) > 3 else None
    return done[0] == f.size and done[1] == f.mtime_ns and manifest == f.manifest


def complete_files(
    files: list[LandedFile], cursor: LandingCursor, now_ns: int, settle_seconds: float
) -> list[LandedFile]:
    """Files that are complete and new (or changed) since they were last handed on.

    Updates ``cursor.pending`` in place; the caller records handled files in ``cursor.done``
    (:meth:`LandingCursor.handled`). Files that disappeared are forgotten. A file complete by
    its manifest is ready at once.
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
        if done is not None and _unchanged(done, f):
            continue
        seen = cursor.pending.get(ck)
        stable = seen is not None and seen == [f.size, f.mtime_ns]
        settled = now_ns - f.mtime_ns >= settle_ns
        if f.complete_by_manifest or stable or settled:
            cursor.pending.pop(ck, None)
            ready.append(f)
        else:
            cursor.pending[ck] = [f.size, f.mtime_ns]
    return ready


class ManifestMismatch(Exception):
    """A landed file whose manifest does not vouch for its bytes. ``code`` is the ledger's
    reason code; the message names the file (relative to the landing root), never a value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AwaitingManifest(Exception):
    """A file of a ``complete_when: manifest`` source whose manifest is not there yet: not
    complete, so not ingested and not recorded."""


#: Ledger reason codes of manifest rejections: they reject the pair (file, manifest), not the
#: bytes, so the same bytes under a corrected manifest are tried again.
MANIFEST_CODES = ("manifest_mismatch", "invalid_manifest")


def verify_manifest(
    path: Path, relative: str, content_sha256: str, *, required: bool, landing_root: Path
) -> str | None:
    """Check a landed file against its manifest: the sha256 declared (``None``: no manifest
    and none required). Raises :class:`AwaitingManifest` when one is required and missing,
    :class:`ManifestMismatch` when it cannot be read or declares other bytes."""
    try:
        declared = read_manifest(path, landing_root)
    except ManifestError as exc:
        raise ManifestMismatch(
            "invalid_manifest", f"{relative}: its {MANIFEST_SUFFIX} file is unusable: {exc}"
        ) from None
    if declared is None:
        if required:
            raise AwaitingManifest(f"{relative}: waiting for its {MANIFEST_SUFFIX} file")
        return None
    if declared != content_sha256:
        raise ManifestMismatch(
            "manifest_mismatch",
            f"{relative}: the sha256 in its {MANIFEST_SUFFIX} file ({declared[:12]}...) does "
            f"not match the file's ({content_sha256[:12]}...): the file is incomplete or "
            "altered, or the manifest is wrong; drop a corrected file or manifest",
        )
    return declared
