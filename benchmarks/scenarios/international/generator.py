"""International scenario: persons in Great Britain, Germany and France; no national id.

Names from Faker's en_GB, de_DE and fr_FR locales, with their diacritics (Müller, Jérôme,
Lefèvre) and what old systems make of them (Mueller, Muller, JEROME); compound given names
(Jean-Pierre, Karl-Heinz), particles (von, de); day-first dates (31/01/1980, 31.01.1980);
national phone formats (07700 900123, 0151 23456789, 06 12 34 56 78) as well as +44/+49/+33;
each country's postcodes. Households share an address, a surname and a landline; people move
(stale copies keep the old address); married names; two accounts of one person in one silo.

Silos:
  loyalty  CSV ``,``: Surname / Forename, DD/MM/YYYY, ISO country codes, mobile numbers
  crm      CSV ``;`` (German-built): one "Name" column ("Müller, Jürgen"), DD.MM.YYYY,
           country names (Deutschland, France, United Kingdom), landline or mobile
  eshop    JSON Lines: nested customer and address, e-mail first, birth date rarely
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from benchmarks.scenarios.common import (
    Noise,
    Pools,
    Truth,
    email_local,
    valid_phone,
    write_csv,
    write_jsonl,
    write_traps,
)

COUNTRIES = ("GB", "DE", "FR")
LOCALES = {"GB": "en_GB", "DE": "de_DE", "FR": "fr_FR"}
DIAL = {"GB": "44", "DE": "49", "FR": "33"}
COUNTRY_NAMES = {
    "GB": ("United Kingdom", "Großbritannien", "UK"),
    "DE": ("Deutschland", "Germany"),
    "FR": ("France", "Frankreich"),
}
MOBILE = {"GB": (("7", 9),), "DE": (("151", 8), ("160", 8), ("176", 8)), "FR": (("6", 8), ("7", 8))}
LANDLINE = {
    "GB": (("20", 8), ("161", 7), ("131", 7), ("117", 7)),
    "DE": (("30", 8), ("89", 8), ("40", 8), ("69", 8)),
    "FR": (("1", 8), ("4", 8), ("5", 8)),
}


def ascii_fold(text: str, german: bool) -> str:
    if german:
        for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue")):
            text = text.replace(a, b)
    text = text.replace("ß", "ss")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@dataclass
class Home:
    street: str
    postcode: str
    city: str


@dataclass
class Person:
    entity: str
    country: str
    given: str
    family: str
    born: date
    female: bool
    email: str
    mobile: str
    home: Home
    landline: str = ""
    maiden: str = ""
    previous: Home | None = None
    silos: set[str] = field(default_factory=set)


class International:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.noise = Noise(self.rng)
        self.pools = {c: Pools(loc, seed, places=300, streets=500) for c, loc in LOCALES.items()}
        self.people: list[Person] = []
        self.traps: dict[str, list] = {
            "households": [],
            "diacritics": [],
            "married": [],
            "movers": [],
            "silo_duplicates": [],
        }

    def number(self, country: str, mobile: bool) -> str:
        while True:
            prefix, n = self.rng.choice((MOBILE if mobile else LANDLINE)[country])
            number = prefix + str(self.rng.randint(2, 9)) + self.noise.digits(n - 1)
            if valid_phone(country, "0" + number):
                return number

    def show_phone(self, country: str, number: str) -> str:
        r = self.rng.random()
        if r < 0.35:
            return f"+{DIAL[country]} {number[:3]} {number[3:]}"
        if r < 0.45:
            return f"00{DIAL[country]}{number}"
        national = "0" + number
        if country == "FR":
            return " ".join(national[i : i + 2] for i in range(0, 10, 2))
        if country == "GB":
            return (
                f"{national[:5]} {national[5:]}"
                if number[0] == "7"
                else f"{national[:3]} {national[3:]}"
            )
        return (
            f"{national[:4]} {national[4:]}"
            if mobile_de(number)
            else f"{national[:3]}/{national[3:]}"
        )

    def home(self, country: str) -> Home:
        pool = self.pools[country]
        city, postcode = self.rng.choice(pool.places)
        if country == "FR":
            dept = self.rng.choice([*range(1, 20), *range(21, 96)])
            postcode = f"{dept:02d}{self.rng.randint(0, 99) * 10:03d}"
        name, no = self.rng.choice(pool.streets), self.rng.randint(1, 160)
        street = f"{name} {no}" if country == "DE" else f"{no} {name}"
        if country == "FR" and self.noise.chance(0.3):
            street = f"{no}, {name}"
        return Home(street, postcode, city)

    def person(self, country: str, **kw) -> Person:  # noqa: ANN003
        pool = self.pools[country]
        female = kw.pop("female", self.noise.chance(0.5))
        given = kw.pop("given", None) or self.rng.choice(pool.female if female else pool.male)
        family = kw.pop("family", None) or self.rng.choice(pool.last)
        p = Person(
            entity=f"I{len(self.people) + 1:06d}",
            country=country,
            given=given,
            family=family,
            born=kw.pop("born", None) or self.noise.birth_date((1940, 2005)),
            female=female,
            email="",
            mobile=self.number(country, True),
            home=kw.pop("home", None) or self.home(country),
            **kw,
        )
        p.email = f"{email_local(given, family, self.rng)}@{self.rng.choice(pool.free_mail)}"
        if any(ord(ch) > 127 for ch in given + family):
            self.traps["diacritics"].append(p.entity)
        self.people.append(p)
        return p

    def populate(self, entities: int) -> None:
        while len(self.people) < entities:
            country = self.rng.choices(COUNTRIES, (0.35, 0.35, 0.30))[0]
            if self.noise.chance(0.3):
                home, landline = self.home(country), self.number(country, False)
                a = self.person(country, female=False, home=home, landline=landline)
                b = self.person(country, female=True, family=a.family, home=home, landline=landline)
                if self.noise.chance(0.5):
                    b.maiden = self.rng.choice(self.pools[country].last)
                    self.traps["married"].append(b.entity)
                members = [a, b]
                if self.noise.chance(0.3):
                    child = self.person(country, family=a.family, home=home, landline=landline)
                    child.born = date(
                        min(2005, a.born.year + self.rng.randint(20, 32)),
                        3,
                        self.rng.randint(1, 28),
                    )
                    members.append(child)
                self.traps["households"].append([m.entity for m in members])
            else:
                self.person(country)
        for p in self.people:
            if self.noise.chance(0.12):
                p.previous = p.home
                p.home = self.home(p.country)
                self.traps["movers"].append(p.entity)
            p.silos = {
                s
                for s, q in (("loyalty", 0.6), ("crm", 0.6), ("eshop", 0.55))
                if self.noise.chance(q)
            }
            if not p.silos:
                p.silos = {self.rng.choice(("loyalty", "crm", "eshop"))}

    def spelled(self, p: Person, family: str) -> tuple[str, str]:
        given = self.noise.nickname(p.given, 0.08) if p.country == "GB" else p.given
        if "-" in given and self.noise.chance(0.15):  # Jean-Pierre -> Jean Pierre / Jean
            given = given.replace("-", " ") if self.noise.chance(0.5) else given.split("-")[0]
        if self.noise.chance(0.15):
            given, family = (
                ascii_fold(given, p.country == "DE"),
                ascii_fold(family, p.country == "DE"),
            )
        return self.noise.maybe_typo(given, 0.04), self.noise.maybe_typo(family, 0.04)

    def loyalty(self, truth: Truth) -> list[dict]:
        rows = []
        for p in self.people:
            if "loyalty" not in p.silos:
                continue
            given, family = self.spelled(
                p, p.maiden if p.maiden and self.noise.chance(0.3) else p.family
            )
            home = p.previous if p.previous and self.noise.chance(0.4) else p.home
            key = f"L{len(rows) + 1:07d}"
            truth.add("loyalty", key, p.entity)
            rows.append(
                {
                    "MemberNo": key,
                    "Surname": self.noise.case(family, 0.2, 0.0),
                    "Forename": given,
                    "DateOfBirth": self.noise.date_slip(p.born, 0.02).strftime("%d/%m/%Y")
                    if self.noise.chance(0.85)
                    else "",
                    "Mobile": self.noise.blank(self.show_phone(p.country, p.mobile), 0.1),
                    "Street": home.street,
                    "Postcode": home.postcode,
                    "Town": home.city,
                    "Country": p.country,
                    "Email": self.noise.blank(p.email, 0.35),
                    "Updated": f"2026-{self.rng.randint(1, 10):02d}-{self.rng.randint(1, 28):02d}",
                }
            )
        return rows

    def crm(self, truth: Truth) -> list[dict]:
        rows = []
        for p in self.people:
            if "crm" not in p.silos:
                continue
            given, family = self.spelled(p, p.family)
            name = f"{family}, {given}" if self.noise.chance(0.5) else f"{given} {family}"
            phone = p.landline if p.landline and self.noise.chance(0.5) else p.mobile
            key = f"K-{len(rows) + 1:06d}"
            truth.add("crm", key, p.entity)
            rows.append(
                {
                    "Kundennr": key,
                    "Name": name,
                    "Geburtsdatum": self.noise.date_slip(p.born, 0.02).strftime("%d.%m.%Y")
                    if self.noise.chance(0.7)
                    else "",
                    "Telefon": self.noise.blank(self.show_phone(p.country, phone), 0.1),
                    "Strasse": p.home.street,
                    "PLZ": p.home.postcode,
                    "Ort": p.home.city.upper() if self.noise.chance(0.2) else p.home.city,
                    "Land": self.rng.choice(COUNTRY_NAMES[p.country]),
                    "EMail": self.noise.blank(p.email, 0.5),
                    "Geaendert": f"2026-{self.rng.randint(1, 10):02d}-{self.rng.randint(1, 28):02d}",
                }
            )
        return rows

    def eshop(self, truth: Truth) -> list[dict]:
        rows = []
        for p in self.people:
            if "eshop" not in p.silos:
                continue
            accounts = [p.email]
            if self.noise.chance(0.07):
                pool = self.pools[p.country]
                accounts.append(
                    f"{email_local(p.given, p.family, self.rng)}@{self.rng.choice(pool.free_mail)}"
                )
                self.traps["silo_duplicates"].append(["eshop", p.entity])
            for email in accounts:
                given, family = self.spelled(p, p.family)
                home = p.previous if p.previous and self.noise.chance(0.3) else p.home
                key = f"{self.rng.getrandbits(48):012x}"
                truth.add("eshop", key, p.entity)
                rows.append(
                    {
                        "id": key,
                        "customer": {"first_name": given, "last_name": family},
                        "email": email,
                        "phone": self.show_phone(p.country, p.mobile)
                        if self.noise.chance(0.5)
                        else None,
                        "birth_date": p.born.strftime("%d/%m/%Y")
                        if self.noise.chance(0.3)
                        else None,
                        "address": {
                            "line1": home.street,
                            "postal_code": home.postcode,
                            "city": home.city,
                            "country": p.country,
                        },
                        "updated_at": f"2026-11-{self.rng.randint(1, 20):02d}T12:00:00Z",
                    }
                )
        return rows


def mobile_de(number: str) -> bool:
    return number[:1] == "1"


LOYALTY_HEADER = [
    "MemberNo",
    "Surname",
    "Forename",
    "DateOfBirth",
    "Mobile",
    "Street",
    "Postcode",
    "Town",
    "Country",
    "Email",
    "Updated",
]
CRM_HEADER = [
    "Kundennr",
    "Name",
    "Geburtsdatum",
    "Telefon",
    "Strasse",
    "PLZ",
    "Ort",
    "Land",
    "EMail",
    "Geaendert",
]


def generate(out: Path, records: int = 10000, seed: int = 2718) -> dict[str, int]:
    """``out/landing/{loyalty,crm,eshop}/``, ``out/truth.csv`` and ``out/traps.json``."""
    gen = International(seed)
    gen.populate(max(4, round(records / 1.8)))
    truth = Truth()
    loyalty, crm, shop = gen.loyalty(truth), gen.crm(truth), gen.eshop(truth)
    write_csv(out / "landing/loyalty/members_2026-10-01.csv", LOYALTY_HEADER, loyalty)
    write_csv(out / "landing/crm/kunden_2026-10-01.csv", CRM_HEADER, crm, delimiter=";")
    write_jsonl(out / "landing/eshop/customers_2026-10-01.jsonl", shop)
    truth.write(out / "truth.csv")
    write_traps(out / "traps.json", gen.traps)
    return {"loyalty": len(loyalty), "crm": len(crm), "eshop": len(shop)}
