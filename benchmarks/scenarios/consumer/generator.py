"""Consumer scenario: a bank, a telco and a web shop merged (US persons).

Traps: households sharing an address, a surname and a landline; Jr/Sr pairs at one address
(same name, different birth dates, different SSNs); very common names in many towns; two
accounts of one person inside one silo; people who moved (stale copies keep the old address);
married names (an older copy under the maiden name).

Silos (each its own layout):
  bank     CSV ``;``: Surname / Forename / MiddleInitial / Suffix, MM/DD/YYYY, SSN
  telco    CSV ``,``: one full-name column ("SMITH, JOHN A" or "John A. Smith Jr"), ISO dates
  webshop  JSON Lines, nested address, camelCase, e-mail centric, rarely a birth date
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from benchmarks.scenarios.common import (
    Noise,
    Truth,
    email_local,
    valid_phone,
    write_csv,
    write_jsonl,
    write_traps,
)

AREA_CODES = (
    "212",
    "312",
    "415",
    "617",
    "713",
    "202",
    "303",
    "404",
    "503",
    "602",
    "214",
    "305",
    "206",
    "412",
    "512",
    "614",
    "704",
    "801",
    "813",
    "919",
)
COMMON_NAMES = (
    ("James", "Smith"),
    ("Maria", "Garcia"),
    ("Michael", "Johnson"),
    ("Mary", "Williams"),
    ("Robert", "Brown"),
    ("Jennifer", "Jones"),
    ("David", "Miller"),
    ("Linda", "Davis"),
)


@dataclass
class Address:
    line1: str
    line2: str
    city: str
    state: str
    zip: str


@dataclass
class Person:
    entity: str
    given: str
    middle: str
    family: str
    born: date
    female: bool
    ssn: str
    email: str
    mobile: str
    address: Address
    landline: str = ""
    suffix: str = ""
    maiden: str = ""
    old_email: str = ""
    previous: Address | None = None
    silos: set[str] = field(default_factory=set)


class Consumer:
    def __init__(self, seed: int) -> None:
        from faker import Faker

        self.rng = random.Random(seed)
        self.noise = Noise(self.rng)
        fake = Faker("en_US")
        fake.seed_instance(seed)
        from faker.providers.person.en_US import Provider as P

        self.female = list(P.first_names_female)
        self.female_w = list(P.first_names_female.values())
        self.male = list(P.first_names_male)
        self.male_w = list(P.first_names_male.values())
        self.last = list(P.last_names)
        self.last_w = list(P.last_names.values())
        self.streets = sorted({fake.street_name() for _ in range(900)})
        states = ("NY", "CA", "TX", "IL", "MA", "WA", "FL", "GA", "OH", "PA", "NC", "AZ", "CO")
        self.places = []
        for _ in range(350):
            state = self.rng.choice(states)
            self.places.append((fake.city(), state, fake.postcode_in_state(state)))
        self.domains = ("gmail.com", "yahoo.com", "outlook.com", "aol.com", "icloud.com")
        self.people: list[Person] = []
        self.traps: dict[str, list] = {
            "households": [],
            "jr_sr": [],
            "common_names": [],
            "married": [],
            "movers": [],
            "silo_duplicates": [],
        }

    # -- pieces -------------------------------------------------------------------------------
    def phone(self) -> str:
        while True:
            digits = (
                self.rng.choice(AREA_CODES)
                + str(self.rng.randint(200, 989))
                + (self.noise.digits(4))
            )
            if digits[3:6] != "555" and valid_phone("US", digits):
                return digits

    def show_phone(self, digits: str) -> str:
        a, b, c = digits[:3], digits[3:6], digits[6:]
        return self.rng.choice(
            (f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", digits, f"{a}.{b}.{c}")
        )

    def ssn(self) -> str:
        area = self.rng.choice([a for a in range(1, 666) if a != 0])
        return f"{area:03d}-{self.rng.randint(1, 99):02d}-{self.rng.randint(1, 9999):04d}"

    def ssn_slip(self, ssn: str, p: float) -> str:
        """One digit keyed wrong, now and then."""
        if not self.noise.chance(p):
            return ssn
        return ssn[:-1] + str((int(ssn[-1]) + 1) % 10)

    def address(self) -> Address:
        city, state, zip_ = self.rng.choice(self.places)
        line2 = f"Apt {self.rng.randint(1, 40)}" if self.noise.chance(0.2) else ""
        return Address(
            f"{self.rng.randint(1, 9999)} {self.rng.choice(self.streets)}", line2, city, state, zip_
        )

    def given(self, female: bool) -> str:
        if female:
            return self.rng.choices(self.female, self.female_w)[0]
        return self.rng.choices(self.male, self.male_w)[0]

    def person(self, **kw) -> Person:  # noqa: ANN003
        female = kw.pop("female", self.noise.chance(0.5))
        given = kw.pop("given", None) or self.given(female)
        family = kw.pop("family", None) or self.rng.choices(self.last, self.last_w)[0]
        middle = self.given(female) if self.noise.chance(0.5) else ""
        p = Person(
            entity=f"C{len(self.people) + 1:06d}",
            given=given,
            middle=middle,
            family=family,
            born=kw.pop("born", None) or self.noise.birth_date((1940, 2004)),
            female=female,
            ssn=self.ssn(),
            email="",
            mobile=self.phone(),
            address=kw.pop("address", None) or self.address(),
            **kw,
        )
        p.email = f"{email_local(p.given, p.family, self.rng)}@{self.rng.choice(self.domains)}"
        self.people.append(p)
        return p

    # -- population ---------------------------------------------------------------------------
    def populate(self, entities: int) -> None:
        while len(self.people) < entities:
            r = self.rng.random()
            if r < 0.30:  # a household: a couple, maybe a grown-up child, one landline
                addr, landline = self.address(), self.phone()
                a = self.person(female=False, address=addr, landline=landline)
                b = self.person(female=True, family=a.family, address=addr, landline=landline)
                b.born = date(
                    a.born.year + self.rng.randint(-4, 4), b.born.month, min(28, b.born.day)
                )
                if self.noise.chance(0.5):  # married name: older copies under the maiden name
                    b.maiden = self.rng.choices(self.last, self.last_w)[0]
                    b.old_email = f"{email_local(b.given, b.maiden, self.rng)}@{self.rng.choice(self.domains)}"
                    self.traps["married"].append(b.entity)
                members = [a, b]
                if self.noise.chance(0.35):
                    child = self.person(family=a.family, address=addr, landline=landline)
                    child.born = date(
                        min(2005, a.born.year + self.rng.randint(20, 32)),
                        6,
                        self.rng.randint(1, 28),
                    )
                    members.append(child)
                self.traps["households"].append([m.entity for m in members])
            elif r < 0.34:  # Jr/Sr: father and son of one name at one address
                addr, landline = self.address(), self.phone()
                sr = self.person(female=False, address=addr, landline=landline, suffix="Sr")
                sr.born = self.noise.birth_date((1940, 1965))
                jr = self.person(
                    female=False,
                    given=sr.given,
                    family=sr.family,
                    address=addr,
                    landline=landline,
                    suffix="Jr",
                )
                jr.middle = sr.middle
                jr.born = date(
                    sr.born.year + self.rng.randint(22, 35), jr.born.month, 1 + (jr.born.day % 28)
                )
                self.traps["jr_sr"].append([sr.entity, jr.entity])
            elif r < 0.40:  # a very common name, in some town
                given, family = self.rng.choice(COMMON_NAMES)
                p = self.person(
                    female=given in ("Maria", "Mary", "Jennifer", "Linda"),
                    given=given,
                    family=family,
                )
                self.traps["common_names"].append(p.entity)
            else:
                self.person()
        for p in self.people:
            if self.noise.chance(0.12):  # moved: stale copies keep the previous address
                p.previous = self.address()
                self.traps["movers"].append(p.entity)
            r = self.rng.random()
            p.silos = {
                s
                for s, q in (("bank", 0.62), ("telco", 0.58), ("webshop", 0.55))
                if r < q or self.noise.chance(q * 0.5)
            }
            if not p.silos:
                p.silos = {self.rng.choice(("bank", "telco", "webshop"))}

    # -- silos --------------------------------------------------------------------------------
    def name_noise(self, p: Person, family: str) -> tuple[str, str]:
        given = self.noise.maybe_typo(self.noise.nickname(p.given, 0.12), 0.04)
        return given, self.noise.maybe_typo(family, 0.04)

    def bank(self, truth: Truth) -> list[dict]:
        rows = []
        for p in self.people:
            if "bank" not in p.silos:
                continue
            given, family = self.name_noise(p, p.family)
            addr = p.address
            key = f"B{len(rows) + 1:07d}"
            truth.add("bank", key, p.entity)
            born = self.noise.date_slip(p.born, 0.02)
            rows.append(
                {
                    "CustomerID": key,
                    "Surname": self.noise.case(family),
                    "Forename": self.noise.case(given),
                    "MiddleInitial": p.middle[:1] if self.noise.chance(0.7) else "",
                    "Suffix": p.suffix if self.noise.chance(0.8) else "",
                    "DateOfBirth": born.strftime("%m/%d/%Y"),
                    "SSN": self.noise.blank(self.ssn_slip(p.ssn, 0.01), 0.15),
                    "AddressLine1": addr.line1,
                    "AddressLine2": addr.line2,
                    "Town": addr.city,
                    "State": addr.state,
                    "ZIP": addr.zip
                    if self.noise.chance(0.8)
                    else f"{addr.zip}-{self.noise.digits(4)}",
                    "Phone": self.show_phone(
                        p.landline if p.landline and self.noise.chance(0.4) else p.mobile
                    ),
                    "Email": self.noise.blank(p.email, 0.3),
                    "LastChange": f"2026-0{self.rng.randint(1, 9)}-1{self.rng.randint(0, 9)}",
                }
            )
        return rows

    def telco(self, truth: Truth) -> list[dict]:
        rows = []
        for p in self.people:
            if "telco" not in p.silos:
                continue
            accounts = 2 if self.noise.chance(0.08) else 1
            if accounts == 2:
                self.traps["silo_duplicates"].append(["telco", p.entity])
            for n in range(accounts):
                given, family = self.name_noise(p, p.family)
                addr = p.previous if p.previous and self.noise.chance(0.5) else p.address
                middle = f" {p.middle[:1]}" if p.middle and self.noise.chance(0.5) else ""
                suffix = f" {p.suffix}" if p.suffix and self.noise.chance(0.6) else ""
                if self.noise.chance(0.5):
                    name = f"{family.upper()}, {given.upper()}{middle.upper()}{suffix.upper()}"
                else:
                    name = f"{given}{middle} {family}{suffix}"
                phone = (
                    p.landline if (p.landline and n == 0 and self.noise.chance(0.6)) else p.mobile
                )
                if n == 1:
                    phone = self.phone() if self.noise.chance(0.5) else p.mobile
                key = f"T-{len(rows) + 1:06d}"
                truth.add("telco", key, p.entity)
                rows.append(
                    {
                        "account_number": key,
                        "subscriber_name": name,
                        "service_street": f"{addr.line1} {addr.line2}".strip(),
                        "service_city": addr.city.upper() if self.noise.chance(0.3) else addr.city,
                        "service_state": addr.state,
                        "service_zip": addr.zip,
                        "contact_phone": self.show_phone(phone),
                        "date_of_birth": ""
                        if self.noise.chance(0.3)
                        else self.noise.date_slip(p.born, 0.02).isoformat(),
                        "email": p.email if self.noise.chance(0.4) else "",
                        "updated": f"2026-0{self.rng.randint(1, 9)}-0{self.rng.randint(1, 9)}T10:00:00",
                    }
                )
        return rows

    def webshop(self, truth: Truth) -> list[dict]:
        rows = []
        for p in self.people:
            if "webshop" not in p.silos:
                continue
            versions = [("current", p.email, p.family)]
            if p.maiden and self.noise.chance(0.6):  # an old account under the maiden name
                versions = [("maiden", p.old_email, p.maiden)]
                if self.noise.chance(0.5):
                    versions.append(("current", p.email, p.family))
            elif self.noise.chance(0.08):  # a second account with another mailbox
                alt = f"{email_local(p.given, p.family, self.rng)}@{self.rng.choice(self.domains)}"
                versions.append(("second", alt, p.family))
            if len(versions) == 2:
                self.traps["silo_duplicates"].append(["webshop", p.entity])
            for kind, email, family in versions:
                given, family = self.name_noise(p, family)
                addr = (
                    p.previous
                    if (p.previous and kind != "current") or (p.previous and self.noise.chance(0.3))
                    else p.address
                )
                key = f"u{self.rng.getrandbits(40):010x}"
                truth.add("webshop", key, p.entity)
                rows.append(
                    {
                        "customerId": key,
                        "firstName": given,
                        "lastName": f"{family} {p.suffix}"
                        if p.suffix and self.noise.chance(0.3)
                        else family,
                        "email": email,
                        "mobile": self.show_phone(p.mobile) if self.noise.chance(0.6) else "",
                        "birthday": p.born.isoformat() if self.noise.chance(0.25) else None,
                        "shipping": {
                            "line1": addr.line1,
                            "line2": addr.line2 or None,
                            "city": addr.city,
                            "region": addr.state,
                            "zip": addr.zip,
                        },
                        "updatedAt": f"2026-1{self.rng.randint(0, 1)}-0{self.rng.randint(1, 9)}T08:00:00Z",
                    }
                )
        return rows


BANK_HEADER = [
    "CustomerID",
    "Surname",
    "Forename",
    "MiddleInitial",
    "Suffix",
    "DateOfBirth",
    "SSN",
    "AddressLine1",
    "AddressLine2",
    "Town",
    "State",
    "ZIP",
    "Phone",
    "Email",
    "LastChange",
]
TELCO_HEADER = [
    "account_number",
    "subscriber_name",
    "service_street",
    "service_city",
    "service_state",
    "service_zip",
    "contact_phone",
    "date_of_birth",
    "email",
    "updated",
]


def generate(out: Path, records: int = 10000, seed: int = 2718) -> dict[str, int]:
    """``out/landing/{bank,telco,webshop}/``, ``out/truth.csv`` and ``out/traps.json``."""
    gen = Consumer(seed)
    gen.populate(max(4, round(records / 2.4)))
    truth = Truth()
    bank, telco, shop = gen.bank(truth), gen.telco(truth), gen.webshop(truth)
    write_csv(out / "landing/bank/customers_2026-10-01.csv", BANK_HEADER, bank, delimiter=";")
    write_csv(out / "landing/telco/subscribers_2026-10-01.csv", TELCO_HEADER, telco)
    write_jsonl(out / "landing/webshop/accounts_2026-10-01.jsonl", shop)
    truth.write(out / "truth.csv")
    write_traps(out / "traps.json", gen.traps)
    return {"bank": len(bank), "telco": len(telco), "webshop": len(shop)}
