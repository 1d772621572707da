"""Cleanse a batch of one source's record versions into the canonical customer model.

``cleanse_batch`` is pure: raw values in (as stored by ingestion), cleansed records and
quarantine rows out. Each field's cleanser runs once per distinct value in the batch (silos
repeat cities, names and street lines), which is where the speed comes from.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from mdm_orchestration.cleansing.addresses import parse_address
from mdm_orchestration.cleansing.contact import normalise_email, normalise_phone
from mdm_orchestration.cleansing.dates import implausible_birth_dates, parse_dates
from mdm_orchestration.cleansing.ids import check_national_id
from mdm_orchestration.cleansing.names import (
    PersonName,
    looks_like_organisation,
    parse_organisation_name,
    parse_person_name,
)
from mdm_orchestration.cleansing.text import clean_text, map_rows_unique, map_unique
from mdm_orchestration.config import (
    CANONICAL_FIELDS,
    QUALITY_RULES,
    QualityConfig,
    Severity,
    SourceConfig,
)
from mdm_orchestration.hub.models import source_record_id

PERSON, ORGANISATION = "person", "organisation"
PARTY_TYPES = {
    "person": PERSON,
    "individual": PERSON,
    "consumer": PERSON,
    "private": PERSON,
    "p": PERSON,
    "organisation": ORGANISATION,
    "organization": ORGANISATION,
    "company": ORGANISATION,
    "business": ORGANISATION,
    "account": ORGANISATION,
    "org": ORGANISATION,
    "b2b": ORGANISATION,
    "o": ORGANISATION,
}
TRUE_WORDS = frozenset({"y", "yes", "true", "t", "1", "on", "opt-in", "opted in", "x"})
FALSE_WORDS = frozenset({"n", "no", "false", "f", "0", "off", "opt-out", "opted out"})

#: Columns of a cleansed record, in table order (after the version's identity columns).
RECORD_COLUMNS: tuple[str, ...] = (
    "party_type",
    "lifecycle",
    "title",
    "given_name",
    "middle_name",
    "family_name",
    "suffix",
    "full_name",
    "given_key",
    "family_key",
    "given_phonetic",
    "family_phonetic",
    "company_name",
    "legal_form",
    "company_key",
    "job_title",
    "organisation_record_id",
    "email",
    "email_key",
    "email_valid",
    "phone",
    "phone_valid",
    "street_number",
    "street_name",
    "unit",
    "street",
    "city",
    "region",
    "postcode",
    "country",
    "address_key",
    "birth_date",
    "national_id",
    "national_id_type",
    "national_id_valid",
    "consents",
    "quality_score",
    "quality_flags",
)
IDENTITY_COLUMNS = (
    "extract_id",
    "row_number",
    "source_record_id",
    "source",
    "source_key",
    "source_updated_at",
)

#: Which cleansed column answers "is this canonical field filled (and valid)?".
FILLED_BY = {name: name for name in CANONICAL_FIELDS} | {
    "organisation_key": "organisation_record_id"
}
VALID_BY = {"email": "email_valid", "phone": "phone_valid", "national_id": "national_id_valid"}
#: The canonical field each rule concerns (the quarantine row names it).
RULE_FIELD = {
    "no_name": "full_name",
    "no_contact_point": "email",
    "email_invalid": "email",
    "phone_invalid": "phone",
    "address_unparsed": "street",
    "postcode_invalid": "postcode",
    "country_unknown": "country",
    "birth_date_invalid": "birth_date",
    "birth_date_implausible": "birth_date",
    "national_id_invalid": "national_id",
}


@dataclass
class CleanseResult:
    records: pd.DataFrame  # IDENTITY_COLUMNS + RECORD_COLUMNS, one row per cleansed version
    quarantine: pd.DataFrame  # extract_id, row_number, field, reason, detail

    @property
    def rule_counts(self) -> dict[str, int]:
        """How many records failed each rule (``required_missing`` per field), incl. quarantined."""
        counts: dict[str, int] = {}
        for flags in self.records["quality_flags"]:
            for flag in flags:
                counts[flag] = counts.get(flag, 0) + 1
        for reasons in self.quarantine["rules"]:
            for flag in reasons:
                counts[flag] = counts.get(flag, 0) + 1
        return dict(sorted(counts.items()))


def canonical_inputs(raw: pd.Series, source: SourceConfig) -> pd.DataFrame:
    """The raw value of every mapped canonical field (``columns`` joined, ``values`` translated)."""
    rows: list[dict[str, Any]] = raw.tolist()
    out: dict[str, list[Any]] = {}
    for name, mapping in source.mapping.items():
        if mapping.value is not None:
            values: list[Any] = [mapping.value] * len(rows)
        elif mapping.column is not None:
            col = mapping.column
            values = [r.get(col) for r in rows]
        else:
            cols = mapping.columns or []
            values = [
                mapping.separator.join(t for t in (clean_text(r.get(c)) for c in cols) if t) or None
                for r in rows
            ]
        if mapping.values:
            table = mapping.values
            folded = {str(k).casefold(): v for k, v in table.items()}
            values = [
                None if v is None else table.get(str(v), folded.get(str(v).strip().casefold(), v))
                for v in values
            ]
        out[name] = values
    frame = pd.DataFrame(out, index=raw.index, dtype=object)
    for name in CANONICAL_FIELDS:
        if name not in frame:
            frame[name] = None
    return frame


def _consent(value: Any, opt_out: bool) -> bool | None:
    if isinstance(value, bool):
        answer: bool | None = value
    else:
        text = (clean_text(value) or "").casefold()
        answer = True if text in TRUE_WORDS else False if text in FALSE_WORDS else None
    if answer is None:
        return None
    return (not answer) if opt_out else answer


def _party_types(inputs: pd.DataFrame, id_types: pd.Series) -> pd.Series:
    mapped = map_unique(
        inputs["party_type"], lambda v: PARTY_TYPES.get((clean_text(v) or "").casefold())
    )
    unknown = mapped.isna()
    if not unknown.any():
        return mapped
    has_person_parts = inputs["given_name"].notna() | inputs["family_name"].notna()
    org_only = inputs["company_name"].notna() & ~has_person_parts & inputs["full_name"].isna()
    by_id = id_types.isin(["us.ein", "ca.bn", "fr.siren", "es.cif"])
    by_name = map_unique(
        inputs["full_name"].where(unknown & ~has_person_parts), looks_like_organisation
    )
    is_org = org_only | by_id | by_name.fillna(False).astype(bool)
    return mapped.where(~unknown, np.where(is_org, ORGANISATION, PERSON))


def cleanse_batch(
    versions: pd.DataFrame, source: SourceConfig, quality: QualityConfig, today: date
) -> CleanseResult:
    """Cleanse record versions of one source.

    ``versions`` has the columns ``extract_id, row_number, source_record_id, source_key, raw,
    source_updated_at`` (``raw``: the stored dict of source columns). Every version ends in
    exactly one of the two result frames.
    """
    deleted = _deleted(versions, source)
    if deleted.any():
        rest = cleanse_batch(versions[~deleted], source, quality, today)
        gone = versions.loc[deleted, ["extract_id", "row_number"]].copy()
        gone["reason"] = DELETED
        gone["field"] = None
        gone["detail"] = (
            f"the source marks the record deleted (column {source.deleted_flag.column})"  # type: ignore[union-attr]
        )
        gone["rules"] = [[] for _ in range(len(gone))]
        quarantine = pd.concat([rest.quarantine, gone], ignore_index=True)
        return CleanseResult(records=rest.records, quarantine=quarantine)
    n = len(versions)
    inputs = canonical_inputs(versions["raw"], source)
    out = pd.DataFrame(index=versions.index)
    for col in ("extract_id", "row_number", "source_record_id", "source_key", "source_updated_at"):
        out[col] = versions[col]
    out["source"] = source.name

    # Addresses first: the country decides phones' and ids' rules.
    address_parts = map_rows_unique(
        inputs[["street", "city", "region", "postcode", "country"]],
        lambda s, c, r, p, k: parse_address(s, c, r, p, k, source.default_country),
    )
    for col in (
        "street_number",
        "street_name",
        "unit",
        "street",
        "city",
        "region",
        "postcode",
        "country",
        "address_key",
    ):
        out[col] = [getattr(a, col) for a in address_parts]
    address_flags = [a.flags for a in address_parts]
    country = out["country"].fillna(source.default_country)

    ids = map_rows_unique(
        pd.DataFrame({"v": inputs["national_id"], "c": country}),
        lambda v, c: check_national_id(v, c, tuple(quality.national_ids.get(c, ()))),
    )
    out["national_id"] = [i.national_id for i in ids]
    out["national_id_type"] = [i.id_type for i in ids]
    out["national_id_valid"] = pd.array([i.valid for i in ids], dtype="boolean")

    party = _party_types(inputs, out["national_id_type"])
    out["party_type"] = party
    out["lifecycle"] = map_unique(
        inputs["lifecycle"], lambda v: (clean_text(v) or "").casefold() or None
    )

    # Organisation rows named only by full_name (ERP's NAME1) carry it as their company name.
    is_org = (party == ORGANISATION).to_numpy()
    company_raw = inputs["company_name"].where(
        ~(is_org & inputs["company_name"].isna().to_numpy()), inputs["full_name"]
    )
    orgs = map_unique(company_raw, parse_organisation_name)
    for col in ("company_name", "legal_form", "company_key"):
        out[col] = [getattr(o, col) if o else None for o in orgs]

    person_inputs = inputs[["given_name", "family_name", "full_name"]].where(
        pd.Series(~is_org, index=inputs.index), None
    )
    names = map_rows_unique(person_inputs, parse_person_name)
    for col in PersonName.__dataclass_fields__:
        out[col] = [getattr(p, col) for p in names]
    out["job_title"] = map_unique(inputs["job_title"], clean_text)
    org_keys = map_unique(inputs["organisation_key"], clean_text)
    out["organisation_record_id"] = [
        source_record_id(source.name, k) if isinstance(k, str) else None for k in org_keys
    ]

    emails = map_unique(inputs["email"], normalise_email)
    out["email"] = [e.email if e else None for e in emails]
    out["email_key"] = [e.email_key if e else None for e in emails]
    out["email_valid"] = pd.array([e.valid if e else None for e in emails], dtype="boolean")
    phones = map_rows_unique(
        pd.DataFrame({"v": inputs["phone"], "c": country}), lambda v, c: normalise_phone(v, c)
    )
    out["phone"] = [p.phone for p in phones]
    out["phone_valid"] = pd.array([p.valid for p in phones], dtype="boolean")

    born, born_invalid = parse_dates(inputs["birth_date"], source.date_order)
    born_implausible = implausible_birth_dates(
        born, today, quality.plausibility.min_age_years, quality.plausibility.max_age_years
    )
    out["birth_date"] = [d.date() if d == d else None for d in born]

    consent_cols = source.consent_columns
    out["consents"] = [
        {
            p: c
            for p, spec in consent_cols.items()
            if (c := _consent(r.get(spec.column), spec.opt_out)) is not None
        }
        for r in versions["raw"]
    ]

    # Quality: rule outcomes as boolean columns, then one flag list per record.
    failed: dict[str, np.ndarray] = {
        "no_name": np.where(
            is_org, out["company_name"].isna(), out["given_name"].isna() & out["family_name"].isna()
        ),
        "email_invalid": (out["email_valid"] == False).fillna(False).to_numpy(bool),  # noqa: E712
        "phone_invalid": (out["phone_valid"] == False).fillna(False).to_numpy(bool),  # noqa: E712
        "national_id_invalid": (out["national_id_valid"] == False).fillna(False).to_numpy(bool),  # noqa: E712
        "birth_date_invalid": born_invalid.to_numpy(bool),
        "birth_date_implausible": born_implausible.to_numpy(bool),
        "no_contact_point": ~(
            out["email_valid"].fillna(False).to_numpy(bool)
            | out["phone_valid"].fillna(False).to_numpy(bool)
            | out["street"].notna().to_numpy()
        ),
    }
    for rule in ("address_unparsed", "postcode_invalid", "country_unknown"):
        failed[rule] = np.array([rule in f for f in address_flags], dtype=bool)
    for field in quality.required_for(source.name):
        column = out[FILLED_BY[field]]
        missing = column.isna().to_numpy().copy()
        if field in VALID_BY:
            missing |= ~out[VALID_BY[field]].fillna(False).to_numpy(bool)
        failed[f"required_missing:{field}"] = missing

    names_in_order = [r for r in failed if r.split(":")[0] in QUALITY_RULES]
    weights = {r: quality.rule(source.name, r.split(":")[0]).weight for r in names_in_order}
    blocking = {
        r
        for r in names_in_order
        if quality.rule(source.name, r.split(":")[0]).severity == Severity.block
    }
    matrix = np.column_stack([failed[r] for r in names_in_order]) if n else np.zeros((0, 0), bool)
    flags: list[list[str]] = [[] for _ in range(n)]
    rows, cols = np.nonzero(matrix)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        flags[i].append(names_in_order[j])
    penalty = (
        matrix.astype(float) @ np.array([weights[r] for r in names_in_order]) if n else np.zeros(0)
    )
    out["quality_flags"] = flags
    out["quality_score"] = np.round(np.clip(1.0 - penalty, 0.0, 1.0), 3)

    blocked = np.array([any(f in blocking for f in fl) for fl in flags], dtype=bool)
    q = out.loc[blocked, ["extract_id", "row_number"]].copy()
    q_flags = [flags[i] for i in np.nonzero(blocked)[0]]
    q["reason"] = [next(f for f in fl if f in blocking).split(":")[0] for fl in q_flags]
    q["field"] = [_rule_field(next(f for f in fl if f in blocking)) for fl in q_flags]
    q["detail"] = [_detail(fl, blocking, source) for fl in q_flags]
    q["rules"] = q_flags
    records = out.loc[~blocked, [*IDENTITY_COLUMNS, *RECORD_COLUMNS]]
    return CleanseResult(
        records=records.reset_index(drop=True), quarantine=q.reset_index(drop=True)
    )


#: The quarantine reason of a version by which the source deletes a record: not an error, the
#: record leaves its cluster and golden record (and the quarantine-rate check ignores it).
DELETED = "deleted_by_source"


def _deleted(versions: pd.DataFrame, source: SourceConfig) -> pd.Series:
    flag = source.deleted_flag
    if flag is None or versions.empty:
        return pd.Series(False, index=versions.index)
    wanted = {v.casefold() for v in flag.values}
    return (
        versions["raw"]
        .map(lambda raw: str((raw or {}).get(flag.column) or "").strip().casefold() in wanted)
        .astype(bool)
    )


def resolve_workers(workers: int) -> int:
    """``workers`` processes; 0 means one per CPU, at most 4."""
    return workers if workers > 0 else max(1, min(os.cpu_count() or 1, 4))


def cleanse_batches(
    batches: Iterable[pd.DataFrame],
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
    workers: int = 1,
) -> Iterator[CleanseResult]:
    """:func:`cleanse_batch` over a stream of batches, in order, on ``workers`` processes.

    At most ``workers + 1`` batches are in flight, so memory stays bounded whatever the size of
    the stream. Workers are spawned (not forked: the caller may be a run worker with threads) and
    kept for the life of the process. One worker, or a single batch, runs in this process.
    """
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        return
    second = next(iterator, None)
    if workers <= 1 or second is None:
        yield cleanse_batch(first, source, quality, today)
        if second is not None:
            yield cleanse_batch(second, source, quality, today)
        for batch in iterator:
            yield cleanse_batch(batch, source, quality, today)
        return
    pool = _shared_pool(workers)
    pending: deque[Future[CleanseResult]] = deque()
    try:
        for batch in _chain(first, second, iterator):
            pending.append(pool.submit(cleanse_batch, batch, source, quality, today))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        _POOLS.pop(workers, None)  # a worker died: the next call starts a fresh pool
        raise
    finally:
        for future in pending:
            future.cancel()


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    """One pool per size for the life of the process: spawning workers (importing pandas and
    the cleansing libraries) costs seconds, which a run over several extracts pays once."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        )
        atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def _chain(first: pd.DataFrame, second: pd.DataFrame, rest: Iterator[pd.DataFrame]):  # noqa: ANN202
    yield first
    yield second
    yield from rest


def _rule_field(flag: str) -> str:
    rule, _, field = flag.partition(":")
    return field or RULE_FIELD.get(rule, rule)


#: Rules that read several canonical fields (the quarantine detail names all their columns).
RULE_FIELDS = {
    "no_name": ("given_name", "family_name", "full_name", "company_name"),
    "no_contact_point": ("email", "phone", "street"),
}


def _detail(flags: list[str], blocking: set[str], source: SourceConfig) -> str:
    """Which blocking rules failed and the source columns they read. Never a value."""
    parts = []
    for flag in flags:
        if flag not in blocking:
            continue
        rule = flag.split(":")[0]
        fields = RULE_FIELDS.get(rule, (_rule_field(flag),))
        columns = [
            f"{col} ({fld})"
            for fld in fields
            for col in (source.mapping[fld].source_columns if fld in source.mapping else [])
        ]
        where = ", ".join(columns) if columns else "not mapped"
        parts.append(f"{flag}: {QUALITY_RULES[rule]}; source column(s): {where}")
    return "; ".join(parts)
