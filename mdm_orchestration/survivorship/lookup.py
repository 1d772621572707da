"""Finding golden records (``mdm lookup``) and exporting them (``mdm export``).

Look-ups go through the cleansed records, so a golden record is found by any of its source
records' emails, phones or names, not only the surviving ones. Inputs are normalised by the same
cleansers that built the hub, so ``John.Smith+shop@GoogleMail.com`` finds ``johnsmith@gmail.com``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mdm_orchestration.cleansing.addresses import normalise_postcode
from mdm_orchestration.cleansing.contact import normalise_email, normalise_phone
from mdm_orchestration.cleansing.names import (
    looks_like_organisation,
    parse_organisation_name,
    parse_person_name,
)
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.tables import (
    CHANGES,
    CLEANSED,
    CURRENT_CLEANSED,
    GOLDEN,
    HISTORY,
    HOUSEHOLD_MEMBERS,
    XREF,
)
from mdm_orchestration.survivorship.rows import ACTIVE
from mdm_orchestration.survivorship.rules import ATTRIBUTES

#: Spreadsheet programs run a cell starting with one of these as a formula (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_KINDS = ("golden", "xref", "changes")


def _records_matching(conn: Connection, *conditions: Any) -> list[str]:
    rows = conn.execute(
        select(CLEANSED.c.source_record_id)
        .select_from(CURRENT_CLEANSED)
        .where(*conditions)
        .distinct()
    )
    return [r for (r,) in rows]


def find_record_ids(
    conn: Connection,
    *,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    source: str | None = None,
    key: str | None = None,
    country: str = "US",
    postcode: str | None = None,
) -> list[str]:
    """Source record ids matching every criterion given (normalised like cleansing does)."""
    conditions = []
    if postcode is not None:
        normalised_postcode = normalise_postcode(postcode, country)[0]
        conditions.append(CLEANSED.c.postcode == (normalised_postcode or postcode.strip()))
    if email is not None:
        normalised = normalise_email(email)
        conditions.append(
            CLEANSED.c.email_key == normalised.email_key
            if normalised.email_key
            else CLEANSED.c.email == (normalised.email or "")
        )
    if phone is not None:
        conditions.append(CLEANSED.c.phone == (normalise_phone(phone, country).phone or ""))
    if name is not None:
        if looks_like_organisation(name):
            company = parse_organisation_name(name)
            conditions.append(CLEANSED.c.company_key == (company.company_key or ""))
        else:
            person = parse_person_name(full=name)
            if person.family_key:
                conditions.append(CLEANSED.c.family_key == person.family_key)
            if person.given_key:
                conditions.append(CLEANSED.c.given_key == person.given_key)
            if not (person.family_key or person.given_key):
                return []
    if source is not None or key is not None:
        if source is None or key is None:
            raise ValueError("look up a source record with both --source and --key")
        conditions.append(CLEANSED.c.source_record_id == source_record_id(source, key))
    if not conditions:
        raise ValueError("give at least one of email, phone, name, or source and key")
    return _records_matching(conn, *conditions)


def resolve_golden_id(conn: Connection, golden_id: str) -> str | None:
    """Follow ``merged_into`` to the golden record that absorbed ``golden_id``."""
    seen = set()
    while golden_id not in seen:
        seen.add(golden_id)
        row = conn.execute(
            select(GOLDEN.c.status, GOLDEN.c.merged_into).where(GOLDEN.c.golden_id == golden_id)
        ).first()
        if row is None:
            return None
        if row.status != "merged" or not row.merged_into:
            return golden_id
        golden_id = row.merged_into
    return None


def golden_documents(conn: Connection, golden_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Golden records as JSON-ready documents: values, consents, lineage, cross-reference."""
    out = []
    for gid in sorted(set(golden_ids)):
        row = conn.execute(select(GOLDEN).where(GOLDEN.c.golden_id == gid)).mappings().first()
        if row is None:
            continue
        xref = conn.execute(
            select(XREF.c.source, XREF.c.source_key, XREF.c.record_id)
            .where(XREF.c.golden_id == gid)
            .order_by(XREF.c.source, XREF.c.source_key)
        ).all()
        household = conn.execute(
            select(HOUSEHOLD_MEMBERS.c.household_id).where(HOUSEHOLD_MEMBERS.c.golden_id == gid)
        ).scalar_one_or_none()
        contacts = (
            conn.execute(
                select(GOLDEN.c.golden_id)
                .where(GOLDEN.c.organisation_golden_id == gid, GOLDEN.c.status == ACTIVE)
                .order_by(GOLDEN.c.golden_id)
            )
            .scalars()
            .all()
        )
        out.append(
            {
                "golden_id": gid,
                "status": row["status"],
                "merged_into": row["merged_into"],
                "version": row["version"],
                "party_type": row["party_type"],
                "lifecycle": row["lifecycle"],
                "attributes": row["attributes"],
                "consents": row["consents"],
                "lineage": row["lineage"],
                "organisation_golden_id": row["organisation_golden_id"],
                "contacts": list(contacts),
                "household_id": household,
                "sources": row["sources"],
                "xref": [{"source": s, "source_key": k, "record_id": r} for s, k, r in xref],
                "created_at": row["created_at"].isoformat() if row["created_at"] else None,
                "updated_at": row["updated_at"].isoformat() if row["updated_at"] else None,
            }
        )
    return out


