"""Match records: the fields the matcher compares, derived from cleansed records.

One row per record with an integer position (dedupe's record id), the source record id and the
comparison fields, each folded to a match form or ``None``. Invalid values (a phone that is not
a number, an id that fails its check) are left out: they are not evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mdm_orchestration.cleansing.text import fold

PERSON_FIELDS = (
    "given",
    "given_key",
    "middle_initial",
    "family",
    "names",
    "suffix",
    "birth",
    "email",
    "phone",
    "street",
    "unit",
    "postcode",
    "city",
    "national_id",
)
ORGANISATION_FIELDS = (
    "company",
    "legal_form",
    "email",
    "email_domain",
    "phone",
    "street",
    "unit",
    "postcode",
    "city",
    "national_id",
)
#: Cleansed columns the matcher reads.
CLEANSED_COLUMNS = (
    "source_record_id",
    "source",
    "source_key",
    "party_type",
    "given_name",
    "middle_name",
    "family_name",
    "suffix",
    "given_key",
    "family_key",
    "given_phonetic",
    "family_phonetic",
    "company_key",
    "legal_form",
    "organisation_record_id",
    "email_key",
    "email_valid",
    "phone",
    "phone_valid",
    "street_number",
    "street_name",
    "unit",
    "street",
    "postcode",
    "city",
    "country",
    "address_key",
    "birth_date",
    "national_id",
    "national_id_valid",
    "national_id_type",
    "web_domain",
    "phone_digits",
    "legal_form_family",
)


def _missing(value: object) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or value == ""
        or (isinstance(value, float) and value != value)
    )


#: Below this many records a column is folded value by value (the service's one-record frames:
#: the vectorised form's fixed cost is larger there).
_VECTOR_ROWS = 64


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """:func:`_missing` over an object array: pandas' missing values and empty strings."""
    missing = pd.isna(values)
    rest = np.flatnonzero(~missing)
    missing[rest] = values[rest] == ""
    return missing


def _none(series: pd.Series) -> pd.Series:
    """Object series with None for missing/empty values (dedupe's notion of missing).

    Built explicitly as ``object``: pandas 3 would infer its string dtype and turn None into NaN.
    """
    if len(series) < _VECTOR_ROWS:
        return pd.Series(
            [None if _missing(v) else v for v in series], index=series.index, dtype=object
        )
    values = np.array(series.to_numpy(object), dtype=object, copy=True)
    values[_missing_mask(values)] = None
    return pd.Series(values, index=series.index, dtype=object)


def _map(series: pd.Series, fn) -> pd.Series:  # noqa: ANN001
    """``fn`` over present values, None elsewhere, as an object series (``fn`` once per
    distinct value)."""
    if len(series) < _VECTOR_ROWS:
        return pd.Series(
            [None if _missing(v) else fn(v) for v in series], index=series.index, dtype=object
        )
    values = series.to_numpy(object)
    present = np.flatnonzero(~_missing_mask(values))
    codes, distinct = pd.factorize(values[present])
    mapped = np.empty(len(distinct), dtype=object)
    mapped[:] = [fn(v) for v in distinct]
    out = np.full(len(values), None, dtype=object)
    out[present] = mapped[codes]
    return pd.Series(out, index=series.index, dtype=object)


def _folded(series: pd.Series) -> pd.Series:
    return _map(series, lambda v: fold(str(v)))


def _optional(c: pd.DataFrame, column: str) -> pd.Series:
    if column not in c:
        return pd.Series([None] * len(c), index=c.index, dtype=object)
    return _none(c[column])


