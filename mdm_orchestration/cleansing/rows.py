"""Cleansing a few record versions value by value: what :func:`cleanse_batch` gives them, without
its pandas bookkeeping.

``cleanse_batch`` works column by column, which is what makes an extract of a million rows
fast, and costs about 13 ms however few rows it is given (some fifty column operations of
pandas, each a fixed cost). ``POST /v1/match`` and the records written through the API cleanse
one row, or the few that queued up together. :func:`cleanse_rows` calls the same cleansers with
the same arguments, row by row, and builds the two result frames once, from the same Python
values, so that their columns are inferred as ``cleanse_batch``'s are: the records and the
quarantine rows are equal, column types included (``tests/unit/test_cleanse_rows.py`` holds it
to that on every silo's rows and on odd values). The date parsing and the quality rules are
written again here in their scalar form, next to each other so that they can be read together.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from mdm_orchestration.cleansing.addresses import parse_address
from mdm_orchestration.cleansing.contact import (
    email_domain,
    normalise_email,
    normalise_phone,
    normalise_website,
)
from mdm_orchestration.cleansing.dates import FORMATS
from mdm_orchestration.cleansing.ids import check_national_id
from mdm_orchestration.cleansing.names import (
    PersonName,
    looks_like_organisation,
    parse_organisation_name,
    parse_person_name,
)
from mdm_orchestration.cleansing.pipeline import (
    ADDRESS_COLUMNS,
    DELETED,
    IDENTITY_COLUMNS,
    PARTY_TYPE_WORDS,
    RECORD_COLUMNS,
    CleanseResult,
    _consent,
    cleanse_batch,
)
from mdm_orchestration.cleansing.quality import (
    ADDRESS_RULES,
    FILLED_BY,
    VALID_BY,
    _detail,
    _rule_field,
    score,
)
from mdm_orchestration.cleansing.text import PLACEHOLDERS, clean_text
from mdm_orchestration.config import CANONICAL_FIELDS, QualityConfig, SourceConfig
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.tables import ORGANISATION, PERSON

#: Columns ``cleanse_batch`` makes from object Series (the versions' own columns, and
#: ``map_unique``'s answers), so never inferred as text; the other columns are lists.
_OBJECT_COLUMNS = frozenset(
    {
        "extract_id",
        "row_number",
        "source_record_id",
        "source_key",
        "source_updated_at",
        "party_type",
        "lifecycle",
        "job_title",
    }
)
_BOOLEAN_COLUMNS = frozenset({"email_valid", "phone_valid", "national_id_valid"})
#: National-id types that make a party of unknown type an organisation.
_ORGANISATION_IDS = frozenset({"us.ein", "ca.bn", "fr.siren", "es.cif"})
#: A time part ``parse_dates`` drops from a date ("1985-03-04T00:00:00").
_TIME_PART = re.compile(r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
#: The columns of a quarantine frame.
QUARANTINE_COLUMNS = ("extract_id", "row_number", "reason", "field", "detail", "rules")


class RowsResult(CleanseResult):
    """:class:`CleanseResult` with each record's columns as plain values too, and the rows
    the quality rules stopped as plain values; its two frames are made when first read (the
    service matches a proposal from its values: the frames of some fifty columns are most of
    cleansing one row)."""

    def __init__(
        self,
        values: list[dict[str, Any]],
        stopped: list[tuple[int, str, str | None]],
        frames: Callable[[], tuple[pd.DataFrame, pd.DataFrame]],
    ) -> None:
        #: per row of ``records``: its columns (in the frame's order) as the cleansers gave
        #: them (``None`` where the frame holds NaN or NA; the lists and dicts are the frame's)
        self.values = values
        #: per row of ``quarantine``: its ``(row_number, reason, field)`` (no field: None)
        self.stopped = stopped
        self._make: Callable[[], tuple[pd.DataFrame, pd.DataFrame]] | None = frames
        self._frames: tuple[pd.DataFrame, pd.DataFrame] | None = None

    def _made(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._frames is None:
            assert self._make is not None
            self._frames, self._make = self._make(), None
        return self._frames

    @property
    def records(self) -> pd.DataFrame:  # type: ignore[override]
        return self._made()[0]

    @property
    def quarantine(self) -> pd.DataFrame:  # type: ignore[override]
        return self._made()[1]


def _missing(value: Any) -> bool:  # noqa: ANN401
    """``pd.isna`` of one value."""
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and value != value)
    )


def _is_false(value: Any) -> bool:  # noqa: ANN401
    """``_is_false`` of one value: a flag that says no (not one that says nothing)."""
    return not _missing(value) and not bool(value)


def cleanse_rows(
    versions: list[dict[str, Any]], source: SourceConfig, quality: QualityConfig, today: date
) -> RowsResult:
    """:func:`cleanse_batch` of ``versions`` given as one dict per version (the same keys as
    its frame's columns), equal to its answer, with each record's values. Raw values are text
    or None, as the service gives them: ``cleanse_batch`` answers equal values once per batch,
    so values equal but of other types (``1`` and ``1.0``) may get the first one's answer there
    and their own here. A batch in which the source deletes a record goes to ``cleanse_batch``
    itself (a rare batch for the service)."""
    flag = source.deleted_flag
    deleting = {w.casefold() for w in flag.values} if flag is not None else set()
    if flag is not None and any(
        str((v["raw"] or {}).get(flag.column) or "").strip().casefold() in deleting
        for v in versions
    ):
        done = cleanse_batch(pd.DataFrame(versions, dtype=object), source, quality, today)
        plain = [
            {c: None if _missing(v) else v for c, v in r.items()}
            for r in done.records.to_dict("records")
        ]
        stopped = [
            (int(q.row_number), str(q.reason), None if _missing(q.field) else str(q.field))
            for q in done.quarantine.itertuples()
        ]
        return RowsResult(plain, stopped, lambda: (done.records, done.quarantine))
    if not versions:
        raise ValueError("cleanse_rows needs at least one version")
    rows = [_cleanse_row(v, source, quality, today) for v in versions]
    return _frames(rows, source, quality)


def _inputs(raw: dict[str, Any], source: SourceConfig) -> dict[str, Any]:
    """``canonical_inputs`` of one row."""
    out: dict[str, Any] = dict.fromkeys(CANONICAL_FIELDS)
    for name, mapping in source.mapping.items():
        if mapping.value is not None:
            value: Any = mapping.value
        elif mapping.column is not None:
            value = raw.get(mapping.column)
        else:
            parts = (clean_text(raw.get(c)) for c in mapping.columns or [])
            value = mapping.separator.join(t for t in parts if t) or None
        if mapping.values and value is not None:
            table = mapping.values
            folded = {str(k).casefold(): v for k, v in table.items()}
            value = table.get(str(value), folded.get(str(value).strip().casefold(), value))
        out[name] = value
    return out


def _is_true(value: Any) -> bool:  # noqa: ANN401
    """A flag that says yes (``fillna(False)``)."""
    return not _missing(value) and bool(value)


def _cleanse_row(
    version: dict[str, Any], source: SourceConfig, quality: QualityConfig, today: date
) -> dict[str, Any]:
    """One version's cleansed columns, with ``_failed`` (each rule's outcome) for the verdict."""
    raw = version["raw"] or {}
    given = _inputs(raw, source)
    row: dict[str, Any] = {c: version[c] for c in IDENTITY_COLUMNS if c != "source"}
    row["source"] = source.name
    address = parse_address(
        given["street"],
        given["city"],
        given["region"],
        given["postcode"],
        given["country"],
        source.default_country,
    )
    for col in ADDRESS_COLUMNS:
        row[col] = getattr(address, col)
    country = row["country"] if row["country"] is not None else source.default_country
    ident = check_national_id(
        given["national_id"], country, tuple(quality.national_ids.get(country, ()))
    )
    row["national_id"], row["national_id_type"] = ident.national_id, ident.id_type
    row["national_id_valid"] = ident.valid

    is_org = _party_type(given, ident.id_type) == ORGANISATION
    row["party_type"] = ORGANISATION if is_org else PERSON
    lifecycle = given["lifecycle"]
    row["lifecycle"] = (
        None if _missing(lifecycle) else (clean_text(lifecycle) or "").casefold() or None
    )
    company = given["company_name"]
    if is_org and _missing(company):
        company = given["full_name"]
    org = None if _missing(company) else parse_organisation_name(company)
    for col in ("company_name", "legal_form", "company_key", "legal_form_family"):
        row[col] = getattr(org, col) if org else None
    person = (
        parse_person_name(None, None, None)
        if is_org
        else parse_person_name(given["given_name"], given["family_name"], given["full_name"])
    )
    for col in PersonName.__dataclass_fields__:
        row[col] = getattr(person, col)

    row["job_title"] = None if _missing(given["job_title"]) else clean_text(given["job_title"])
    org_key = None if _missing(given["organisation_key"]) else clean_text(given["organisation_key"])
    row["organisation_record_id"] = (
        source_record_id(source.name, org_key) if isinstance(org_key, str) else None
    )
    _contact_points(row, given, country)
    born, born_invalid = _birth_date(given["birth_date"], source)
    row["birth_date"] = born
    row["consents"] = {
        p: c
        for p, spec in source.consent_columns.items()
        if (c := _consent(raw.get(spec.column), spec.opt_out)) is not None
    }
    row["_failed"] = _failed(
        row,
        is_org,
        address.flags,
        born_invalid,
        _implausible(born, today, quality),
        quality.required_for(source.name),
    )
    return row


def _party_type(given: dict[str, Any], id_type: str | None) -> str:
    """``_party_types`` of one row."""
    word = given["party_type"]
    if not _missing(word):
        mapped = PARTY_TYPE_WORDS.get((clean_text(word) or "").casefold())
        if mapped is not None:
            return mapped
    has_person_parts = not _missing(given["given_name"]) or not _missing(given["family_name"])
    full = given["full_name"]
    org_only = not _missing(given["company_name"]) and not has_person_parts and _missing(full)
    by_name = not has_person_parts and not _missing(full) and bool(looks_like_organisation(full))
    return ORGANISATION if org_only or id_type in _ORGANISATION_IDS or by_name else PERSON


def _contact_points(row: dict[str, Any], given: dict[str, Any], country: str) -> None:
    email = None if _missing(given["email"]) else normalise_email(given["email"])
    row["email"] = email.email if email else None
    row["email_key"] = email.email_key if email else None
    row["email_valid"] = email.valid if email else None
    phone = normalise_phone(given["phone"], country)
    row["phone"], row["phone_valid"], row["phone_digits"] = phone.phone, phone.valid, phone.digits
    site = None if _missing(given["website"]) else normalise_website(given["website"])
    row["website"] = site.website if site else None
    domain = email.email.rpartition("@")[2] if email and email.valid else None
    by_email = None if domain is None else email_domain(f"@{domain}")
    row["web_domain"] = (site.domain if site and site.domain else None) or by_email


def _birth_date(value: Any, source: SourceConfig) -> tuple[date | None, bool]:  # noqa: ANN401
    """``parse_dates`` of one value: the date (None if empty or unreadable) and whether it was
    given but is no date in any of the source's formats."""
    if _missing(value):
        return None, False
    text = _TIME_PART.sub("", str(value).strip())
    if text.casefold() in PLACEHOLDERS:
        return None, False
    for fmt in FORMATS[source.date_order]:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if "%y" in fmt and parsed > datetime.now():
            parsed = _years_back(parsed, 100)
        return parsed.date(), False
    return None, True


