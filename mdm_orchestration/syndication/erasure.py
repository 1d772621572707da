"""Erasure (GDPR Art. 17): remove a person from every hub table, keep a tombstone, tell the
subscribers that received them.

One transaction deletes the person's source-record versions, source records, cleansed records,
clusters, review items, labels, overrides, cross-reference rows and household membership;
blanks the golden record and every version of its history (and of the golden records merged
into it); appends an ``erased`` event to the outbox; and records the erased source record ids
(hashes of source and key, nothing readable) so that a later extract carrying them is
quarantined as ``erased_subject`` and a restored backup can be cleaned again
(:func:`replay_erasures`). Landed files are the silos' own exports and are not rewritten: purge
or re-export them by the silos' own retention rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.store import write_transaction
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
    OVERRIDES,
    PAIRS,
    QUEUE,
    REVIEW,
    SOURCES,
    VERSIONS,
    XREF,
    chunks,
    utcnow,
)
from mdm_orchestration.matching import forget_records
from mdm_orchestration.survivorship import event_id, resolve_golden_id

PAIR_TABLES = (LABELS, OVERRIDES, REVIEW, PAIRS)
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


def erase(
    engine: Engine,
    *,
    golden_id: str | None = None,
    source: str | None = None,
    key: str | None = None,
    by: str,
) -> ErasureResult:
    """Erase the person of a golden record (or of one source record) from the hub."""
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
        _delete_records(conn, record_ids)
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
        existing = set(
            conn.execute(
                select(ERASED.c.record_id).where(ERASED.c.record_id.in_(record_ids))
            ).scalars()
        )
        rows = [{"record_id": r, "erasure_id": erasure_id} for r in record_ids if r not in existing]
        if rows:
            conn.execute(insert(ERASED), rows)
    return ErasureResult(erasure_id, target, len(record_ids), len(goldens))


def erased_record_ids(conn: Connection) -> set[str]:
    return set(conn.execute(select(ERASED.c.record_id)).scalars())


def replay_erasures(engine: Engine) -> int:
    """After restoring a backup: delete again every erased record that came back (the ledger
    is restored too, or kept aside and re-applied). Returns the records removed again."""
    with write_transaction(engine) as conn:
        erased = sorted(erased_record_ids(conn))
        back = []
        for chunk in chunks(erased):
            back += list(
                conn.execute(select(SOURCES.c.id).where(SOURCES.c.id.in_(chunk))).scalars()
            )
        _delete_records(conn, back)
    return len(back)