def match_frame(cleansed: pd.DataFrame) -> pd.DataFrame:
    """Comparison fields for every cleansed record (persons and organisations alike)."""
    c = cleansed.reset_index(drop=True)
    # Columns gathered in a dict and framed once: a column assigned into a frame costs about
    # a millisecond of pandas overhead, which dominates the one-record frames of the service.
    out: dict[str, pd.Series] = {}
    out["record_id"] = c["source_record_id"].astype(object)
    out["source"] = c["source"].astype(object)
    out["party_type"] = c["party_type"].astype(object)
    out["organisation_record_id"] = _none(c["organisation_record_id"])
    out["given"] = _folded(c["given_name"])
    out["given_key"] = _none(c["given_key"])
    out["middle_initial"] = _map(_folded(c["middle_name"]), lambda v: v[0])
    out["family"] = _none(c["family_key"])
    out["names"] = pd.Series(
        [
            f"{g}|{f}" if isinstance(g, str) and isinstance(f, str) else None
            for g, f in zip(out["given"], out["family"], strict=True)
        ],
        index=c.index,
        dtype=object,
    )
    out["suffix"] = _folded(c["suffix"])
    birth = pd.to_datetime(c["birth_date"], errors="coerce")
    out["birth"] = _none(birth.dt.strftime("%Y-%m-%d"))
    out["birth_year"] = _none(birth.dt.strftime("%Y"))
    email_ok = c["email_valid"].astype("boolean").fillna(False).to_numpy(bool)
    out["email"] = _none(c["email_key"].where(email_ok))
    out["email_domain"] = _map(out["email"], lambda v: v.rsplit("@", 1)[1])
    # An organisation's domain: its website's, else a business email's (cleansing leaves
    # free-mail providers out of ``web_domain``).
    web = _optional(c, "web_domain")
    out["email_domain"] = web.where(
        web.notna() | (c["party_type"] != "organisation"), out["email_domain"]
    )
    phone_ok = c["phone_valid"].astype("boolean").fillna(False).to_numpy(bool)
    out["phone"] = _none(c["phone"].where(phone_ok))
    # Parsed (US) streets as number + name; elsewhere the street line as written.
    street = [
        (
            f"{'' if _missing(n) else n} {name}".strip()
            if not _missing(name)
            else (None if _missing(line) else line)
        )
        for n, name, line in zip(c["street_number"], c["street_name"], c["street"], strict=True)
    ]
    out["street"] = _folded(pd.Series(street, index=c.index, dtype=object))
    out["unit"] = _map(_folded(c["unit"]), lambda v: v.rsplit(" ", 1)[-1])
    country = c["country"].fillna("")
    postcode = c["postcode"].astype(object)
    out["postcode"] = _none(
        pd.Series(
            [
                p[:5] if (k == "US" and isinstance(p, str)) else p
                for p, k in zip(postcode, country, strict=True)
            ],
            index=c.index,
            dtype=object,
        )
    )
    out["city"] = _folded(c["city"])
    # An id no rule could judge (no check configured for its country) still identifies; one
    # that failed its check does not.
    id_ok = c["national_id_valid"].astype("boolean").fillna(True).to_numpy(bool)
    out["national_id"] = _none(c["national_id"].where(id_ok))
    # An id that passed its check: two of them that differ are two people.
    checked = c["national_id_valid"].astype("boolean").fillna(False).to_numpy(bool)
    out["national_id_checked"] = _none(c["national_id"].where(checked))
    out["country"] = _none(c["country"])
    out["national_id_type"] = _optional(c, "national_id_type")
    # Cleansed before these columns existed (an older version's rows): missing.
    out["web_domain"] = _optional(c, "web_domain")
    out["phone_digits"] = _optional(c, "phone_digits")
    out["legal_form_family"] = _optional(c, "legal_form_family")
    out["company"] = _none(c["company_key"].where(c["party_type"] == "organisation"))
    out["employer"] = _none(c["company_key"].where(c["party_type"] != "organisation"))
    out["legal_form"] = _folded(c["legal_form"])
    out["given_phonetic"] = _none(c["given_phonetic"])
    out["family_phonetic"] = _none(c["family_phonetic"])
    out["address_key"] = _none(c["address_key"])
    return pd.DataFrame(out, index=c.index)
