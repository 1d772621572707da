"""Fuzzing the cleansers (RELIABILITY.md row 28): every value cleanser and ``cleanse_batch``
over every file source.

Each cleanser returns its declared shape for any text (never raises, never hangs), and a batch
of random rows ends with every row either cleansed or quarantined with a known reason that
names no customer value. Time-boxed for CI: see ``tests/fuzzing.py`` (``MDM_FUZZ=nightly``).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdm_orchestration.cleansing import cleanse_batch
from mdm_orchestration.cleansing.addresses import (
    Address,
    country_code,
    normalise_postcode,
    normalise_region,
    parse_address,
)
from mdm_orchestration.cleansing.contact import (
    Email,
    Phone,
    Website,
    email_domain,
    normalise_email,
    normalise_phone,
    normalise_website,
    registrable_domain,
)
from mdm_orchestration.cleansing.dates import implausible_birth_dates, parse_dates
from mdm_orchestration.cleansing.ids import NationalId, check_national_id
from mdm_orchestration.cleansing.names import (
    OrganisationName,
    PersonName,
    formal_given_name,
    looks_like_organisation,
    nickname_related,
    parse_organisation_name,
    parse_person_name,
    split_trailing_suffixes,
)
from mdm_orchestration.cleansing.text import clean_text, fold
from mdm_orchestration.config import DateOrder, load_hub_config
from tests.conftest import CONFIG_DIR
from tests.fuzzing import fuzz_settings, no_hang

CONFIG = load_hub_config(CONFIG_DIR)
TODAY = date(2026, 12, 2)
CANARY = "Zqcanary"
COUNTRIES = ["US", "GB", "DE", "FR", "CA", "ES", "NL", "IT", "AU", "JP", "ZZ"]

_NASTY = list(" ,;.'-&/@+()#\"\t\r\n0123456789") + [
    "\x00",
    "\ufeff",
    "\u0308",
    "\u200b",
    "é",
    "ß",
    "İ",
    "ﬁ",
    "中",
    "😀",
    "Mr",
    "Dr.",
    "Jr",
    "III",
    "GmbH",
    "Inc.",
    "S.A.",
    "c/o",
    "mailto:",
    "http://",
    "www.",
    ".co.uk",
    "+1",
    "ext.",
    "00",
    "n/a",
    CANARY,
]
TEXT = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.lists(st.sampled_from(_NASTY) | st.characters(exclude_categories=("Cs",)), max_size=14).map(
        "".join
    ),
)
EMAILS = st.one_of(TEXT, st.emails().map(str), st.builds("{}@{}".format, TEXT, TEXT))
PHONES = st.one_of(TEXT, st.from_regex(r"\+?[0-9 ()\-.]{0,22}(x[0-9]{1,6})?", fullmatch=True))
DATES = st.one_of(
    TEXT,
    st.dates().map(str),
    st.from_regex(r"[0-9]{1,4}[/.\- ][0-9]{1,2}[/.\- ][0-9]{1,4}( [0-9:]{0,8})?", fullmatch=True),
)


def _optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


@fuzz_settings(100, deadline_ms=1000)
@given(value=TEXT)
def test_text_helpers(value):
    with no_hang():
        cleaned = clean_text(value)
        assert _optional_str(cleaned) and (cleaned is None or cleaned == cleaned.strip())
        folded = fold(cleaned)
        assert folded is None or (folded.isascii() and folded == folded.lower())


@fuzz_settings(100, deadline_ms=1000)
@given(given_name=TEXT, family=TEXT, full=TEXT)
def test_person_names(given_name, family, full):
    with no_hang():
        name = parse_person_name(given_name, family, full)
        assert isinstance(name, PersonName)
        assert all(_optional_str(v) for v in name.as_dict().values())
        head, suffixes = split_trailing_suffixes(full)
        assert _optional_str(head) and isinstance(suffixes, list)
        if name.given_name:
            assert isinstance(formal_given_name(name.given_name), str)
            assert isinstance(nickname_related(name.given_name, given_name or ""), bool)


@fuzz_settings(100, deadline_ms=1000)
@given(value=TEXT)
def test_organisation_names(value):
    with no_hang():
        name = parse_organisation_name(value)
        assert isinstance(name, OrganisationName)
        assert all(_optional_str(v) for v in name.as_dict().values())
        assert isinstance(looks_like_organisation(value), bool)


@fuzz_settings(100, deadline_ms=1000)
@given(value=EMAILS, website=TEXT)
def test_emails_and_websites(value, website):
    with no_hang():
        email = normalise_email(value)
        assert isinstance(email, Email)
        assert _optional_str(email_domain(email.email))
        site = normalise_website(website)
        assert isinstance(site, Website)
        assert _optional_str(registrable_domain(website))


@fuzz_settings(100, deadline_ms=1000)
@given(value=PHONES, country=st.sampled_from(COUNTRIES))
def test_phones(value, country):
    with no_hang():
        assert isinstance(normalise_phone(value, country), Phone)


@fuzz_settings(100, deadline_ms=1000)
@given(
    street=TEXT,
    city=TEXT,
    region=TEXT,
    postcode=st.one_of(TEXT, st.from_regex(r"[A-Z0-9 \-]{0,10}", fullmatch=True)),
    country=st.one_of(TEXT, st.sampled_from(COUNTRIES)),
    default=st.sampled_from(COUNTRIES),
)
def test_addresses(street, city, region, postcode, country, default):
    with no_hang():
        address = parse_address(street, city, region, postcode, country, default)
        assert isinstance(address, Address)
        assert isinstance(address.as_dict(), dict)
        assert _optional_str(country_code(country))
        value, valid = normalise_postcode(postcode, default)
        assert _optional_str(value) and valid in (None, True, False)
        assert _optional_str(normalise_region(region, default))


@fuzz_settings(100, deadline_ms=1000)
@given(value=st.one_of(TEXT, PHONES), country=st.sampled_from(COUNTRIES))
def test_national_ids(value, country):
    modules = tuple(CONFIG.quality.national_ids.get(country, ()))
    with no_hang():
        result = check_national_id(value, country, modules)
        assert isinstance(result, NationalId) and result.valid in (None, True, False)


@fuzz_settings(60, deadline_ms=2000)
@given(values=st.lists(DATES, max_size=12), order=st.sampled_from(list(DateOrder)))
def test_dates(values, order):
    series = pd.Series(values, dtype=object)
    with no_hang():
        parsed, invalid = parse_dates(series, order)
        assert len(parsed) == len(invalid) == len(values)
        implausible = implausible_birth_dates(parsed, TODAY, 16, 120)
        assert len(implausible) == len(values)


def _versions(source_name: str, rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "extract_id": [1] * len(rows),
            "row_number": list(range(1, len(rows) + 1)),
            "source_record_id": [f"id{i}" for i in range(len(rows))],
            "source_key": [f"k{i}" for i in range(len(rows))],
            "raw": rows,
            "source_updated_at": [None] * len(rows),
        }
    )


FILE_SOURCES = sorted(n for n, s in CONFIG.sources.items() if s.written_by.value == "files")


@st.composite
def raw_rows(draw: st.DrawFn, source_name: str) -> list[dict]:
    """Rows as the readers store them (every column a string or None), values of each column
    drawn from the strategy that fits the canonical field it maps to, or from any text."""
    source = CONFIG.sources[source_name]
    fields = {}
    for canonical, mapping in source.mapping.items():
        for column in mapping.source_columns:
            fields[column] = {
                "email": EMAILS,
                "phone": PHONES,
                "birth_date": DATES,
                "national_id": PHONES,
            }.get(canonical, TEXT)
    for column in source.required_columns:
        fields.setdefault(column, TEXT)
    row = st.fixed_dictionaries({c: st.one_of(s, TEXT) for c, s in fields.items()})
    return draw(st.lists(row, min_size=1, max_size=8))


@pytest.mark.parametrize("source_name", FILE_SOURCES)
def test_cleanse_batch_cleanses_or_quarantines_every_row(source_name):
    source = CONFIG.sources[source_name]

    @fuzz_settings(25, deadline_ms=5000)
    @given(rows=raw_rows(source_name))
    def check(rows):
        with no_hang(30):
            result = cleanse_batch(_versions(source_name, rows), source, CONFIG.quality, TODAY)
        assert len(result.records) + len(result.quarantine) == len(rows)
        numbers = sorted([*result.records["row_number"], *result.quarantine["row_number"]])
        assert numbers == list(range(1, len(rows) + 1))  # each row exactly once
        assert set(result.records["party_type"]) <= {"person", "organisation"}
        assert result.records["quality_score"].between(0, 1).all()
        for q in result.quarantine.to_dict("records"):
            assert q["reason"] and CANARY not in f"{q['reason']}{q['field']}{q['detail']}"

    check()
