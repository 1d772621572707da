"""Realistic multi-silo customer data with ground truth.

One population (people, households, companies and their staff) is written as five silos, each in
its own column layout, file format, date order and habits:

* ``crm``       CSV   sales leads, B2B contacts and the organisations they work for (MDY dates)
* ``billing``   CSV   active customers, ``;``-separated, "LAST, First M." names, SSNs (ISO dates)
* ``erp``       Parquet  AR customer master incl. one-time invoice customers, SAP-style columns
* ``ecommerce`` JSONL email-centric web sign-ups with a nested shipping address (MDY)
* ``loyalty``   CSV   self-curated by members: nicknames, lower case, day-first dates (DMY)

Every silo has a first full extract and a later delta that updates earlier keys (moves,
married names, new phones) and adds new ones. About 1% of rows are deliberately bad (empty keys,
impossible dates, wrong types, extra fields). ``truth.csv`` maps every (source, source_key) to the
real entity; ``relationships.csv`` says who shares a household (same address and family name),
who works for which organisation, and who moved or took a new family name (some silos never
hear of it). The same seed gives byte-identical output.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SOURCES = ("crm", "billing", "erp", "ecommerce", "loyalty")

# Real North American area codes, so generated numbers are valid NANP numbers.
AREA_CODES = (
    "201 202 203 205 206 207 208 209 210 212 213 214 215 216 217 218 219 224 225 228 229 231 "
    "234 239 240 248 251 252 253 254 256 260 262 267 269 270 276 281 301 302 303 304 305 307 "
    "308 309 310 312 313 314 315 316 317 318 319 320 321 323 325 330 334 336 337 339 347 351 "
    "352 360 361 386 401 402 404 405 406 407 408 409 410 412 413 414 415 417 419 423 424 425 "
    "434 435 440 443 469 478 479 480 484 501 502 503 504 505 507 508 509 510 512 513 515 516 "
    "517 518 520 530 540 541 551 559 561 562 563 567 570 571 573 574 580 585 586 601 602 603 "
    "605 606 607 608 609 610 612 614 615 616 617 618 619 620 623 626 630 631 636 641 646 650 "
    "651 660 661 662 678 682 701 702 703 704 706 707 708 712 713 714 715 716 717 718 719 720 "
    "724 727 731 732 734 740 754 757 760 763 765 770 772 773 774 775 781 785 786 801 802 803 "
    "804 805 806 808 810 812 813 814 815 816 817 818 828 830 831 832 843 845 847 848 850 856 "
    "857 858 859 860 862 863 864 865 870 901 903 904 906 907 908 909 910 912 913 914 915 916 "
    "917 918 919 920 925 928 931 936 937 940 941 947 949 951 952 954 956 970 971 972 973 978 "
    "979 980 985 989"
).split()

STREET_ABBREVIATIONS = {
    "Street": "St",
    "Avenue": "Ave",
    "Road": "Rd",
    "Drive": "Dr",
    "Lane": "Ln",
    "Court": "Ct",
    "Boulevard": "Blvd",
    "Place": "Pl",
    "Circle": "Cir",
    "Parkway": "Pkwy",
    "Square": "Sq",
    "Terrace": "Ter",
    "Highway": "Hwy",
    "Trail": "Trl",
}
PERSONAL_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com")
LEGAL_FORM_VARIANTS = {
    "Inc": ("Inc", "Inc.", "Incorporated", "INC", ""),
    "LLC": ("LLC", "L.L.C.", "llc", ""),
    "Ltd": ("Ltd", "Ltd.", "Limited", ""),
    "PLC": ("PLC", "plc", ""),
    "Group": ("Group", "Grp", "Group"),
    "and Sons": ("and Sons", "& Sons", "and Sons"),
}
JOB_TITLES = (
    "Purchasing Manager",
    "Accounts Payable Clerk",
    "CFO",
    "Office Manager",
    "IT Director",
    "Procurement Lead",
    "Operations Manager",
    "CEO",
    "Controller",
    "Buyer",
)
BAD_DATES = ("31/02/1985", "02/30/1979", "1985-13-45", "unknown", "n/a", "00/00/0000", "19xx")


@dataclass
class Address:
    number: str
    street: str
    unit: str
    city: str
    state: str
    zip: str


@dataclass
class Person:
    entity_id: str
    gender: str
    given: str
    middle: str
    family: str
    birth: date
    ssn: str
    email: str
    mobile: str
    address: Address
    landline: str = ""
    # Life events: the later name/address, seen in later extracts and fresher silos.
    new_family: str = ""
    new_address: Address | None = None
    new_mobile: str = ""
    org: Organisation | None = None
    job_title: str = ""
    work_email: str = ""
    #: The entity id of the household's first person (set for households of two or more).
    household: str = ""


@dataclass
class Organisation:
    entity_id: str
    name: str
    legal_form: str
    domain: str
    switchboard: str
    address: Address
    ein: str
    staff: list[Person] = field(default_factory=list)


class _Pools:
    """Name, street, place and company pools drawn once from Faker, then sampled quickly."""

    def __init__(self, seed: int) -> None:
        from faker import Faker
        from faker.providers.address.en_US import Provider as AddressProvider
        from faker.providers.person.en_US import Provider as PersonProvider

        fake = Faker("en_US")
        fake.seed_instance(seed)
        # Cumulative weights, so that each draw is a bisect rather than a sum over the pool.
        self.female = list(PersonProvider.first_names_female.keys())
        self.female_w = list(accumulate(PersonProvider.first_names_female.values()))
        self.male = list(PersonProvider.first_names_male.keys())
        self.male_w = list(accumulate(PersonProvider.first_names_male.values()))
        self.last = list(PersonProvider.last_names.keys())
        self.last_w = list(accumulate(PersonProvider.last_names.values()))
        rng = random.Random(seed)
        self.streets = sorted({fake.street_name() for _ in range(1500)})
        states = sorted(
            s for s in AddressProvider.states_abbr if s in AddressProvider.states_postcode
        )
        self.places: list[tuple[str, str, str]] = []
        for _ in range(1200):
            state = rng.choice(states)
            self.places.append((fake.city(), state, fake.postcode_in_state(state)))
        industries = (
            "Logistics",
            "Foods",
            "Systems",
            "Partners",
            "Industries",
            "Health",
            "Consulting",
            "Motors",
            "Textiles",
            "Labs",
        )
        self.companies: list[tuple[str, str]] = []
        for _ in range(1500):
            base, other, third = (rng.choice(self.last) for _ in range(3))
            form = rng.choice(tuple(LEGAL_FORM_VARIANTS))
            name = rng.choice(
                (
                    f"{base} {rng.choice(industries)}",
                    f"{base}, {other} and {third}",
                    f"{base}-{other}",
                )
            )
            self.companies.append((name, form))


@lru_cache(maxsize=4096)
def _nicknames(given: str) -> tuple[str, ...]:
    return tuple(sorted(_nick_namer().nicknames_of(given.lower())))


@lru_cache(maxsize=1)
def _nick_namer():  # type: ignore[no-untyped-def]
    from nicknames import NickNamer

    return NickNamer()


class Generator:
    def __init__(self, people: int, seed: int) -> None:
        self.n_people = people
        self.rng = random.Random(seed)
        self.pools = _Pools(seed)
        self.people: list[Person] = []
        self.orgs: list[Organisation] = []
        self.truth: dict[tuple[str, str], str] = {}
        self._ssns: set[str] = set()
        self._emails: set[str] = set()

    # ---- population -------------------------------------------------------------------
    def _phone(self) -> str:
        rng = self.rng
        while True:
            exchange = rng.randint(200, 999)
            if exchange % 100 != 11 and exchange != 555:
                break
        return f"{rng.choice(AREA_CODES)}{exchange}{rng.randint(0, 9999):04d}"

    def _address(self, place: tuple[str, str, str] | None = None) -> Address:
        rng = self.rng
        city, state, zip_code = place or rng.choice(self.pools.places)
        unit = ""
        if rng.random() < 0.2:
            unit = (
                rng.choice(("Apt", "Unit", "Suite", "#"))
                + " "
                + str(rng.randint(1, 40))
                + rng.choice(("", "", "A", "B"))
            )
        return Address(
            str(rng.randint(1, 9999)), rng.choice(self.pools.streets), unit, city, state, zip_code
        )

    def _ssn(self) -> str:
        rng = self.rng
        while True:
            area = rng.randint(1, 899)
            if area == 666:
                continue
            ssn = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
            if ssn not in self._ssns:
                self._ssns.add(ssn)
                return ssn

    def _email(self, given: str, family: str, domain: str | None = None) -> str:
        """A mailbox of the person's own: a provider (or an employer) never hands one address
        to two people, so a taken address gets a number, as a sign-up form would insist."""
        rng = self.rng
        g, f = given.lower().replace(" ", ""), family.lower().replace(" ", "").replace("'", "")
        if domain:
            local = rng.choice((f"{g}.{f}", f"{g[0]}{f}", f"{g}"))
        else:
            style = rng.randint(0, 4)
            local = (
                f"{g}.{f}",
                f"{g}{f}{rng.randint(1, 99)}",
                f"{g[0]}{f}",
                f"{f}.{g}{rng.randint(60, 99)}",
                f"{g}_{f[:3]}{rng.randint(1, 999)}",
            )[style]
            domain = rng.choice(PERSONAL_DOMAINS)
        email = f"{local}@{domain}"
        # Dots do not count (Gmail ignores them, and the e-commerce silo drops one).
        while (taken := email.replace(".", "")) in self._emails:
            email = f"{local}{rng.randint(2, 9999)}@{domain}"
        self._emails.add(taken)
        return email

    def _person(
        self, index: int, family: str | None = None, address: Address | None = None
    ) -> Person:
        rng, pools = self.rng, self.pools
        gender = rng.choice("FM")
        if gender == "F":
            given = rng.choices(pools.female, cum_weights=pools.female_w)[0]
        else:
            given = rng.choices(pools.male, cum_weights=pools.male_w)[0]
        family = family or rng.choices(pools.last, cum_weights=pools.last_w)[0]
        birth = date(1940, 1, 1) + timedelta(days=rng.randint(0, 65 * 365))
        person = Person(
            entity_id=f"P{index:07d}",
            gender=gender,
            given=given,
            middle=rng.choice("ABCDEFGHJKLMNPRSTW") if rng.random() < 0.6 else "",
            family=family,
            birth=birth,
            ssn=self._ssn(),
            email=self._email(given, family),
            mobile=self._phone(),
            address=address or self._address(),
        )
        if rng.random() < 0.12:
            person.new_address = self._address()
        if gender == "F" and rng.random() < 0.07:
            person.new_family = rng.choices(pools.last, cum_weights=pools.last_w)[0]
        if rng.random() < 0.08:
            person.new_mobile = self._phone()
        return person

    def build_population(self) -> None:
        rng = self.rng
        index = 0
        while index < self.n_people:
            lead = self._person(index)
            self.people.append(lead)
            index += 1
            if rng.random() < 0.3:  # a household sharing the address (and often a landline)
                landline = self._phone() if rng.random() < 0.5 else ""
                lead.landline = landline
                for _ in range(rng.randint(1, 3)):
                    if index >= self.n_people:
                        break
                    family = lead.family if rng.random() < 0.8 else None
                    member = self._person(index, family=family, address=lead.address)
                    member.new_address = lead.new_address
                    member.landline = landline
                    if member.family == lead.family:  # a lodger with another name lives apart
                        member.household = lead.household = lead.entity_id
                    self.people.append(member)
                    index += 1
        n_orgs = max(1, self.n_people // 40)
        for o in range(n_orgs):
            name, form = rng.choice(self.pools.companies)
            domain = name.split(",")[0].split(" ")[0].split("-")[0].lower() + rng.choice(
                (".com", ".net", ".io", ".co")
            )
            ein = f"{rng.randint(10, 99)}{rng.randint(1000000, 9999999)}"
            self.orgs.append(
                Organisation(f"O{o:06d}", name, form, domain, self._phone(), self._address(), ein)
            )
        for person in self.people:
            if rng.random() < 0.12:
                org = rng.choice(self.orgs)
                person.org = org
                person.job_title = rng.choice(JOB_TITLES)
                person.work_email = self._email(person.given, person.family, org.domain)
                org.staff.append(person)

    # ---- variation ----------------------------------------------------------------------
    def typo(self, text: str) -> str:
        rng = self.rng
        if len(text) < 3:
            return text
        i = rng.randint(1, len(text) - 2)
        kind = rng.randint(0, 3)
        if kind == 0:
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        if kind == 1:
            return text[:i] + text[i + 1 :]
        if kind == 2:
            return text[:i] + text[i] + text[i:]
        return text[:i] + rng.choice("aeiourstln") + text[i + 1 :]

    def maybe_typo(self, text: str, p: float) -> str:
        return self.typo(text) if text and self.rng.random() < p else text

    def given_variant(self, given: str, p_nick: float) -> str:
        if self.rng.random() < p_nick:
            nicks = _nicknames(given)
            if nicks:
                return self.rng.choice(nicks).title()
        return given

    def format_phone(self, digits: str, styles: tuple[int, ...]) -> str:
        a, b, c = digits[:3], digits[3:6], digits[6:]
        style = self.rng.choice(styles)
        return (
            f"({a}) {b}-{c}",
            f"{a}-{b}-{c}",
            f"{a}.{b}.{c}",
            f"+1 {a} {b} {c}",
            f"{digits}",
            f"1-{a}-{b}-{c}",
            f"+1{digits}",
        )[style]

    def street_line(self, addr: Address, abbreviate: float) -> str:
        street = addr.street
        if self.rng.random() < abbreviate:
            head, _, suffix = street.rpartition(" ")
            street = f"{head} {STREET_ABBREVIATIONS.get(suffix, suffix)}" if head else street
        return f"{addr.number} {street}"

    def zip_variant(self, addr: Address) -> str:
        if self.rng.random() < 0.15:
            return f"{addr.zip}-{self.rng.randint(1, 9999):04d}"
        return addr.zip

    def blank(self, value: str, p: float) -> str:
        return "" if self.rng.random() < p else value

    def record_truth(self, source: str, key: str, entity_id: str) -> None:
        if key.strip():
            self.truth[(source, key)] = entity_id


# ---- silo layouts --------------------------------------------------------------------------
T0 = datetime(2026, 1, 5, 9, 0, 0)
T1 = datetime(2026, 3, 2, 9, 0, 0)


def _ts(gen: Generator, base: datetime) -> datetime:
    return base - timedelta(minutes=gen.rng.randint(0, 60 * 24 * 25))


def _bad(gen: Generator, p: float = 0.004) -> bool:
    return gen.rng.random() < p


@dataclass
class Silo:
    name: str
    header: list[str]
    members: list[object]
    make_row: Callable[[Generator, object, bool, str], dict[str, object]]
    key_of: Callable[[int], str]
    write: str  # csv / csv; / jsonl / parquet
    file_prefix: str


def _crm_row(gen: Generator, entity: object, later: bool, key: str) -> dict[str, object]:
    rng = gen.rng
    modified = _ts(gen, T1 if later else T0).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(entity, Organisation):
        org = entity
        legal = rng.choice(LEGAL_FORM_VARIANTS[org.legal_form])
        name = f"{org.name} {legal}".strip() if legal else org.name
        return {
            "Id": key,
            "RecordType": "Account",
            "Salutation": "",
            "FirstName": "",
            "LastName": "",
            "AccountName": gen.maybe_typo(name.upper() if rng.random() < 0.2 else name, 0.04),
            "ParentAccountId": "",
            "Title": "",
            "Email": "",
            "Phone": gen.format_phone(org.switchboard, (0, 1, 3)),
            "MailingStreet": gen.street_line(org.address, 0.5),
            "MailingCity": org.address.city,
            "MailingState": org.address.state,
            "MailingPostalCode": gen.zip_variant(org.address),
            "MailingCountry": rng.choice(("USA", "United States", "US", "")),
            "Birthdate": "",
            "LastModifiedDate": modified,
            "HasOptedOutOfEmail": "false",
        }
    p: Person = entity  # type: ignore[assignment]
    family = p.new_family if (later and p.new_family) else p.family
    addr = p.new_address if (later and p.new_address) else p.address
    is_contact = p.org is not None
    given = gen.maybe_typo(gen.given_variant(p.given, 0.15), 0.03)
    last = gen.maybe_typo(family, 0.03)
    if rng.random() < 0.1:
        given, last = given.upper(), last.upper()
    birth = p.birth.strftime(rng.choice(("%m/%d/%Y", "%m/%d/%Y", "%-m/%-d/%Y")))
    if _bad(gen):
        birth = rng.choice(BAD_DATES)
    return {
        "Id": key,
        "RecordType": "Contact" if is_contact else "Lead",
        "Salutation": rng.choice(("Mr.", "Mrs.", "Ms.", "Dr.", "", ""))
        if rng.random() < 0.5
        else "",
        "FirstName": given,
        "LastName": last,
        "AccountName": p.org.name if p.org else "",
        "ParentAccountId": "",  # filled by the writer from the org's CRM key
        "Title": p.job_title if is_contact else "",
        "Email": gen.blank(p.work_email if is_contact else p.email, 0.1),
        "Phone": gen.blank(
            gen.format_phone(
                p.org.switchboard
                if (is_contact and rng.random() < 0.6)
                else (p.new_mobile if later and p.new_mobile else p.mobile),
                (0, 1, 2),
            ),
            0.15,
        ),
        "MailingStreet": gen.blank(
            gen.street_line(p.org.address if is_contact else addr, 0.5), 0.2
        ),
        "MailingCity": (p.org.address if is_contact else addr).city,
        "MailingState": (p.org.address if is_contact else addr).state,
        "MailingPostalCode": gen.zip_variant(p.org.address if is_contact else addr),
        "MailingCountry": rng.choice(("USA", "United States", "US", "")),
        "Birthdate": gen.blank(birth, 0.7),
        "LastModifiedDate": modified,
        "HasOptedOutOfEmail": rng.choice(("false", "false", "false", "true")),
    }


def _billing_row(gen: Generator, entity: object, later: bool, key: str) -> dict[str, object]:
    rng = gen.rng
    p: Person = entity  # type: ignore[assignment]
    family = p.new_family if (later and p.new_family) else p.family
    addr = p.new_address if (later and p.new_address) else p.address
    given = gen.maybe_typo(p.given, 0.02)
    family = gen.maybe_typo(family, 0.02)
    middle = f" {p.middle}." if p.middle and rng.random() < 0.7 else ""
    style = rng.randint(0, 3)
    full = (
        f"{family.upper()}, {given}{middle}",
        f"{family}, {given}{middle}",
        f"{given}{middle} {family}",
        f"{given.upper()}{middle.upper()} {family.upper()}",
    )[style]
    dob = p.birth.strftime(rng.choice(("%Y-%m-%d", "%Y-%m-%d", "%Y%m%d")))
    if _bad(gen):
        dob = rng.choice(BAD_DATES)
    ssn = p.ssn if rng.random() < 0.5 else f"{p.ssn[:3]}-{p.ssn[3:5]}-{p.ssn[5:]}"
    return {
        "cust_no": key,
        "full_name": full,
        "addr_line1": gen.street_line(addr, 0.7),
        "addr_line2": addr.unit,
        "city": addr.city.upper() if rng.random() < 0.3 else addr.city,
        "state": addr.state,
        "zip": gen.zip_variant(addr),
        "phone": gen.blank(
            gen.format_phone(
                p.new_mobile if later and p.new_mobile else (p.landline or p.mobile), (0, 1, 4)
            ),
            0.05,
        ),
        "email": gen.blank(p.email, 0.25),
        "dob": gen.blank(dob, 0.1),
        "ssn": gen.blank(ssn, 0.1),
        "last_updated": _ts(gen, T1 if later else T0).strftime("%Y-%m-%d %H:%M:%S"),
    }


def _erp_row(gen: Generator, entity: object, later: bool, key: str) -> dict[str, object]:
    rng = gen.rng
    changed = _ts(gen, T1 if later else T0).strftime("%Y%m%d")
    if _bad(gen, 0.004):
        changed = "00000000"  # SAP's "no date"
    if isinstance(entity, Organisation):
        org = entity
        legal = rng.choice(LEGAL_FORM_VARIANTS[org.legal_form])
        return {
            "KUNNR": key,
            "NAME1": gen.maybe_typo(f"{org.name} {legal}".strip(), 0.03).upper(),
            "NAME2": "",
            "STRAS": gen.street_line(org.address, 0.8).upper(),
            "ORT01": org.address.city.upper(),
            "REGIO": org.address.state,
            "PSTLZ": org.address.zip,
            "LAND1": "US",
            "TELF1": gen.format_phone(org.switchboard, (3, 6)),
            "SMTP_ADDR": f"ap@{org.domain}",
            "STCD1": f"{org.ein[:2]}-{org.ein[2:]}",
            "KTOKD": "KUNA",
            "ERDAT": "20240102",
            "AEDAT": changed,
        }
    p: Person = entity  # type: ignore[assignment]
    one_time = key.startswith("0009")
    family = p.new_family if (later and p.new_family) else p.family
    addr = p.new_address if (later and p.new_address) else p.address
    name = f"{gen.given_variant(p.given, 0.05)} {gen.maybe_typo(family, 0.03)}"
    return {
        "KUNNR": key,
        "NAME1": name.upper() if rng.random() < 0.5 else name,
        "NAME2": "",
        "STRAS": gen.street_line(addr, 0.8),
        "ORT01": addr.city,
        "REGIO": addr.state,
        "PSTLZ": gen.zip_variant(addr),
        "LAND1": "US",
        "TELF1": gen.blank(gen.format_phone(p.mobile, (3, 6, 1)), 0.3),
        "SMTP_ADDR": gen.blank(p.email, 0.4),
        "STCD1": gen.blank(f"{p.ssn[:3]}-{p.ssn[3:5]}-{p.ssn[5:]}", 0.7 if not one_time else 1.0),
        "KTOKD": "CPD" if one_time else "KUNA",
        "ERDAT": "20240102",
        "AEDAT": changed,
    }


def _ecommerce_row(gen: Generator, entity: object, later: bool, key: str) -> dict[str, object]:
    rng = gen.rng
    p: Person = entity  # type: ignore[assignment]
    family = p.new_family if (later and p.new_family) else p.family
    addr = p.new_address if (later and p.new_address) else p.address
    email = p.email
    local, _, domain = email.partition("@")
    if rng.random() < 0.15:
        email = f"{local}+{rng.choice(('shop', 'deals', 'web', 'promo'))}@{domain}"
    if domain == "gmail.com" and rng.random() < 0.1:
        email = email.replace(".", "", 1) if "." in local else email
    if rng.random() < 0.1:
        email = email.capitalize()
    given, last = (
        gen.maybe_typo(gen.given_variant(p.given, 0.1), 0.03),
        gen.maybe_typo(family, 0.03),
    )
    if rng.random() < 0.4:
        given, last = given.lower(), last.lower()
    phone: object = gen.blank(
        gen.format_phone(p.new_mobile if later and p.new_mobile else p.mobile, (0, 4, 5, 6)), 0.5
    )
    if _bad(gen, 0.003):
        phone = [phone or gen.format_phone(p.mobile, (0,)), gen.format_phone(p.mobile, (4,))]
    birthday = ""
    if rng.random() < 0.2:
        birthday = p.birth.strftime("%m/%d/%Y") if not _bad(gen, 0.02) else rng.choice(BAD_DATES)
    row: dict[str, object] = {
        "user_id": key,
        "email": email,
        "email_verified": rng.random() < 0.8,
        "first_name": given,
        "last_name": last,
        "phone": phone if phone != "" else None,
        "birthday": birthday or None,
        "shipping": {
            "line1": gen.street_line(addr, 0.5),
            "line2": addr.unit or None,
            "city": addr.city,
            "region": addr.state,
            "postal_code": gen.zip_variant(addr),
            "country": "US",
        },
        "created_at": "2025-06-01T12:00:00Z",
        "updated_at": _ts(gen, T1 if later else T0).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "marketing_opt_in": rng.random() < 0.55,
    }
    if rng.random() < 0.25:
        row["shipping"] = None
    return row


def _loyalty_row(gen: Generator, entity: object, later: bool, key: str) -> dict[str, object]:
    rng = gen.rng
    p: Person = entity  # type: ignore[assignment]
    family = p.new_family if (later and p.new_family) else p.family
    addr = p.new_address if (later and p.new_address) else p.address
    given = gen.maybe_typo(gen.given_variant(p.given, 0.35), 0.05)
    last = gen.maybe_typo(family, 0.05)
    case = rng.random()
    if case < 0.3:
        given, last = given.lower(), last.lower()
    elif case < 0.4:
        given, last = given.upper(), last.upper()
    birthday = p.birth.strftime(rng.choice(("%d/%m/%Y", "%d/%m/%Y", "%d.%m.%Y")))
    if _bad(gen):
        birthday = rng.choice(BAD_DATES)
    return {
        "member_no": key,
        "given_name": given,
        "surname": last,
        "birthday": gen.blank(birthday, 0.3),
        "email_address": gen.blank(p.email.lower(), 0.2),
        "mobile": gen.blank(
            gen.format_phone(p.new_mobile if later and p.new_mobile else p.mobile, (0, 1, 2, 4)),
            0.2,
        ),
        "street_address": gen.blank(
            gen.street_line(addr, 0.5).lower()
            if rng.random() < 0.3
            else gen.street_line(addr, 0.5),
            0.1,
        ),
        "town": addr.city,
        "state": addr.state,
        "postcode": addr.zip,
        "last_update": _ts(gen, T1 if later else T0).strftime("%d/%m/%Y %H:%M"),
        "consent_marketing": rng.choice(("Y", "Y", "N", "")),
    }


CRM_HEADER = [
    "Id",
    "RecordType",
    "Salutation",
    "FirstName",
    "LastName",
    "AccountName",
    "ParentAccountId",
    "Title",
    "Email",
    "Phone",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "Birthdate",
    "LastModifiedDate",
    "HasOptedOutOfEmail",
]
BILLING_HEADER = [
    "cust_no",
    "full_name",
    "addr_line1",
    "addr_line2",
    "city",
    "state",
    "zip",
    "phone",
    "email",
    "dob",
    "ssn",
    "last_updated",
]
ERP_HEADER = [
    "KUNNR",
    "NAME1",
    "NAME2",
    "STRAS",
    "ORT01",
    "REGIO",
    "PSTLZ",
    "LAND1",
    "TELF1",
    "SMTP_ADDR",
    "STCD1",
    "KTOKD",
    "ERDAT",
    "AEDAT",
]
LOYALTY_HEADER = [
    "member_no",
    "given_name",
    "surname",
    "birthday",
    "email_address",
    "mobile",
    "street_address",
    "town",
    "state",
    "postcode",
    "last_update",
    "consent_marketing",
]


@dataclass
class GenerationSummary:
    people: int
    organisations: int
    rows_per_source: dict[str, int]
    files: list[str]

    @property
    def rows(self) -> int:
        return sum(self.rows_per_source.values())


def _write_csv(
    path: Path, header: list[str], rows: list[dict[str, object]], delimiter: str, gen: Generator
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            values = [row.get(h, "") for h in header]
            if gen.rng.random() < 0.002:  # an unquoted separator in a value: one field too many
                values.append("x")
            writer.writerow(values)
    tmp.replace(path)  # atomic rename: the landing sensor never sees a partial file


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
    tmp.replace(path)


def _write_parquet(path: Path, header: list[str], rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table = pa.table({h: pa.array([str(r.get(h, "")) for r in rows], pa.string()) for h in header})
    pq.write_table(table, tmp)
    tmp.replace(path)


Extracts = tuple[list[dict[str, object]], list[dict[str, object]]]
RowMaker = Callable[[Generator, object, bool, str], dict[str, object]]


def generate(
    out: Path,
    people: int = 2000,
    seed: int = 42,
    on_silo: Callable[[int], None] | None = None,
) -> GenerationSummary:
    """Write ``out/landing/<source>/*`` and ``out/truth.csv``. Deterministic for a seed.
    ``on_silo(rows)`` is called after each of the :data:`SILOS` silos is written."""
    gen = Generator(people, seed)
    gen.build_population()
    summary = GenerationSummary(len(gen.people), len(gen.orgs), {}, [])
    # One silo after another, always in this order: each draws from the same random stream.
    for write_silo in _SILO_WRITERS:
        before = summary.rows
        write_silo(gen, out, summary)
        if on_silo is not None:
            on_silo(summary.rows - before)
    _write_truth(gen, out / "truth.csv")
    _write_relationships(gen, out / "relationships.csv")
    return summary


def _membership(gen: Generator, p: float) -> list[Person]:
    """Each person with probability ``p``."""
    return [person for person in gen.people if gen.rng.random() < p]


def _split_late(
    gen: Generator, members: list[Person], share: float = 0.05
) -> tuple[list[object], list[object]]:
    """``(in the first extract, new in the delta)``: about ``share`` of members arrive late."""
    early: list[object] = []
    late: list[object] = []
    for m in members:
        (late if gen.rng.random() < share else early).append(m)
    return early, late


def _two_extracts(
    gen: Generator,
    source: str,
    members: list[object],
    key_of: Callable[[int, object], str],
    make: RowMaker,
    late_members: list[object],
) -> Extracts:
    """A silo's first full extract and its later delta (changed members again, and the late
    ones), recording the truth of every key."""
    rng = gen.rng
    first, delta = [], []
    keys: list[str] = []
    for i, entity in enumerate(members):
        key = key_of(i, entity)
        if _bad(gen, 0.003):
            key = rng.choice(("", " "))
        keys.append(key)
        gen.record_truth(source, key, entity.entity_id)  # type: ignore[attr-defined]
        first.append(make(gen, entity, False, key))
    for i, entity in enumerate(members):
        changed = isinstance(entity, Person) and (
            entity.new_address or entity.new_family or entity.new_mobile
        )
        picked = (changed and rng.random() < 0.7) or rng.random() < 0.03
        if picked and keys[i].strip():
            delta.append(make(gen, entity, True, keys[i]))
    offset = len(members)
    for j, entity in enumerate(late_members):
        key = key_of(offset + j, entity)
        gen.record_truth(source, key, entity.entity_id)  # type: ignore[attr-defined]
        delta.append(make(gen, entity, True, key))
    return first, delta


def _landed(
    summary: GenerationSummary,
    source: str,
    extracts: Extracts,
    files: tuple[str, str],
    write: Callable[[str, list[dict[str, object]]], None],
) -> None:
    """Write the first extract and the delta as ``files`` (under ``landing/<source>/``)."""
    for name, rows in zip(files, extracts, strict=True):
        write(name, rows)
    summary.files.extend(f"{source}/{name}" for name in files)
    summary.rows_per_source[source] = sum(len(rows) for rows in extracts)


def _csv_writer(
    gen: Generator, out: Path, source: str, header: list[str], delimiter: str
) -> Callable[[str, list[dict[str, object]]], None]:
    return lambda name, rows: _write_csv(
        out / "landing" / source / name, header, rows, delimiter, gen
    )


def _crm(gen: Generator, out: Path, summary: GenerationSummary) -> None:
    """CRM: organisations, their contacts, and leads."""
    rng = gen.rng
    crm_people = [p for p in gen.people if p.org is not None and rng.random() < 0.8]
    crm_people += _membership(gen, 0.3)
    seen: set[str] = set()
    crm_people = [p for p in crm_people if not (p.entity_id in seen or seen.add(p.entity_id))]  # type: ignore[func-returns-value]
    crm_orgs = [o for o in gen.orgs if rng.random() < 0.9]
    org_key = {o.entity_id: f"001A{i:08d}" for i, o in enumerate(crm_orgs)}
    early, late = _split_late(gen, crm_people)
    first, delta = _two_extracts(
        gen,
        "crm",
        crm_orgs + early,
        lambda i, e: org_key[e.entity_id] if isinstance(e, Organisation) else f"003A{i:08d}",
        _crm_row,
        late,
    )
    # Link B2B contacts to their organisation's CRM key.
    person_by_id = {p.entity_id: p for p in gen.people}
    for row in first + delta:
        if row["RecordType"] == "Contact":
            entity = person_by_id.get(gen.truth.get(("crm", str(row["Id"])), ""))
            if entity is not None and entity.org is not None:
                row["ParentAccountId"] = org_key.get(entity.org.entity_id, "")
    _landed(
        summary,
        "crm",
        (first, delta),
        ("crm_export_2026-01-05.csv", "crm_export_2026-03-02.csv"),
        _csv_writer(gen, out, "crm", CRM_HEADER, ","),
    )


def _billing(gen: Generator, out: Path, summary: GenerationSummary) -> None:
    """Billing: active customers."""
    early, late = _split_late(gen, _membership(gen, 0.45))
    extracts = _two_extracts(
        gen, "billing", early, lambda i, e: f"B{i + 1:08d}", _billing_row, late
    )
    _landed(
        summary,
        "billing",
        extracts,
        ("customers_20260105.csv", "customers_20260302.csv"),
        _csv_writer(gen, out, "billing", BILLING_HEADER, ";"),
    )


def _erp(gen: Generator, out: Path, summary: GenerationSummary) -> None:
    """ERP: customer master, organisations, and one-time invoice customers (key 0009…)."""
    erp_people = _membership(gen, 0.2)
    one_time = _membership(gen, 0.05)
    erp_members: list[object] = [o for o in gen.orgs if gen.rng.random() < 0.8] + erp_people
    n_regular = len(erp_members)
    extracts = _two_extracts(
        gen,
        "erp",
        erp_members + one_time,
        lambda i, e: f"{'0009' if i >= n_regular else '0001'}{i:06d}",
        _erp_row,
        [],
    )
    _landed(
        summary,
        "erp",
        extracts,
        ("KNA1_20260105.parquet", "KNA1_20260302.parquet"),
        lambda name, rows: _write_parquet(out / "landing/erp" / name, ERP_HEADER, rows),
    )


def _ecommerce(gen: Generator, out: Path, summary: GenerationSummary) -> None:
    """E-commerce: web sign-ups."""
    early, late = _split_late(gen, _membership(gen, 0.4), 0.08)
    extracts = _two_extracts(
        gen,
        "ecommerce",
        early,
        lambda i, e: f"u{(i * 2654435761) % 4294967296:010d}",
        _ecommerce_row,
        late,
    )
    _landed(
        summary,
        "ecommerce",
        extracts,
        ("signups_2026-01-05.jsonl", "signups_2026-03-02.jsonl"),
        lambda name, rows: _write_jsonl(out / "landing/ecommerce" / name, rows),
    )


def _loyalty(gen: Generator, out: Path, summary: GenerationSummary) -> None:
    """Loyalty: self-curated member profiles."""
    early, late = _split_late(gen, _membership(gen, 0.3))
    extracts = _two_extracts(
        gen, "loyalty", early, lambda i, e: f"L-{i + 1:07d}", _loyalty_row, late
    )
    _landed(
        summary,
        "loyalty",
        extracts,
        ("members_05-01-2026.csv", "members_02-03-2026.csv"),
        _csv_writer(gen, out, "loyalty", LOYALTY_HEADER, ","),
    )


def _write_truth(gen: Generator, path: Path) -> None:
    """Every (source, source_key) and the real entity behind it."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["source", "source_key", "entity_id"])
        for (source, key), entity in sorted(gen.truth.items()):
            writer.writerow([source, key, entity])


def _write_relationships(gen: Generator, path: Path) -> None:
    """Who lives with whom (same address, same family name) and who works where."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["entity_id", "household_id", "organisation_id", "moved", "renamed"])
        for person in gen.people:
            if person.household or person.org:
                org = person.org.entity_id if person.org else ""
                writer.writerow(
                    [
                        person.entity_id,
                        person.household,
                        org,
                        int(person.new_address is not None),
                        int(bool(person.new_family)),
                    ]
                )


#: The silos' writers, in the order :func:`generate` runs them.
_SILO_WRITERS = (_crm, _billing, _erp, _ecommerce, _loyalty)
SILOS = len(_SILO_WRITERS)
