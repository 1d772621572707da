"""Dates of birth: the formats the silos use, read in each source's date order, vectorised."""

from __future__ import annotations

from datetime import date

import pandas as pd

from mdm_orchestration.cleansing.text import PLACEHOLDERS
from mdm_orchestration.config import DateOrder

#: Formats tried in order, per source date order. ISO and compact forms are unambiguous and are
#: accepted from every source; slashed/dotted/dashed forms are read in the source's order.
FORMATS: dict[DateOrder, tuple[str, ...]] = {
    DateOrder.MDY: ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y"),
    DateOrder.DMY: ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y"),
    DateOrder.YMD: ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d"),
}


def parse_dates(values: pd.Series, order: DateOrder) -> tuple[pd.Series, pd.Series]:
    """``(dates, invalid)``: parsed ``datetime64`` values (NaT where empty or unreadable) and a
    mask of values that were given but are not a real date in any accepted format
    (``31/02/1985``, ``19xx``, SAP's ``00000000``).

    Two-digit years are read as 19xx/20xx by the usual pivot and then pulled back a century if
    that puts them in the future (a birth date cannot be).
    """
    text = values.astype("string").str.strip()
    # A time part ("1985-03-04T00:00:00", "1985-03-04 00:00") carries no information for a date.
    text = text.str.replace(
        r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$", "", regex=True
    )
    text = text.mask(text.str.casefold().isin(PLACEHOLDERS))
    given = text.notna() & (text != "")
    # Microseconds, not nanoseconds: a nanosecond series ends in 1677 and 2262, and silos do
    # send 0001-01-01 and 9999-12-31 (placeholders: implausible, not a crash of the batch).
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    for fmt in FORMATS[order]:
        todo = given & parsed.isna()
        if not todo.any():
            break
        attempt = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        if "%y" in fmt:
            future = attempt > pd.Timestamp.now()
            attempt = attempt.where(~future, attempt - pd.DateOffset(years=100))
        attempt = attempt.astype("datetime64[us]")
        # Year 0 is no calendar date (a Python date cannot hold it): invalid, as 00000000 is.
        parsed.loc[todo] = attempt.where(attempt.dt.year >= 1)
    return parsed, given & parsed.isna()


def implausible_birth_dates(
    parsed: pd.Series, today: date, min_age_years: int, max_age_years: int
) -> pd.Series:
    """Birth dates in the future, of someone younger than ``min_age_years`` or older than
    ``max_age_years`` on ``today``."""
    latest = pd.Timestamp(today) - pd.DateOffset(years=min_age_years)
    earliest = pd.Timestamp(today) - pd.DateOffset(years=max_age_years)
    return parsed.notna() & ((parsed > latest) | (parsed < earliest))
