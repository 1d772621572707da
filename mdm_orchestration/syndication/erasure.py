"""Erasure (GDPR Art. 17): remove a person from every hub table, keep a tombstone, tell the
subscribers that received them.

One transaction deletes the person's source-record versions, source records, cleansed records,
clusters, review items, labels, overrides, cross-reference rows and household membership;
blanks the golden record and every version of its history (and of the golden records merged
into it); appends an ``erased`` event to the outbox; and records the erased source record ids
(hashes of source and key, nothing readable) so that a later extract carrying them is
quarantined as ``erased_subject``.

The tombstone is also kept outside the hub database, since a restored backup from before the
erasure lacks it: an append-only JSON Lines ledger under ``MDM_HOME``
(:func:`erasure_ledger_path`), one line per erasure with hashed record ids and golden ids only,
fsynced (0600) before the erasure commits. After a restore, :func:`replay_erasures`
(``mdm erasure replay``) redoes every erasure of that ledger the hub lacks, whole: source
records, golden records blanked and retired, history scrubbed, and an ``erased`` event for the
subscribers.

Files outside the database that carry the person are scrubbed after the erasure commits
(:func:`mdm_orchestration.ingestion.scrub_erased`): every archived extract (``ingest.archive``)
and every complete file still in the landing zone holding a row of an erased source record is
rewritten without those rows (atomically; the other rows byte for byte) or removed when none is
left; a landed file whose bytes the hub already loaded goes to the archive (scrubbed) when the
archive is on. Files still being written are left: ingesting them quarantines the person as
``erased_subject`` and archiving them scrubs them. Which files were rewritten is appended to
the outside ledger as a ``files`` entry, by path hash (never a name). A replay scrubs the files
again for every erased record, so a restored archive loses the person too.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.store import (
    PRIVATE_FILE_MODE,
    private_dir,
    write_transaction,
)
from mdm_orchestration.hub.tables import (
    CHANGES,
    CLEANSED,
    CLUSTERS,
    ERASED,
    ERASURES,
    GOLDEN,
    HISTORY,
    HOUSEHOLD_MEMBERS,
    HOUSEHOLDS,
    INDEX,
    LABELS,
    OVERRIDE_REMOVALS,
    OVERRIDES,
    PAIRS,
    QUEUE,
    REVIEW,
    SOURCES,
    STAGE_PAIRS,
    STAGE_PARTITIONS,
    VERSIONS,
    WORKBENCH_AUDIT,
    XREF,
    chunks,
    utcnow,
)
from mdm_orchestration.ingestion import ArchiveError, ScrubbedFile, scrub_erased
from mdm_orchestration.matching import forget_records
from mdm_orchestration.settings import settings
from mdm_orchestration.survivorship import event_id, forget_overrides, resolve_golden_id

#: The erasure ledger kept outside the hub database, under ``MDM_HOME``.
LEDGER_NAME = "erasure-ledger.jsonl"

# Steward decisions on pairs, including the cannot-links a steward took back (kept with their
# reasons in match_override_removals).
PAIR_TABLES = (LABELS, OVERRIDES, OVERRIDE_REMOVALS, REVIEW, PAIRS)
RECORD_TABLES = (
    (INDEX, "record_id"),
    (QUEUE, "record_id"),
    (VERSIONS, "source_record_id"),
    (CLEANSED, "source_record_id"),
    (CLUSTERS, "record_id"),
    (XREF, "record_id"),
    (SOURCES, "id"),
)


class NothingToErase(LookupError):
    pass


@dataclass
class ErasureResult:
    erasure_id: int
    golden_id: str | None
    records: int
    golden_records_blanked: int
    #: Archived or landed files rewritten without the person, and files removed (no row left).
    files_rewritten: int = 0
    files_removed: int = 0
    #: Why the files could not all be scrubbed (an error's type); a replay tries again.
    files_error: str | None = None


def _absorbed(conn: Connection, golden_id: str) -> set[str]:
    """``golden_id`` and every golden record merged into it, directly or not."""
    out, frontier = {golden_id}, [golden_id]
    while frontier:
        rows = conn.execute(select(GOLDEN.c.golden_id).where(GOLDEN.c.merged_into.in_(frontier)))
        frontier = [g for (g,) in rows if g not in out]
        out.update(frontier)
    return out


def _delete_records(conn: Connection, record_ids: list[str]) -> None:
    # The hub-wide value counts lose the erased records (before their index entries go).
    forget_records(conn, record_ids)
    for chunk in chunks(record_ids):
        for table in PAIR_TABLES:
            conn.execute(
                delete(table).where(
                    or_(table.c.left_record_id.in_(chunk), table.c.right_record_id.in_(chunk))
                )
            )
        for table, column in RECORD_TABLES:
            conn.execute(delete(table).where(table.c[column].in_(chunk)))
    # A partitioned rebuild's staged pairs name record ids too. All of them go: a run in
    # flight is refused anyway (its snapshot holds the erasure), and a stale run's rows would
    # otherwise stay until the next partitioned run.
    conn.execute(delete(STAGE_PAIRS))
    conn.execute(delete(STAGE_PARTITIONS))


def erasure_ledger_path(home: Path | None = None) -> Path:
    """The erasure ledger outside the hub database: ``<MDM_HOME>/erasure-ledger.jsonl``."""
    return (home or settings().home) / LEDGER_NAME


def append_ledger(path: Path, entry: dict[str, Any]) -> None:
    """Append one entry (one JSON line) and fsync it; the file is 0600, its folder 0700 when
    created here."""
    path = Path(path)
    private_dir(path.parent)
    new = not path.exists()
    line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE_MODE)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # the new file's name is durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_file_entries(path: Path) -> list[dict[str, Any]]:
    """The ledger's ``files`` entries (which files each erasure or replay scrubbed, by path
    hash), oldest first."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("kind") == "files":
            out.append(entry)
    return out


