"""Cleanse a batch of one source's record versions into the canonical customer model.

``cleanse_batch`` is pure: raw values in (as stored by ingestion), cleansed records and
quarantine rows out. Each field's cleanser runs once per distinct value in the batch (silos
repeat cities, names and street lines), which is where the speed comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
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
from mdm_orchestration.cleansing.dates import implausible_birth_dates, parse_dates
from mdm_orchestration.cleansing.ids import check_national_id
from mdm_orchestration.cleansing.names import (
    PersonName,
    looks_like_organisation,
    parse_organisation_name,
    parse_person_name,
)
from mdm_orchestration.cleansing.quality import failed_rules, quarantine_rows, score
from mdm_orchestration.cleansing.text import clean_text, map_rows_unique, map_unique
from mdm_orchestration.config import CANONICAL_FIELDS, QualityConfig, SourceConfig
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.hub.tables import ORGANISATION, PERSON

#: The words sources use for a party type, folded, and the party type each means.
PARTY_TYPE_WORDS = {
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
    "website",
    "web_domain",
    "phone_digits",
    "legal_form_family",
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
        inputs["party_type"], lambda v: PARTY_TYPE_WORDS.get((clean_text(v) or "").casefold())
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


class _Columns(dict[str, Any]):
    """The cleansed columns while :func:`cleanse_batch` computes them, made into one frame at
    the end. Inserting ~50 columns into a DataFrame one at a time costs a fixed ~15 ms,
    more than the cleansing of a small batch (``POST /v1/match`` cleanses one row); a column
    read back (``out["country"]``) is a Series on the batch's index, inferred as the frame
    would infer it."""

    def __init__(self, index: pd.Index) -> None:
        super().__init__()
        self.index = index

    def __getitem__(self, name: str) -> pd.Series:
        value = super().__getitem__(name)
        if isinstance(value, pd.Series) and value.index.equals(self.index):
            return value
        return pd.DataFrame({name: value}, index=self.index)[name]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(self.items()), index=self.index)


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
        return _with_deletions(versions, deleted, source, quality, today)
    inputs = canonical_inputs(versions["raw"], source)
    columns = _Columns(versions.index)
    for col in ("extract_id", "row_number", "source_record_id", "source_key", "source_updated_at"):
        columns[col] = versions[col]
    columns["source"] = source.name
    out: Any = columns  # the helpers below set and read its columns as a frame's
    # Addresses first: the country decides phones' and ids' rules.
    address_flags = _addresses(out, inputs, source)
    country = out["country"].fillna(source.default_country)
    _national_ids(out, inputs, country, quality)
    is_org = _party(out, inputs)
    _organisations(out, inputs, is_org)
    _person_names(out, inputs, is_org)
    _affiliations(out, inputs, source)
    _contact_points(out, inputs, country)
    born_invalid, born_implausible = _birth_dates(out, inputs, source, quality, today)
    out["consents"] = _consents(versions["raw"], source)
    out = columns.frame()

    failed = failed_rules(
        out,
        is_org,
        address_flags,
        born_invalid,
        born_implausible,
        quality.required_for(source.name),
    )
    flags, scores, blocking = score(failed, len(versions), quality, source.name)
    out["quality_flags"] = flags
    out["quality_score"] = scores
    blocked, quarantine = quarantine_rows(out, flags, blocking, source)
    records = out.loc[~blocked, [*IDENTITY_COLUMNS, *RECORD_COLUMNS]]
    return CleanseResult(
        records=records.reset_index(drop=True), quarantine=quarantine.reset_index(drop=True)
    )


def _with_deletions(
    versions: pd.DataFrame,
    deleted: pd.Series,
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
) -> CleanseResult:
    """The rest cleansed; each version the source marks deleted quarantined as :data:`DELETED`."""
    rest = cleanse_batch(versions[~deleted], source, quality, today)
    gone = versions.loc[deleted, ["extract_id", "row_number"]].copy()
    gone["reason"] = DELETED
    gone["field"] = None
    gone["detail"] = f"the source marks the record deleted (column {source.deleted_flag.column})"  # type: ignore[union-attr]
    gone["rules"] = [[] for _ in range(len(gone))]
    quarantine = pd.concat([rest.quarantine, gone], ignore_index=True)
    return CleanseResult(records=rest.records, quarantine=quarantine)


#: The parsed address's parts, as cleansed columns.
ADDRESS_COLUMNS = (
    "street_number",
    "street_name",
    "unit",
    "street",
    "city",
    "region",
    "postcode",
    "country",
    "address_key",
)


def _addresses(
    out: pd.DataFrame, inputs: pd.DataFrame, source: SourceConfig
) -> list[tuple[str, ...]]:
    """The address columns of ``out``; returns each address's quality flags."""
    address_parts = map_rows_unique(
        inputs[["street", "city", "region", "postcode", "country"]],
        lambda s, c, r, p, k: parse_address(s, c, r, p, k, source.default_country),
    )
    for col in ADDRESS_COLUMNS:
        out[col] = [getattr(a, col) for a in address_parts]
    return [a.flags for a in address_parts]


