"""Match records: the fields the matcher compares, derived from cleansed records.

One row per record with an integer position (dedupe's record id), the source record id and the
comparison fields, each folded to a match form or ``None``. Invalid values (a phone that is not
a number, an id that fails its check) are left out: they are not evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

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


class _Vectorised(Exception):
    """A value the row-wise form leaves to the vectorised one (a date given as text, a flag
    that is not a boolean)."""


def _flag(value: object, default: bool) -> bool:
    """A validity flag as ``astype("boolean").fillna(default)`` reads it."""
    if _missing(value):
        return default
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise _Vectorised


#: Dates pandas holds as timestamps (outside, ``to_datetime`` would not read them the same).
_FIRST_DAY, _LAST_DAY = date(1678, 1, 1), date(2262, 4, 1)


def _day(value: object, fmt: str) -> str | None:
    """``pd.to_datetime(errors="coerce")`` then ``dt.strftime(fmt)``, for one date."""
    if _missing(value):
        return None
    if isinstance(value, date) and _FIRST_DAY <= _as_date(value) <= _LAST_DAY:
        return value.strftime(fmt) or None
    raise _Vectorised


def _as_date(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _fold_or_none(value: object) -> str | None:
    return None if _missing(value) else fold(str(value))


def _present(value: object) -> object:
    return None if _missing(value) else value


def _match_rows(c: pd.DataFrame) -> pd.DataFrame:
    """:func:`match_frame` of a few records, value by value: each pandas operation on a
    column costs a fixed ~0.1 ms, which dominates the service's frames of one proposal and its
    neighbours. The same fields as the vectorised form (``test_match_frame_row_wise``)."""
    n = len(c)
    # The frame's values in one conversion, not a pandas column read per field (about 1 ms
    # of a proposal's neighbours' 34 columns): the same objects ``tolist`` gives.
    values = c.to_numpy(object)
    at = {name: k for k, name in enumerate(c.columns)}
    absent = [None] * n

    def col(name: str) -> list:
        return values[:, at[name]].tolist() if name in at else absent

    rows = zip(*(col(k) for k in CLEANSED_COLUMNS), strict=True)
    return _match_dicts(
        (dict(zip(CLEANSED_COLUMNS, values, strict=True)) for values in rows), c.index
    )


def match_frame_of_values(records: list[dict]) -> pd.DataFrame:
    """:func:`match_frame` of cleansed records given as their values (a dict per record, as
    :class:`~mdm_orchestration.cleansing.rows.RowsResult` holds them; a column a dict lacks is
    missing): the service's proposals, matched without a frame of their cleansed columns."""
    if not records:
        return match_frame(pd.DataFrame(columns=list(CLEANSED_COLUMNS)))
    try:
        return _match_dicts(
            ({k: r.get(k) for k in CLEANSED_COLUMNS} for r in records), pd.RangeIndex(len(records))
        )
    except _Vectorised:
        return match_frame(pd.DataFrame(records, dtype=object))


def _match_dicts(rows: Iterable[dict], index: pd.Index) -> pd.DataFrame:
    """The match frame of records given as dicts of every one of :data:`CLEANSED_COLUMNS`."""
    out: dict[str, list] = {}
    for r in rows:
        party = r["party_type"]
        given, family = _fold_or_none(r["given_name"]), _present(r["family_key"])
        middle = _fold_or_none(r["middle_name"])
        email = _present(r["email_key"]) if _flag(r["email_valid"], False) else None
        web = _present(r["web_domain"])
        if web is not None or party != "organisation":
            domain = web
        else:
            domain = None if _missing(email) else email.rsplit("@", 1)[1]
        number, name, line = r["street_number"], r["street_name"], r["street"]
        street = (
            f"{'' if _missing(number) else number} {name}".strip()
            if not _missing(name)
            else (None if _missing(line) else line)
        )
        unit = _fold_or_none(r["unit"])
        country = "" if _missing(r["country"]) else r["country"]
        postcode = r["postcode"]
        national_id = r["national_id"]
        company = _present(r["company_key"])
        is_org = party == "organisation"
        values = {
            "record_id": r["source_record_id"],
            "source": r["source"],
            "party_type": party,
            "organisation_record_id": _present(r["organisation_record_id"]),
            "given": given,
            "given_key": _present(r["given_key"]),
            "middle_initial": None if _missing(middle) else middle[0],
            "family": family,
            "names": f"{given}|{family}"
            if isinstance(given, str) and isinstance(family, str)
            else None,
            "suffix": _fold_or_none(r["suffix"]),
            "birth": _day(r["birth_date"], "%Y-%m-%d"),
            "birth_year": _day(r["birth_date"], "%Y"),
            "email": email,
            "email_domain": domain,
            "phone": _present(r["phone"]) if _flag(r["phone_valid"], False) else None,
            "street": _fold_or_none(street),
            "unit": None if _missing(unit) else unit.rsplit(" ", 1)[-1],
            "postcode": _present(
                postcode[:5] if country == "US" and isinstance(postcode, str) else postcode
            ),
            "city": _fold_or_none(r["city"]),
            "national_id": _present(national_id) if _flag(r["national_id_valid"], True) else None,
            "national_id_checked": _present(national_id)
            if _flag(r["national_id_valid"], False)
            else None,
            "country": _present(r["country"]),
            "national_id_type": _present(r["national_id_type"]),
            "web_domain": web,
            "phone_digits": _present(r["phone_digits"]),
            "legal_form_family": _present(r["legal_form_family"]),
            "company": company if is_org else None,
            "employer": None if is_org else company,
            "legal_form": _fold_or_none(r["legal_form"]),
            "given_phonetic": _present(r["given_phonetic"]),
            "family_phonetic": _present(r["family_phonetic"]),
            "address_key": _present(r["address_key"]),
        }
        for k, v in values.items():
            out.setdefault(k, []).append(v)
    return pd.DataFrame(out, index=index, dtype=object)


def match_frame(cleansed: pd.DataFrame) -> pd.DataFrame:
    """Comparison fields for every cleansed record (persons and organisations alike)."""
    c = cleansed.reset_index(drop=True)
    if 0 < len(c) < _VECTOR_ROWS:
        try:
            return _match_rows(c)
        except _Vectorised:
            pass
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