def _scrub_files(
    engine: Engine,
    record_ids: list[str],
    *,
    sources: set[str] | None,
    config: HubConfig | None,
    landing: Path | None,
    home: Path | None,
) -> tuple[list[ScrubbedFile], str | None]:
    """The archived and landed files rewritten (or removed) without ``record_ids``, and the
    error's type name when that could not be finished."""
    try:
        return (
            scrub_erased(
                engine,
                config or load_hub_config(None),
                record_ids,
                landing_root=landing,
                home=home,
                sources=sources,
            ),
            None,
        )
    except (ArchiveError, OSError) as exc:
        return [], type(exc).__name__


def _files_entry(
    ledger: Path, of: str | None, files: list[ScrubbedFile], error: str | None, now: datetime
) -> None:
    entry: dict[str, Any] = {
        "v": 1,
        "kind": "files",
        "entry_id": uuid.uuid4().hex,
        "of": of,  # the erasure entry (None: a replay)
        "recorded_at": now.isoformat(),
        "files": [f.as_dict() for f in files],
    }
    if error:
        entry["error"] = error
    append_ledger(ledger, entry)


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's entries, oldest first; none when it does not exist. A torn last line (a
    crash mid-append, before its erasure committed) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("record_ids"), list):
            entries.append(entry)
    return entries


