"""Each cleanser on real-world shaped inputs (input -> expected), plus idempotence properties."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm_orchestration.cleansing.addresses import country_code, parse_address
from mdm_orchestration.cleansing.contact import normalise_email, normalise_phone
from mdm_orchestration.cleansing.dates import implausible_birth_dates, parse_dates
from mdm_orchestration.cleansing.ids import check_national_id
from mdm_orchestration.cleansing.names import (
    formal_given_name,
    looks_like_organisation,
    parse_organisation_name,
    parse_person_name,
)
from mdm_orchestration.cleansing.text import clean_text, fold
from mdm_orchestration.config import DateOrder

US_IDS = ("us.ssn", "us.itin", "us.ein")


@pytest.mark.parametrize(
    ("kwargs", "title", "given", "middle", "family", "suffix", "display"),
    [
        ({"full": "SMITH, JOHN A."}, None, "John", "A.", "Smith", None, "John A. Smith"),
        (
            {"full": "Dr. Mary-Ann O'Neil Jr"},
            "Dr.",
            "Mary-Ann",
            None,
            "O'Neil",
            "Jr",
            "Mary-Ann O'Neil Jr",
        ),
        ({"full": "mcdonald, ronald"}, None, "Ronald", None, "McDonald", None, "Ronald McDonald"),
        (
            {"full": "Jean-Luc de la Fontaine"},
            None,
            "Jean-Luc",
            None,
            "de la Fontaine",
            None,
            "Jean-Luc de la Fontaine",
        ),
        ({"full": "JOSÉ ÁLVAREZ III"}, None, "José", None, "Álvarez", "III", "José Álvarez III"),
        (
            {"given": "BILL", "family": "MCDONALD"},
            None,
            "Bill",
            None,
            "McDonald",
            None,
            "Bill McDonald",
        ),
        ({"given": "Anna", "family": "LEE"}, None, "Anna", None, "Lee", None, "Anna Lee"),
        (
            {"given": "Mary", "family": "Smith Jr"},
            None,
            "Mary",
            None,
            "Smith",
            "Jr",
            "Mary Smith Jr",
        ),
        (
            {"given": "  peggy ", "family": "o'brien"},
            None,
            "Peggy",
            None,
            "O'Brien",
            None,
            "Peggy O'Brien",
        ),
        (
            {"given": "DeShawn", "family": "van der Berg"},
            None,
            "DeShawn",
            None,
            "van der Berg",
            None,
            "DeShawn van der Berg",
        ),
    ],
)
def test_person_names(kwargs, title, given, middle, family, suffix, display):
    name = parse_person_name(**kwargs)
    assert (name.title, name.given_name, name.middle_name, name.family_name, name.suffix) == (
        title,
        given,
        middle,
        family,
        suffix,
    )
    assert name.full_name == display


def test_name_keys_fold_accents_and_map_nicknames():
    assert parse_person_name(given="José", family="Álvarez").family_key == "alvarez"
    assert parse_person_name(given="José", family="Álvarez").given_key == "jose"
    assert parse_person_name(given="x", family="O'Neil").family_key == "oneil"
    assert parse_person_name(given="x", family="de la Fontaine").family_key == "delafontaine"
    # Nicknames go to a formal name; formal names stay themselves.
    pairs = {
        "peggy": "margaret",
        "betty": "elizabeth",
        "beth": "elizabeth",
        "jim": "james",
        "mike": "michael",
        "dick": "richard",
        "tony": "anthony",
        "kate": "katherine",
        "jon": "john",
    }
    for nick, formal in pairs.items():
        assert formal_given_name(nick) == formal, nick
    for formal in ("john", "mary", "michael", "anna", "william", "elizabeth", "james"):
        assert formal_given_name(formal) == formal
    assert parse_person_name(given="Peggy", family="Smith").given_key == "margaret"
    assert parse_person_name(given="Margaret", family="Smith").given_key == "margaret"
    a, b = parse_person_name(given="Schmidt", family="Smith"), parse_person_name(full="Smyth, x")
    assert a.family_phonetic == b.family_phonetic == "SM0"


def test_empty_and_placeholder_names():
    assert parse_person_name().full_name is None
    assert parse_person_name(given="  ", family="N/A").full_name is None
    assert parse_person_name(full="unknown").family_name is None


@pytest.mark.parametrize(
    ("raw", "display", "legal", "key"),
    [
        ("ACME HOLDINGS INC", "Acme Holdings Inc", "Inc", "acme holdings"),
        ("Acme Holdings, Inc.", "Acme Holdings Inc", "Inc", "acme holdings"),
        ("Acme Holdings Incorporated", "Acme Holdings Inc", "Inc", "acme holdings"),
        ("Smith & Sons Ltd.", "Smith & Sons Ltd", "Ltd", "smith and sons"),
        ("Widgets Limited", "Widgets Ltd", "Ltd", "widgets"),
        ("Müller GmbH", "Müller GmbH", "GmbH", "muller"),
        ("Foo S.A.", "Foo S.A.", "S.A.", "foo"),
        ("Bar L.L.C.", "Bar LLC", "LLC", "bar"),
        ("baz plc", "Baz PLC", "PLC", "baz"),
        ("IBM", "IBM", None, "ibm"),
        ("BANK OF AMERICA CORP", "Bank of America Corp", "Corp", "bank of america"),
        ("HANSON-POTTER AND SONS", "Hanson-Potter and Sons", None, "hanson potter and sons"),
    ],
)
def test_organisation_names(raw, display, legal, key):
    org = parse_organisation_name(raw)
    assert (org.company_name, org.legal_form, org.company_key) == (display, legal, key)


def test_person_or_organisation_when_the_source_does_not_say():
    assert looks_like_organisation("ACME HOLDINGS INC")
    assert looks_like_organisation("BLUE RIVER LOGISTICS GROUP")
    assert not looks_like_organisation("JOHN SMITH")
    assert not looks_like_organisation("Mary O'Neil")


@pytest.mark.parametrize(
    ("raw", "email", "key", "valid"),
    [
        (
            "John.Smith+shop@GoogleMail.com",
            "john.smith+shop@googlemail.com",
            "johnsmith@gmail.com",
            True,
        ),
        ("j.o.h.n@gmail.com", "j.o.h.n@gmail.com", "john@gmail.com", True),
        (" ANNA@Example.COM ", "anna@example.com", "anna@example.com", True),
        ("a.b+x@yahoo.com", "a.b+x@yahoo.com", "a.b@yahoo.com", True),  # dots matter at Yahoo
        ("mailto:bob@example.org", "bob@example.org", "bob@example.org", True),
        ("bad@@example.com", "bad@@example.com", None, False),
        ("no-at-sign.example.com", "no-at-sign.example.com", None, False),
        ("foo@localhost", "foo@localhost", None, False),
        ("n/a", None, None, None),
        (None, None, None, None),
    ],
)
def test_emails(raw, email, key, valid):
    out = normalise_email(raw)
    assert (out.email, out.email_key, out.valid) == (email, key, valid)


@pytest.mark.parametrize(
    ("raw", "country", "phone", "valid"),
    [
        ("(415) 555-2671", "US", "+14155552671", True),
        ("415.555.2671", "US", "+14155552671", True),
        ("+1 415 555 2671", "GB", "+14155552671", True),
        ("1-415-555-2671", "US", "+14155552671", True),
        ("020 7946 0958", "GB", "+442079460958", True),
        ("020 7946 0958", "US", "020 7946 0958", False),  # flagged, kept as given
        ("555-1234", "US", "555-1234", False),
        ("12", "US", "12", False),
        ("", "US", None, None),
    ],
)
def test_phones(raw, country, phone, valid):
    out = normalise_phone(raw, country)
    assert (out.phone, out.valid) == (phone, valid)


@pytest.mark.parametrize(
    ("args", "expected", "flags"),
    [
        (
            ("4821 north elm avenue, # 12", "SPRINGFIELD", "Illinois", "62704-1234", "USA"),
            {
                "street_number": "4821",
                "street_name": "N Elm Ave",
                "unit": "# 12",
                "street": "4821 N Elm Ave # 12",
                "city": "Springfield",
                "region": "IL",
                "postcode": "62704-1234",
                "country": "US",
                "address_key": "4821|n elm ave|12|62704",
            },
            (),
        ),
        (
            ("123 Main Street, Apt 12", "boston", "MA", "2134", ""),
            {
                "street": "123 Main St Apt 12",
                "postcode": "02134",
                "country": "US",
                "address_key": "123|main st|12|02134",
            },
            (),
        ),
        (
            ("77 W. MAPLE RD STE 200", "Austin", "tx", "78701", "United States"),
            {"street": "77 W Maple Rd Ste 200", "region": "TX"},
            (),
        ),
        (
            ("PO Box 55", "Austin", "TX", "78701", "U.S.A."),
            {"street": "PO Box 55", "street_number": None, "address_key": None},
            (),
        ),
        (
            ("10 Downing Street", "London", "", "SW1A 2AA", "UK"),
            {"street": "10 Downing Street", "country": "GB", "postcode": "SW1A 2AA"},
            (),
        ),
        (
            ("Hauptstr. 5", "BERLIN", "", "1011", "Deutschland"),
            {"city": "Berlin", "country": "DE"},
            ("postcode_invalid",),
        ),
        (("1 Main St", "X", "", "ABCDE", ""), {"postcode": "ABCDE"}, ("postcode_invalid",)),
        (("Main", "X", "", "", "Narnia"), {"country": None}, ("country_unknown",)),
        (("Behind the old mill", "Springfield", "IL", "62704", "US"), {}, ("address_unparsed",)),
        ((None, None, None, None, None), {"street": None, "country": None}, ()),
    ],
)
def test_addresses(args, expected, flags):
    address = parse_address(*args, default_country="US")
    parts = address.as_dict()
    assert {k: parts[k] for k in expected} == expected
    assert address.flags == flags


def test_same_door_same_address_key():
    a = parse_address("123 Main Street Apt 4B", "Boston", "MA", "02134-1111", "US", "US")
    b = parse_address("123 MAIN ST UNIT 4B", "BOSTON", "Massachusetts", "02134", "USA", "US")
    c = parse_address("123 main st #4b", "boston", "ma", "2134", "", "US")
    assert a.address_key == b.address_key == c.address_key == "123|main st|4b|02134"


def test_countries():
    assert [
        country_code(v)
        for v in ("USA", "United States", "us", "U.S.A.", "Germany", "UK", "France", "Atlantis")
    ] == [
        "US",
        "US",
        "US",
        "US",
        "DE",
        "GB",
        "FR",
        None,
    ]


def test_birth_dates_per_source_order():
    values = pd.Series(
        [
            "03/04/1985",
            "1985-03-04",
            "19850304",
            "4.3.1985",
            "3/4/85",
            "1985-03-04T00:00:00Z",
            "31/02/1985",
            "02/30/1979",
            "1985-13-45",
            "19xx",
            "00000000",
            "unknown",
            "",
            None,
        ]
    )
    mdy, bad_mdy = parse_dates(values, DateOrder.MDY)
    dmy, bad_dmy = parse_dates(values, DateOrder.DMY)
    ymd, bad_ymd = parse_dates(values, DateOrder.YMD)
    as_dates = lambda s: [d.date() if d == d else None for d in s]  # noqa: E731
    assert as_dates(mdy)[:6] == [date(1985, 3, 4)] * 3 + [date(1985, 4, 3)] + [date(1985, 3, 4)] * 2
    assert as_dates(dmy)[:6] == [
        date(1985, 4, 3),
        date(1985, 3, 4),
        date(1985, 3, 4),
        date(1985, 3, 4),
        date(1985, 4, 3),
        date(1985, 3, 4),
    ]
    assert as_dates(ymd)[:3] == [None, date(1985, 3, 4), date(1985, 3, 4)]
    # Impossible dates are invalid; placeholders and blanks are missing, not invalid.
    assert bad_mdy.tolist() == [False] * 6 + [True] * 5 + [False] * 3
    assert bad_dmy.tolist() == [False] * 6 + [True] * 5 + [False] * 3
    assert bad_ymd.tolist()[:5] == [True, False, False, True, True]


def test_implausible_birth_dates():
    born = pd.Series(pd.to_datetime(["1985-03-04", "2030-01-01", "1850-01-01", "2020-01-01", None]))
    flags = implausible_birth_dates(born, date(2026, 11, 23), min_age_years=14, max_age_years=120)
    assert flags.tolist() == [False, True, True, True, False]


@pytest.mark.parametrize(
    ("raw", "country", "modules", "expected"),
    [
        ("123-45-6789", "US", US_IDS, ("123-45-6789", "us.ssn", True)),
        ("123456789", "US", US_IDS, ("123-45-6789", "us.ssn", True)),
        ("666-12-3456", "US", US_IDS, ("666123456", None, False)),  # area 666 is never issued
        ("000-12-3456", "US", US_IDS, ("000123456", None, False)),
        ("078-05-1120", "US", US_IDS, ("078051120", None, False)),  # the famous wallet SSN
        ("12-3456789", "US", US_IDS, ("12-3456789", "us.ein", True)),
        ("1234", "FR", (), ("1234", None, None)),  # no rule configured: kept, not judged
        (None, "US", US_IDS, (None, None, None)),
    ],
)
def test_national_ids(raw, country, modules, expected):
    out = check_national_id(raw, country, modules)
    assert (out.national_id, out.id_type, out.valid) == expected


# --- idempotence: cleansing a cleansed value changes nothing ---------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzàáâäçèéêëíîïñóôöúûüøåæ"
names = st.text(alphabet=_LETTERS + _LETTERS.upper(), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(given_name=names, family=names)
def test_person_name_idempotent(given_name, family):
    first = parse_person_name(given=given_name, family=family)
    if first.full_name is None:
        return
    again = parse_person_name(given=first.given_name, family=first.family_name)
    assert (again.given_name, again.family_name, again.given_key, again.family_key) == (
        first.given_name,
        first.family_name,
        first.given_key,
        first.family_key,
    )


@settings(max_examples=150, deadline=None)
@given(
    local=st.from_regex(r"[A-Za-z0-9._+\-]{1,20}", fullmatch=True),
    domain=st.sampled_from(["gmail.com", "Example.org", "yahoo.com", "googlemail.com"]),
)
def test_email_idempotent(local, domain):
    first = normalise_email(f"{local}@{domain}")
    again = normalise_email(first.email)
    assert again == first


@settings(max_examples=150, deadline=None)
@given(area=st.sampled_from(["415", "212", "617", "305"]), rest=st.integers(2_000_000, 9_999_999))
def test_phone_idempotent(area, rest):
    first = normalise_phone(f"({area}) {str(rest)[:3]}-{str(rest)[3:]}", "US")
    assert normalise_phone(first.phone, "US") == first


@settings(max_examples=100, deadline=None)
@given(
    number=st.integers(1, 99999),
    street=st.sampled_from(["Main Street", "north elm avenue", "W. Maple Rd", "Lake Shore Drive"]),
    unit=st.sampled_from(["", " Apt 4", " Suite 200"]),
    postcode=st.from_regex(r"[0-9]{5}", fullmatch=True),
)
def test_address_idempotent(number, street, unit, postcode):
    first = parse_address(
        f"{number} {street}{unit}", "springfield", "Illinois", postcode, "USA", "US"
    )
    again = parse_address(
        first.street, first.city, first.region, first.postcode, first.country, "US"
    )
    assert again.as_dict() == first.as_dict()


@settings(max_examples=100, deadline=None)
@given(
    base=st.sampled_from(["Acme Holdings", "SMITH & SONS", "blue river logistics"]),
    form=st.sampled_from(["Inc.", "LLC", "Ltd", "GmbH", "", "Incorporated"]),
)
def test_organisation_idempotent(base, form):
    first = parse_organisation_name(f"{base} {form}".strip())
    assert parse_organisation_name(first.company_name) == first


def test_text_helpers():
    assert clean_text("  Ann\t  Lee \n") == "Ann Lee"
    assert clean_text("N/A") is None and clean_text(float("nan")) is None
    assert fold("Zoë O'Brien-Smith") == "zoe o brien smith"