def lookup(conn: Connection, *, golden_id: str | None = None, **criteria: Any) -> list[dict]:
    """Golden records found by ``golden_id`` (a merged one leads to its survivor) or by the
    criteria of :func:`find_record_ids`."""
    if golden_id is not None:
        found = resolve_golden_id(conn, golden_id)
        return golden_documents(conn, [found] if found else [])
    return golden_documents(conn, golden_ids_matching(conn, **criteria))


def golden_ids_matching(conn: Connection, **criteria: Any) -> list[str]:
    """The golden ids :func:`lookup` finds by the criteria of :func:`find_record_ids`, sorted
    (so that a caller can page through them)."""
    return sorted(set(golden_ids_of_records(conn, find_record_ids(conn, **criteria)).values()))


def golden_ids_of_records(conn: Connection, record_ids: Iterable[str]) -> dict[str, str]:
    """Source record id -> the golden id it belongs to (records in no golden record left out)."""
    ids = sorted(set(record_ids))
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        out.update(
            dict(
                conn.execute(
                    select(XREF.c.record_id, XREF.c.golden_id).where(XREF.c.record_id.in_(chunk))
                ).all()
            )
        )
    return out


def golden_history(conn: Connection, golden_id: str) -> list[dict]:
    """Every recorded version of a golden record, oldest first (empty: no such golden id)."""
    rows = conn.execute(
        select(HISTORY).where(HISTORY.c.golden_id == golden_id).order_by(HISTORY.c.version)
    ).mappings()
    out = []
    for row in rows:
        version = dict(row)
        version.pop("id", None)
        out.append(version)
    return out


# --- export -----------------------------------------------------------------------------------


def golden_as_of(conn: Connection, golden_id: str, at: datetime | None = None) -> dict | None:
    """A golden record as it was at ``at`` (now, without it): its latest version recorded at
    or before that time, with its status, values, lineage and members then."""
    query = select(HISTORY).where(HISTORY.c.golden_id == golden_id)
    if at is not None:
        query = query.where(HISTORY.c.recorded_at <= at)
    row = conn.execute(query.order_by(HISTORY.c.version.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out.pop("id", None)
    return out


def formula_safe(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` before a formula character."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _golden_rows(conn: Connection) -> tuple[list[str], Iterator[list[Any]]]:
    purposes = sorted(
        {
            p
            for (c,) in conn.execute(select(GOLDEN.c.consents).where(GOLDEN.c.status == ACTIVE))
            for p in c
        }
    )
    header = [
        "golden_id",
        "party_type",
        "version",
        "lifecycle",
        *ATTRIBUTES,
        *[f"consent_{p}" for p in purposes],
        "organisation_golden_id",
        "household_id",
        "member_count",
        "sources",
        "created_at",
        "updated_at",
    ]
    query = (
        select(GOLDEN, HOUSEHOLD_MEMBERS.c.household_id)
        .select_from(
            GOLDEN.outerjoin(HOUSEHOLD_MEMBERS, HOUSEHOLD_MEMBERS.c.golden_id == GOLDEN.c.golden_id)
        )
        .where(GOLDEN.c.status == ACTIVE)
        .order_by(GOLDEN.c.seq)
    )

    def rows() -> Iterator[list[Any]]:
        for r in conn.execution_options(yield_per=10_000).execute(query).mappings():
            a, c = r["attributes"], r["consents"]
            yield [
                r["golden_id"],
                r["party_type"],
                r["version"],
                r["lifecycle"],
                *[a.get(name) for name in ATTRIBUTES],
                *[(c.get(p) or {}).get("granted") for p in purposes],
                r["organisation_golden_id"],
                r["household_id"],
                r["member_count"],
                ";".join(r["sources"]),
                r["created_at"],
                r["updated_at"],
            ]

    return header, rows()


def _xref_rows(conn: Connection) -> tuple[list[str], Iterator[list[Any]]]:
    query = select(XREF.c.source, XREF.c.source_key, XREF.c.golden_id).order_by(
        XREF.c.source, XREF.c.source_key
    )
    rows = (list(r) for r in conn.execution_options(yield_per=10_000).execute(query))
    return ["source", "source_key", "golden_id"], rows


def _change_rows(conn: Connection) -> tuple[list[str], Iterator[list[Any]]]:
    columns = [
        "seq",
        "event_id",
        "golden_id",
        "version",
        "event_type",
        "changed",
        "related",
        "run_id",
        "created_at",
    ]
    query = select(*[CHANGES.c[c] for c in columns]).order_by(CHANGES.c.seq)
    rows = (list(r) for r in conn.execution_options(yield_per=10_000).execute(query))
    return columns, rows


def export_csv(conn: Connection, kind: str, out: Path) -> int:
    """Write ``golden``, ``xref`` or ``changes`` as CSV to ``out`` (atomically); the row count."""
    if kind not in EXPORT_KINDS:
        raise ValueError(f"export one of {', '.join(EXPORT_KINDS)}")
    header, rows = {"golden": _golden_rows, "xref": _xref_rows, "changes": _change_rows}[kind](conn)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in rows:
                writer.writerow([formula_safe(v) for v in row])
                n += 1
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