def _erase_in(
    conn: Connection,
    target: str | None,
    goldens: list[str],
    record_ids: list[str],
    by: str,
    now: datetime,
) -> int:
    """The erasure itself, in the caller's transaction: ``record_ids`` deleted, ``goldens``
    blanked with their history, ``target`` retired as ``erased`` with an outbox event, the
    tombstone written. Returns the erasure id."""
    _delete_records(conn, record_ids)
    # A steward's pinned values of the person go too (also a pin elsewhere on one of their
    # records), and the reasons and details of the workbench's audit rows about their golden
    # records (who did what, and when, stays).
    forget_overrides(conn, goldens, record_ids)
    for chunk in chunks([f"golden:{g}" for g in goldens]):
        conn.execute(
            update(WORKBENCH_AUDIT)
            .where(WORKBENCH_AUDIT.c.target.in_(chunk))
            .values(reason=None, details={"erased": True})
        )
    for chunk in chunks(goldens):
        # The person leaves their household (which goes if they were its last member).
        for household, n in conn.execute(
            select(HOUSEHOLD_MEMBERS.c.household_id, func.count())
            .where(HOUSEHOLD_MEMBERS.c.golden_id.in_(chunk))
            .group_by(HOUSEHOLD_MEMBERS.c.household_id)
        ).all():
            conn.execute(
                update(HOUSEHOLDS)
                .where(HOUSEHOLDS.c.household_id == household)
                .values(member_count=HOUSEHOLDS.c.member_count - n)
            )
        conn.execute(delete(HOUSEHOLD_MEMBERS).where(HOUSEHOLD_MEMBERS.c.golden_id.in_(chunk)))
        conn.execute(delete(HOUSEHOLDS).where(HOUSEHOLDS.c.member_count <= 0))
        conn.execute(
            update(HISTORY)
            .where(HISTORY.c.golden_id.in_(chunk))
            .values(
                attributes={},
                lineage={},
                consents={},
                lifecycle=None,
                sources=[],
                members=[],
                changed=[],
                household_id=None,
            )
        )
        conn.execute(
            update(GOLDEN)
            .where(GOLDEN.c.golden_id.in_(chunk))
            .values(
                attributes={},
                keys={},
                lineage={},
                consents={},
                lifecycle=None,
                sources=[],
                member_count=0,
                content_hash="",
                updated_at=now,
            )
        )
    if target is not None:
        current = conn.execute(
            select(GOLDEN.c.version, GOLDEN.c.party_type).where(GOLDEN.c.golden_id == target)
        ).one()
        version = current.version + 1
        conn.execute(
            update(GOLDEN)
            .where(GOLDEN.c.golden_id == target)
            .values(status="erased", version=version, updated_run_id=None)
        )
        conn.execute(
            insert(HISTORY).values(
                golden_id=target,
                version=version,
                status="erased",
                change="erased",
                changed=[],
                party_type=current.party_type,
                attributes={},
                lineage={},
                consents={},
                lifecycle=None,
                organisation_golden_id=None,
                sources=[],
                members=[],
                merged_into=None,
                run_id=None,
                recorded_at=now,
            )
        )
        conn.execute(
            insert(CHANGES).values(
                event_id=event_id(target, version),
                golden_id=target,
                version=version,
                event_type="erased",
                changed=[],
                related=[],
                run_id=None,
                created_at=now,
            )
        )
        # Contacts of an erased organisation lose the link (the organisation is gone).
        conn.execute(
            update(GOLDEN)
            .where(GOLDEN.c.organisation_golden_id == target)
            .values(organisation_golden_id=None)
        )
    erasure_id = conn.execute(
        insert(ERASURES)
        .values(golden_id=target or "", records=len(record_ids), requested_by=by, erased_at=now)
        .returning(ERASURES.c.id)
    ).scalar_one()
    existing: set[str] = set()
    for chunk in chunks(record_ids):
        existing |= set(
            conn.execute(select(ERASED.c.record_id).where(ERASED.c.record_id.in_(chunk))).scalars()
        )
    rows = [{"record_id": r, "erasure_id": erasure_id} for r in record_ids if r not in existing]
    if rows:
        conn.execute(insert(ERASED), rows)
    return erasure_id


