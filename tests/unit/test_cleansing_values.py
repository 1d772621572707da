"""Each cleanser on real-world shaped inputs (input -> expected), plus idempotence properties."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm_orchestration.cleansing.addresses import country_code, parse_address
from mdm_orchestration.cleansing.contact import (
    email_domain,
    normalise_email,
    normalise_phone,
    normalise_website,
)
from mdm_orchestration.cleansing.dates import implausible_birth_dates, parse_dates
from mdm_orchestration.cleansing.ids import check_national_id
from mdm_orchestration.cleansing.names import (
    LEGAL_FORM_FAMILIES,
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


# -- Evidence kept for matching (issue 16): websites and web domains, invalid phones' digits,
# -- suffixes in either name column, legal-form families.


@pytest.mark.parametrize(
    ("raw", "website", "domain"),
    [
        ("https://www.shop.acme.co.uk/about", "www.shop.acme.co.uk/about", "acme.co.uk"),
        ("HTTPS://WWW.Acme.co.uk/About/", "www.acme.co.uk/About", "acme.co.uk"),
        ("acme.com", "acme.com", "acme.com"),
        ("www.acme.com/", "www.acme.com", "acme.com"),
        ("http://acme.com:8080/x?y=1#top", "acme.com:8080/x?y=1", "acme.com"),
        ("https://acme.com:443", "acme.com", "acme.com"),
        ("https://Müller-GmbH.de", "müller-gmbh.de", "müller-gmbh.de"),
        ("acme.github.io/docs", "acme.github.io/docs", "acme.github.io"),  # PSL private section
        ("https://www.facebook.com/acme", "www.facebook.com/acme", None),  # a shared platform
        ("info@acme.de", "info@acme.de", "acme.de"),  # an email typed into the website column
        ("http://192.168.1.10/", "192.168.1.10", None),
        ("acme", "acme", None),
        ("not a url", "not a url", None),
        ("n/a", None, None),
        (None, None, None),
    ],
)
def test_websites(raw, website, domain):
    site = normalise_website(raw)
    assert (site.website, site.domain) == (website, domain)


def test_business_email_domains_only():
    assert email_domain("ann@sales.acme.co.uk") == "acme.co.uk"
    assert email_domain("ann@acme.com") == "acme.com"
    free = (
        "gmail.com googlemail.com yahoo.com yahoo.co.uk hotmail.com hotmail.fr outlook.com "
        "live.com aol.com icloud.com gmx.de gmx.net web.de orange.fr free.fr wanadoo.fr "
        "btinternet.com t-online.de comcast.net"
    ).split()
    for domain in free:
        assert email_domain(f"ann@{domain}") is None, domain
    assert email_domain(None) is None


@pytest.mark.parametrize(
    ("spellings", "country", "digits"),
    [
        # An area code outside the numbering plan (invalid in NANP): every spelling compares.
        (
            ("0879628803", "(087) 962-8803", "087.962.8803", "+1 087 962 8803", "1-087-962-8803"),
            "US",
            "10879628803",
        ),
        (("(087) 962-8803 ext. 12", "087 962 8803 x12"), "US", "10879628803"),
        # GB: the trunk 0, "+44", "(0)" and the 00 international prefix all reduce alike.
        (
            ("0879 628 803", "+44 879 628 803", "+44 (0)879 628 803", "0044 879 628 803"),
            "GB",
            "44879628803",
        ),
    ],
)
def test_invalid_phone_digits_compare_across_spellings(spellings, country, digits):
    for raw in spellings:
        phone = normalise_phone(raw, country)
        assert phone.valid is False, raw
        assert phone.phone == clean_text(raw), raw  # kept as typed
        assert phone.digits == digits, raw


def test_phone_digits_only_for_invalid_numbers_with_enough_digits():
    valid = normalise_phone("(415) 555-2671", "US")
    assert (valid.phone, valid.valid, valid.digits) == ("+14155552671", True, None)
    assert normalise_phone("12345", "US").digits is None  # too short to identify anything
    assert normalise_phone("555-0100", "US").digits == "15550100"
    # Not parseable at all (no such country code): its digits, the "+" dropped.
    assert normalise_phone("+999 123 456 789", "US").digits == "999123456789"
    assert normalise_phone(None, "US").digits is None
    # The same invalid number typed on a GB record and internationally on a US record.
    assert normalise_phone("0879 628 803", "GB").digits == (
        normalise_phone("+44 879 628 803", "US").digits
    )


@pytest.mark.parametrize(
    ("kwargs", "given", "middle", "family", "suffix", "display"),
    [
        ({"given": "Jorge", "family": "FERNANDEZ JR"}, "Jorge", None, "Fernandez", "Jr", None),
        ({"given": "Jorge Jr", "family": "FERNANDEZ"}, "Jorge", None, "Fernandez", "Jr", None),
        ({"given": "JORGE JR.", "family": "FERNANDEZ"}, "Jorge", None, "Fernandez", "Jr", None),
        ({"given": "Jorge", "family": "Fernandez, Sr."}, "Jorge", None, "Fernandez", "Sr", None),
        ({"given": "John", "family": "Smith III"}, "John", None, "Smith", "III", None),
        ({"given": "John", "family": "Smith IV"}, "John", None, "Smith", "IV", None),
        ({"given": "John", "family": "Smith Junior"}, "John", None, "Smith", "Jr", None),
        ({"given": "John II", "family": "Smith"}, "John", None, "Smith", "II", None),
        ({"family": "SMITH JR"}, None, None, "Smith", "Jr", "Smith Jr"),
        ({"given": "John Jr"}, "John", None, None, "Jr", "John Jr"),
        # A name that is all suffix-looking stays a name: nothing would remain.
        ({"given": "Jorge", "family": "Jr"}, "Jorge", None, "Jr", None, "Jorge Jr"),
        ({"given": "Mary", "family": "Junior"}, "Mary", None, "Junior", None, "Mary Junior"),
        ({"given": "Jun", "family": "V"}, "Jun", None, "V", None, "Jun V"),
        # A single letter after the given name is a middle initial, not "the fifth".
        ({"given": "John V", "family": "Smith"}, "John", "V", "Smith", None, "John V Smith"),
    ],
)
def test_suffixes_in_either_name_column(kwargs, given, middle, family, suffix, display):
    name = parse_person_name(**kwargs)
    assert (name.given_name, name.middle_name, name.family_name, name.suffix) == (
        given,
        middle,
        family,
        suffix,
    )
    if display:
        assert name.full_name == display


def test_keys_come_from_names_without_their_suffix():
    plain = parse_person_name(given="Jorge", family="Fernandez")
    for kwargs in (
        {"given": "Jorge", "family": "FERNANDEZ JR"},
        {"given": "Jorge Jr", "family": "Fernandez"},
        {"full": "Jorge Fernandez Jr."},
    ):
        name = parse_person_name(**kwargs)
        assert name.full_name == "Jorge Fernandez Jr"
        assert (name.given_key, name.family_key, name.given_phonetic, name.family_phonetic) == (
            plain.given_key,
            plain.family_key,
            plain.given_phonetic,
            plain.family_phonetic,
        )


@pytest.mark.parametrize(
    ("raw", "family"),
    [
        # GB
        ("Widgets Ltd", "limited"),
        ("Widgets Limited", "limited"),
        ("WIDGETS LTD.", "limited"),
        ("Widgets PLC", "corporation"),
        ("Widgets LLP", "partnership"),
        # DE
        ("Widgets GmbH", "limited"),
        ("Widgets UG", "limited"),
        ("Widgets AG", "corporation"),
        ("Widgets SE", "corporation"),
        ("Widgets KG", "partnership"),
        ("Widgets GmbH & Co. KG", "partnership"),
        ("Widgets OHG", "partnership"),
        ("Widgets GbR", "partnership"),
        ("Widgets e.K.", "sole_trader"),
        ("Widgets eG", "cooperative"),
        ("Widgets e.V.", "non_profit"),
        # FR
        ("Widgets SARL", "limited"),
        ("Widgets S.A.R.L.", "limited"),
        ("Widgets EURL", "limited"),
        ("Widgets S.A.", "corporation"),
        ("Widgets SAS", "corporation"),
        ("Widgets SNC", "partnership"),
        # ES
        ("Widgets S.L.", "limited"),
        ("Widgets SLU", "limited"),
        ("Widgets S.A.U.", "corporation"),
        ("Widgets S.Coop.", "cooperative"),
        ("Widgets S.A.T.", "cooperative"),
        ("Widgets Sat", None),  # a word, not a form, unless written as one
        # US
        ("Widgets Inc", "corporation"),
        ("Widgets Inc.", "corporation"),
        ("Widgets Incorporated", "corporation"),
        ("Widgets Corp", "corporation"),
        ("Widgets Corporation", "corporation"),
        ("Widgets LLC", "limited"),
        ("Widgets L.L.C.", "limited"),
        ("Widgets LP", "partnership"),
        # elsewhere
        ("Widgets Pty Ltd", "limited"),
        ("Widgets B.V.", "limited"),
        ("Widgets S.r.l.", "limited"),
        ("Widgets S.p.A.", "corporation"),
        ("Widgets N.V.", "corporation"),
        # no legal form, or one that says nothing about the family
        ("Widgets Holdings", None),
        ("Widgets & Co", None),
        ("Widgets", None),
    ],
)
def test_legal_form_families(raw, family):
    assert parse_organisation_name(raw).legal_form_family == family


def test_legal_form_families_contradict_across_not_within():
    def fam(name: str) -> str | None:
        return parse_organisation_name(name).legal_form_family

    assert fam("Jones Inc") != fam("Jones GmbH")
    assert fam("Jones Ltd") == fam("Jones Limited") == fam("JONES LTD.")
    assert fam("Jones Inc") == fam("Jones Incorporated") == fam("Jones Corp.")
    assert set(LEGAL_FORM_FAMILIES.values()) - {None} == {
        "limited",
        "corporation",
        "partnership",
        "sole_trader",
        "cooperative",
        "non_profit",
        "unlimited",
    }
    # A form cleanco's list lacks still leaves the name and key without it.
    assert parse_organisation_name("Widgets SLU").company_key == "widgets"