def _years_back(moment: datetime, years: int) -> datetime:
    """``moment - pd.DateOffset(years=years)``: 29 February becomes the 28th in a common year."""
    year = moment.year - years
    return moment.replace(year=year, day=min(moment.day, monthrange(year, moment.month)[1]))


def _implausible(born: date | None, today: date, quality: QualityConfig) -> bool:
    """``implausible_birth_dates`` of one date."""
    if born is None:
        return False
    midnight = datetime(today.year, today.month, today.day)
    latest = _years_back(midnight, quality.plausibility.min_age_years).date()
    earliest = _years_back(midnight, quality.plausibility.max_age_years).date()
    return born > latest or born < earliest


def _failed(
    row: dict[str, Any],
    is_org: bool,
    address_flags: tuple[str, ...],
    born_invalid: bool,
    born_implausible: bool,
    required: list[str],
) -> dict[str, bool]:
    """``failed_rules`` of one row, in its order of rules."""
    failed = {
        "no_name": _missing(row["company_name"])
        if is_org
        else _missing(row["given_name"]) and _missing(row["family_name"]),
        "email_invalid": _is_false(row["email_valid"]),
        "phone_invalid": _is_false(row["phone_valid"]),
        "national_id_invalid": _is_false(row["national_id_valid"]),
        "birth_date_invalid": born_invalid,
        "birth_date_implausible": born_implausible,
        "no_contact_point": not (
            _is_true(row["email_valid"])
            or _is_true(row["phone_valid"])
            or not _missing(row["street"])
        ),
    }
    for rule in ADDRESS_RULES:
        failed[rule] = rule in address_flags
    for name in required:
        missing = _missing(row[FILLED_BY[name]])
        if name in VALID_BY:
            missing = missing or not _is_true(row[VALID_BY[name]])
        failed[f"required_missing:{name}"] = missing
    return failed