def erase(
    engine: Engine,
    *,
    golden_id: str | None = None,
    source: str | None = None,
    key: str | None = None,
    by: str,
    ledger: Path | None = None,
    config: HubConfig | None = None,
    landing: Path | None = None,
    home: Path | None = None,
) -> ErasureResult:
    """Erase the person of a golden record (or of one source record) from the hub. The entry
    is appended to the outside ledger (``ledger``, default :func:`erasure_ledger_path`) before
    the erasure commits: a crash in between leaves an entry that a replay completes.

    Then the files: the archive (``config``'s, under ``home``) and the landing zone
    (``landing``, default ``MDM_LANDING_DIR``) lose the person's rows, recorded in the ledger
    by path hash. ``config`` defaults to the hub's configuration (``MDM_CONFIG_DIR``)."""
    if (golden_id is None) == (source is None or key is None):
        raise ValueError("erase either --golden ID or --source S --key K")
    now = utcnow()
    with write_transaction(engine) as conn:
        target: str | None
        if golden_id is not None:
            target = resolve_golden_id(conn, golden_id)
            if target is None:
                raise NothingToErase(f"no golden record {golden_id}")
        else:
            rid = source_record_id(source or "", key or "")
            target = conn.execute(select(XREF.c.golden_id).where(XREF.c.record_id == rid)).scalar()
            if target is None:
                exists = conn.execute(
                    select(func.count()).select_from(SOURCES).where(SOURCES.c.id == rid)
                ).scalar_one()
                if not exists:
                    raise NothingToErase("no such source record in the hub")
        goldens = sorted(_absorbed(conn, target)) if target else []
        if target is not None:
            record_ids = sorted(
                conn.execute(select(XREF.c.record_id).where(XREF.c.golden_id == target)).scalars()
            )
        else:
            record_ids = [rid]
        # The sources whose files can hold the person (read before the records go).
        sources: set[str] = set()
        for chunk in chunks(record_ids):
            sources |= set(
                conn.execute(select(SOURCES.c.source).where(SOURCES.c.id.in_(chunk))).scalars()
            )
        erasure_id = _erase_in(conn, target, goldens, record_ids, by, now)
        entry_id = uuid.uuid4().hex
        append_ledger(
            ledger or erasure_ledger_path(),
            {
                "v": 1,
                "entry_id": entry_id,
                "erased_at": now.isoformat(),
                "target": target,
                "golden_ids": goldens,
                "record_ids": record_ids,
            },
        )
    # After the commit: a crash before the files are scrubbed leaves the entry, and a replay
    # scrubs them (files are not part of the transaction).
    files, error = _scrub_files(
        engine,
        record_ids,
        sources=sources or None,
        config=config,
        landing=landing,
        home=home,
    )
    _files_entry(ledger or erasure_ledger_path(), entry_id, files, error, now)
    return ErasureResult(
        erasure_id,
        target,
        len(record_ids),
        len(goldens),
        files_rewritten=sum(f.action in ("rewritten", "archived") for f in files),
        files_removed=sum(f.action == "removed" for f in files),
        files_error=error,
    )


def erased_record_ids(conn: Connection) -> set[str]:
    return set(conn.execute(select(ERASED.c.record_id)).scalars())


@dataclass
class ReplayResult:
    entries: int = 0  # entries in the outside ledger
    redone: int = 0  # of them, erasures the hub lacked and that were done again
    records: int = 0  # source records removed again
    golden_records: int = 0  # golden records retired as erased again
    events: int = 0  # erased events queued for the subscribers
    files: int = 0  # archived or landed files rewritten or removed without erased records
    files_error: str | None = None  # why the files could not all be scrubbed