def _national_ids(
    out: pd.DataFrame, inputs: pd.DataFrame, country: pd.Series, quality: QualityConfig
) -> None:
    ids = map_rows_unique(
        pd.DataFrame({"v": inputs["national_id"], "c": country}),
        lambda v, c: check_national_id(v, c, tuple(quality.national_ids.get(c, ()))),
    )
    out["national_id"] = [i.national_id for i in ids]
    out["national_id_type"] = [i.id_type for i in ids]
    out["national_id_valid"] = pd.array([i.valid for i in ids], dtype="boolean")


def _party(out: pd.DataFrame, inputs: pd.DataFrame) -> np.ndarray:
    """Party type and lifecycle; returns which rows are organisations."""
    party = _party_types(inputs, out["national_id_type"])
    out["party_type"] = party
    out["lifecycle"] = map_unique(
        inputs["lifecycle"], lambda v: (clean_text(v) or "").casefold() or None
    )
    return (party == ORGANISATION).to_numpy()


def _organisations(out: pd.DataFrame, inputs: pd.DataFrame, is_org: np.ndarray) -> None:
    # Organisation rows named only by full_name (ERP's NAME1) carry it as their company name.
    company_raw = inputs["company_name"].where(
        ~(is_org & inputs["company_name"].isna().to_numpy()), inputs["full_name"]
    )
    orgs = map_unique(company_raw, parse_organisation_name)
    for col in ("company_name", "legal_form", "company_key", "legal_form_family"):
        out[col] = [getattr(o, col) if o else None for o in orgs]


def _person_names(out: pd.DataFrame, inputs: pd.DataFrame, is_org: np.ndarray) -> None:
    person_inputs = inputs[["given_name", "family_name", "full_name"]].where(
        pd.Series(~is_org, index=inputs.index), None
    )
    names = map_rows_unique(person_inputs, parse_person_name)
    for col in PersonName.__dataclass_fields__:
        out[col] = [getattr(p, col) for p in names]


def _affiliations(out: pd.DataFrame, inputs: pd.DataFrame, source: SourceConfig) -> None:
    """Job title, and the source record of the organisation the party belongs to."""
    out["job_title"] = map_unique(inputs["job_title"], clean_text)
    org_keys = map_unique(inputs["organisation_key"], clean_text)
    out["organisation_record_id"] = [
        source_record_id(source.name, k) if isinstance(k, str) else None for k in org_keys
    ]


def _contact_points(out: pd.DataFrame, inputs: pd.DataFrame, country: pd.Series) -> None:
    emails = map_unique(inputs["email"], normalise_email)
    out["email"] = [e.email if e else None for e in emails]
    out["email_key"] = [e.email_key if e else None for e in emails]
    out["email_valid"] = pd.array([e.valid if e else None for e in emails], dtype="boolean")
    phones = map_rows_unique(
        pd.DataFrame({"v": inputs["phone"], "c": country}), lambda v, c: normalise_phone(v, c)
    )
    out["phone"] = [p.phone for p in phones]
    out["phone_valid"] = pd.array([p.valid for p in phones], dtype="boolean")
    out["phone_digits"] = [p.digits for p in phones]
    # The web domain: the website's, else a valid business email address's (per domain, once).
    sites = map_unique(inputs["website"], normalise_website)
    out["website"] = [w.website if w else None for w in sites]
    domains = pd.Series(
        [e.email.rpartition("@")[2] if e and e.valid else None for e in emails],
        index=inputs.index,
        dtype=object,
    )
    by_email = map_unique(domains, lambda d: email_domain(f"@{d}"))
    out["web_domain"] = [
        (w.domain if w and w.domain else None) or m for w, m in zip(sites, by_email, strict=True)
    ]


def _birth_dates(
    out: pd.DataFrame,
    inputs: pd.DataFrame,
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
) -> tuple[pd.Series, pd.Series]:
    """The birth date column; returns which dates are invalid and which implausible."""
    born, born_invalid = parse_dates(inputs["birth_date"], source.date_order)
    born_implausible = implausible_birth_dates(
        born, today, quality.plausibility.min_age_years, quality.plausibility.max_age_years
    )
    out["birth_date"] = [d.date() if d == d else None for d in born]
    return born_invalid, born_implausible


def _consents(raw: pd.Series, source: SourceConfig) -> list[dict[str, bool]]:
    consent_cols = source.consent_columns
    return [
        {
            p: c
            for p, spec in consent_cols.items()
            if (c := _consent(r.get(spec.column), spec.opt_out)) is not None
        }
        for r in raw
    ]


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