def _frames(rows: list[dict[str, Any]], source: SourceConfig, quality: QualityConfig) -> RowsResult:
    """The records' values and the rows stopped, and (when first read) the two result frames,
    their columns made as ``cleanse_batch`` makes them."""
    n = len(rows)
    rules = list(rows[0]["_failed"])
    failed = {r: np.array([row["_failed"][r] for row in rows], dtype=bool) for r in rules}
    flags, scores, blocking = score(failed, n, quality, source.name)
    names = (*IDENTITY_COLUMNS, *RECORD_COLUMNS)
    blocked = [any(f in blocking for f in fl) for fl in flags]
    keep = [i for i, b in enumerate(blocked) if not b]
    values = [
        {
            c: flags[i]
            if c == "quality_flags"
            else scores[i]
            if c == "quality_score"
            else rows[i][c]
            for c in names
        }
        for i in keep
    ]
    stopped = [i for i, b in enumerate(blocked) if b]
    first = [next(f for f in flags[i] if f in blocking) for i in stopped]
    reasons = [f.split(":")[0] for f in first]
    fields = [_rule_field(f) for f in first]

    def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
        columns: dict[str, Any] = {}
        for col in names:
            if col == "quality_flags":
                column: Any = flags
            elif col == "quality_score":
                column = scores
            else:
                column = [row[col] for row in rows]
                if col in _BOOLEAN_COLUMNS:
                    column = pd.array(column, dtype="boolean")
                elif col in _OBJECT_COLUMNS:
                    column = _objects(column)
            columns[col] = column
        frame = pd.DataFrame(columns, index=pd.RangeIndex(n))
        if not stopped:
            return frame, _empty_quarantine()
        rules_of = np.empty(len(stopped), dtype=object)
        rules_of[:] = [flags[i] for i in stopped]
        quarantine = pd.DataFrame(
            {
                "extract_id": _objects([rows[i]["extract_id"] for i in stopped]),
                "row_number": _objects([rows[i]["row_number"] for i in stopped]),
                "reason": reasons,
                "field": fields,
                "detail": [_detail(flags[i], blocking, source) for i in stopped],
                "rules": rules_of,
            }
        )
        return frame.iloc[keep].reset_index(drop=True), quarantine

    return RowsResult(
        values,
        [
            (int(rows[i]["row_number"]), r, f)
            for i, r, f in zip(stopped, reasons, fields, strict=True)
        ],
        frames,
    )


def _objects(values: list[Any]) -> pd.Series:
    """An object column (a frame infers text from a list, and from an object array, too)."""
    return pd.Series(values, dtype=object)


def _empty_quarantine() -> pd.DataFrame:
    """``quarantine_rows``' frame of no rows: its identity columns are objects, and the
    columns it assigns from empty lists floats."""
    return pd.DataFrame(
        {
            c: _objects([]) if c in ("extract_id", "row_number") else np.zeros(0)
            for c in QUARANTINE_COLUMNS
        }
    )


__all__ = ["DELETED", "RowsResult", "cleanse_rows"]