def _present(conn: Connection, column: Any, values: list[str]) -> set[str]:  # noqa: ANN401
    out: set[str] = set()
    for chunk in chunks(values):
        out |= set(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return out


def _lacks(conn: Connection, entry: dict[str, Any]) -> bool:
    """Whether the hub lacks any part of a ledger entry's erasure."""
    records = list(entry["record_ids"])
    goldens = list(entry.get("golden_ids") or [])
    if _present(conn, SOURCES.c.id, records):
        return True
    if len(_present(conn, ERASED.c.record_id, records)) < len(set(records)):
        return True
    for chunk in chunks(goldens):
        for g, status, attributes in conn.execute(
            select(GOLDEN.c.golden_id, GOLDEN.c.status, GOLDEN.c.attributes).where(
                GOLDEN.c.golden_id.in_(chunk)
            )
        ):
            if attributes or (g == entry.get("target") and status != "erased"):
                return True
        if any(
            attributes
            for (attributes,) in conn.execute(
                select(HISTORY.c.attributes).where(HISTORY.c.golden_id.in_(chunk))
            )
        ):
            return True
    return False


def _members(conn: Connection, golden_id: str) -> set[str]:
    return set(
        conn.execute(select(XREF.c.record_id).where(XREF.c.golden_id == golden_id)).scalars()
    )


def _redo(
    conn: Connection, entry: dict[str, Any], by: str, now: datetime, result: ReplayResult
) -> None:
    """One ledger entry's erasure, done again on the hub as it is now."""
    records = set(entry["record_ids"])
    entry_goldens = set(entry.get("golden_ids") or [])
    # The golden records to retire: the erased one, if the hub has it active again, and any
    # other golden record made only of the erased records (mastered under another id).
    targets = []
    target = entry.get("target")
    if target:
        status = conn.execute(select(GOLDEN.c.status).where(GOLDEN.c.golden_id == target)).scalar()
        if status is not None and status not in ("erased", "merged"):
            targets.append(target)
    holders: set[str] = set()
    for chunk in chunks(records):
        holders |= set(
            conn.execute(select(XREF.c.golden_id).where(XREF.c.record_id.in_(chunk))).scalars()
        )
    for g in sorted(holders - set(targets)):
        if _members(conn, g) <= records:
            targets.append(g)
    remaining = set(records)
    blanked: set[str] = set()
    for t in targets:
        goldens = _absorbed(conn, t) | (entry_goldens if t == target else set())
        record_ids = sorted((_members(conn, t) | records) if t == target else _members(conn, t))
        _erase_in(conn, t, sorted(goldens - blanked), record_ids, by, now)
        blanked |= goldens
        remaining -= set(record_ids)
        result.golden_records += 1
        result.events += 1
    leftover = sorted(entry_goldens - blanked)
    if remaining or leftover:
        # Records held by golden records of other people too (left to the next
        # consolidation), or golden records of the person that are no longer active.
        _erase_in(conn, None, leftover, sorted(remaining), by, now)


def replay_erasures(
    engine: Engine,
    *,
    ledger: Path | None = None,
    by: str = "erasure-replay",
    config: HubConfig | None = None,
    landing: Path | None = None,
    home: Path | None = None,
) -> ReplayResult:
    """After restoring a backup: redo, whole, every erasure of the outside ledger that the hub
    lacks (source records, golden records, history, subscribers' erased events), and delete
    again any record of the hub's own tombstone that came back; then scrub the archived and
    landed files of every erased record again (a restored archive, or files an interrupted
    erasure left). Idempotent."""
    ledger = ledger or erasure_ledger_path()
    entries = read_ledger(ledger)
    result = ReplayResult(entries=len(entries))
    now = utcnow()
    with write_transaction(engine) as conn:
        before = len(
            _present(conn, SOURCES.c.id, sorted({r for e in entries for r in e["record_ids"]}))
        )
        for entry in entries:
            if _lacks(conn, entry):
                _redo(conn, entry, by, now, result)
                result.redone += 1
        # The hub's own tombstone (restored with it): records that came back go again.
        erased = sorted(erased_record_ids(conn))
        back = sorted(_present(conn, SOURCES.c.id, erased))
        _delete_records(conn, back)
        result.records = before + len(back)
    every = sorted({r for e in entries for r in e["record_ids"]} | set(erased))
    if every:
        files, result.files_error = _scrub_files(
            engine, every, sources=None, config=config, landing=landing, home=home
        )
        result.files = len(files)
        if files or result.files_error:
            _files_entry(ledger, None, files, result.files_error, now)
    return result
