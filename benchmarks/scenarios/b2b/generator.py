"""B2B scenario: an international organisation master from an ERP, a sales CRM and a support desk.

Companies of GB, DE, FR, ES and the US with their legal forms (Ltd, PLC, LLP, GmbH, AG, KG,
SARL, SA, SAS, SL, Inc, LLC, Corp), registration / VAT ids valid for their country, websites and
business e-mail domains.

Traps (all different companies, each its own entity):
  same_name_other_country  one name in two countries ("Nova Systems Ltd" / "Nova Systems GmbH",
                           "Orion Conseil SA" in France and Spain)
  same_name_other_city     one name and legal form in two cities of one country
  group_at_one_address     companies of one group at one address ("Acme Holdings Ltd" and
                           "Acme Logistics Ltd", or "Acme GmbH" and "Acme AG")
  switchboard              the tenants of one building behind one switchboard number

Silos:
  erp      CSV ``;``: Name1 (name) / Name2 (legal form), ISO country code, tax number, YYYYMMDD
  crm      CSV ``,``: one account-name column, country names, website, international phones;
           sales reps' duplicate accounts; stale addresses of companies that moved
  support  JSON Lines: the organisation as the help desk knows it, a contact's e-mail, VAT
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.scenarios.common import (
    Noise,
    Truth,
    valid_phone,
    write_csv,
    write_jsonl,
    write_traps,
)

COUNTRIES = ("GB", "DE", "FR", "ES", "US")
LOCALES = {"GB": "en_GB", "DE": "de_DE", "FR": "fr_FR", "ES": "es_ES", "US": "en_US"}
COUNTRY_WEIGHTS = (0.25, 0.22, 0.18, 0.15, 0.20)
#: Legal forms per country, and how the silos spell them.
FORMS = {
    "GB": ("Ltd", "Ltd", "Ltd", "PLC", "LLP"),
    "DE": ("GmbH", "GmbH", "AG", "KG", "GmbH & Co. KG"),
    "FR": ("SARL", "SAS", "SA", "SA"),
    "ES": ("SL", "SL", "SA"),
    "US": ("Inc", "LLC", "Corp", "Inc"),
}
SPELLINGS = {
    "Ltd": ("Ltd", "Limited", "Ltd.", "LTD"),
    "PLC": ("PLC", "plc", "Public Limited Company"),
    "Inc": ("Inc", "Inc.", "Incorporated"),
    "Corp": ("Corp", "Corp.", "Corporation"),
    "SARL": ("SARL", "S.A.R.L.", "Sàrl"),
    "SA": ("SA", "S.A."),
    "SAS": ("SAS", "S.A.S."),
    "SL": ("SL", "S.L."),
}
INDUSTRIES = {
    "GB": ("Logistics", "Consulting", "Engineering", "Foods", "Systems", "Analytics", "Property"),
    "DE": ("Logistik", "Maschinenbau", "Beratung", "Systeme", "Immobilien", "Technik", "Bau"),
    "FR": ("Conseil", "Logistique", "Industries", "Services", "Immobilier", "Transports"),
    "ES": ("Construcciones", "Consultores", "Logística", "Servicios", "Distribuciones"),
    "US": ("Logistics", "Solutions", "Systems", "Partners", "Capital", "Labs", "Foods"),
}
#: English brand stems that companies in several countries carry.
BRANDS = (
    "Atlas",
    "Nova",
    "Apex",
    "Vertex",
    "Orion",
    "Zenith",
    "Summit",
    "Delta",
    "Helix",
    "Polaris",
    "Quantum",
    "Meridian",
    "Pinnacle",
    "Horizon",
    "Sterling",
    "Evergreen",
    "Titan",
    "Falcon",
)
SHARED_INDUSTRIES = ("Systems", "Consulting", "Logistics", "Solutions", "Group", "Partners")
GROUP_UNITS = ("Holdings", "Logistics", "Services", "Finance", "Property", "Trading")
COUNTRY_NAMES = {
    "GB": ("United Kingdom", "UK", "Great Britain", "GB"),
    "DE": ("Germany", "Deutschland", "DE"),
    "FR": ("France", "FR"),
    "ES": ("Spain", "España", "ES"),
    "US": ("United States", "USA", "US"),
}
TLD = {"GB": ".co.uk", "DE": ".de", "FR": ".fr", "ES": ".es", "US": ".com"}
DIAL = {"GB": "44", "DE": "49", "FR": "33", "ES": "34", "US": "1"}
PHONE_PREFIXES = {
    "GB": (("20", 8), ("161", 7), ("113", 7), ("121", 7)),
    "DE": (("30", 8), ("89", 8), ("40", 8), ("221", 7)),
    "FR": (("1", 8), ("4", 8), ("5", 8)),
    "ES": (("91", 7), ("93", 7), ("96", 7)),
    "US": (("212", 7), ("312", 7), ("415", 7), ("617", 7), ("713", 7)),
}
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "orange.fr", "hotmail.es")


@dataclass
class Site:
    street: str
    postcode: str
    city: str
    region: str = ""


@dataclass
class Company:
    entity: str
    country: str
    stem: str
    form: str
    reg_id: str
    domain: str
    phone: str  # national significant number
    site: Site
    previous: Site | None = None
    silos: set[str] = field(default_factory=set)


def _plain(text: str) -> str:
    import unicodedata

    text = text.replace("ß", "ss").replace("&", "and")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").replace("--", "-")


class B2B:
    def __init__(self, seed: int) -> None:
        from faker import Faker

        self.rng = random.Random(seed)
        self.noise = Noise(self.rng)
        self.pools: dict[str, dict] = {}
        for country, locale in LOCALES.items():
            fake = Faker(locale)
            fake.seed_instance(seed)
            places = []
            for _ in range(120):
                if country == "US":
                    state = self.rng.choice(("NY", "CA", "TX", "IL", "MA", "WA"))
                    places.append((fake.city(), fake.postcode_in_state(state), state))
                elif country == "FR":
                    dept = self.rng.choice([*range(1, 20), *range(21, 96)])
                    places.append((fake.city(), f"{dept:02d}{self.rng.randint(0, 999):03d}", ""))
                else:
                    places.append((fake.city(), fake.postcode(), ""))
            self.pools[country] = {
                "last": sorted({fake.last_name() for _ in range(600)}),
                "given": sorted({fake.first_name() for _ in range(300)}),
                "streets": sorted({fake.street_name() for _ in range(300)}),
                "places": places,
            }
        self.companies: list[Company] = []
        self.used_domains: set[str] = set()
        self.traps: dict[str, list] = {
            "same_name_other_country": [],
            "same_name_other_city": [],
            "group_at_one_address": [],
            "switchboard": [],
            "crm_duplicates": [],
        }

    # -- pieces -------------------------------------------------------------------------------
    def site(self, country: str) -> Site:
        pool = self.pools[country]
        city, postcode, region = self.rng.choice(pool["places"])
        name, no = self.rng.choice(pool["streets"]), self.rng.randint(1, 180)
        street = {
            "GB": f"{no} {name}",
            "US": f"{no} {name}",
            "DE": f"{name} {no}",
            "FR": f"{no} {name}",
            "ES": f"{name}, {no}",
        }[country]
        return Site(street, postcode, city, region)

    def phone(self, country: str) -> str:
        while True:
            prefix, n = self.rng.choice(PHONE_PREFIXES[country])
            number = prefix + str(self.rng.randint(2, 9)) + self.noise.digits(n - 1)
            if valid_phone(country, ("0" if country not in ("US", "ES") else "") + number):
                return number

    def show_phone(self, country: str, number: str, international: bool) -> str:
        if international:
            return f"+{DIAL[country]} {number[:3]} {number[3:]}"
        if country == "FR":
            d = "0" + number
            return " ".join(d[i : i + 2] for i in range(0, 10, 2))
        if country == "US":
            return f"({number[:3]}) {number[3:6]}-{number[6:]}"
        if country == "ES":
            return f"{number[:2]} {number[2:5]} {number[5:7]} {number[7:]}"
        return f"0{number[:-7]} {number[-7:-4]} {number[-4:]}" if len(number) > 8 else "0" + number

    def reg_id(self, country: str) -> str:
        import stdnum.de.stnr
        import stdnum.es.cif
        import stdnum.fr.siren
        import stdnum.gb.vat
        import stdnum.us.ein

        while True:
            if country == "GB":
                value, ok = self.noise.digits(9), stdnum.gb.vat.is_valid
            elif country == "DE":
                value, ok = (
                    self.rng.choice(("28", "93", "21", "11")) + self.noise.digits(11),
                    (stdnum.de.stnr.is_valid),
                )
            elif country == "FR":
                value, ok = (
                    str(self.rng.randint(1, 9)) + self.noise.digits(8),
                    stdnum.fr.siren.is_valid,
                )
            elif country == "ES":
                value = self.rng.choice("ABG") + self.noise.digits(7)
                value, ok = (
                    value + stdnum.es.cif.calc_check_digits(value)[0],
                    stdnum.es.cif.is_valid,
                )
            else:
                value, ok = (
                    f"{self.rng.randint(10, 88):02d}-{self.noise.digits(7)}",
                    stdnum.us.ein.is_valid,
                )
            if ok(value):
                return value

    def show_reg_id(self, country: str, value: str) -> str:
        r = self.rng.random()
        if country == "GB":
            return (
                f"GB{value}"
                if r < 0.4
                else (f"GB {value[:3]} {value[3:7]} {value[7:]}" if r < 0.7 else value)
            )
        if country == "FR":
            return f"{value[:3]} {value[3:6]} {value[6:]}" if r < 0.5 else value
        if country == "DE":
            return value if r < 0.6 else f"{value[:4]}/{value[4:7]}/{value[7:]}"
        return value

    def domain_for(self, stem: str, country: str) -> str:
        base = _plain(stem)
        domain = base + TLD[country]
        n = 2
        while domain in self.used_domains:
            domain = f"{base}{n}{TLD[country]}"
            n += 1
        self.used_domains.add(domain)
        return domain

    def company(
        self,
        country: str,
        stem: str,
        form: str | None = None,
        site: Site | None = None,
        phone: str | None = None,
    ) -> Company:
        c = Company(
            entity=f"O{len(self.companies) + 1:06d}",
            country=country,
            stem=stem,
            form=form or self.rng.choice(FORMS[country]),
            reg_id=self.reg_id(country),
            domain=self.domain_for(stem, country),
            phone=phone or self.phone(country),
            site=site or self.site(country),
        )
        self.companies.append(c)
        return c

    def stem(self, country: str) -> str:
        pool = self.pools[country]
        r = self.rng.random()
        if r < 0.45:
            return f"{self.rng.choice(pool['last'])} {self.rng.choice(INDUSTRIES[country])}"
        if r < 0.7:
            return f"{self.rng.choice(pool['last'])} & {self.rng.choice(pool['last'])}"
        if r < 0.85:
            return f"{self.rng.choice(pool['last'])}-{self.rng.choice(pool['last'])}"
        return f"{self.rng.choice(pool['given'])} {self.rng.choice(pool['last'])}"

    def country(self) -> str:
        return self.rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]

    # -- population ---------------------------------------------------------------------------
    def populate(self, entities: int) -> None:
        while len(self.companies) < entities:
            r = self.rng.random()
            if r < 0.05:  # one name in two countries
                stem = f"{self.rng.choice(BRANDS)} {self.rng.choice(SHARED_INDUSTRIES)}"
                if self.noise.chance(0.3):  # both have an "SA"
                    a, b = self.company("FR", stem, "SA"), self.company("ES", stem, "SA")
                else:
                    ca, cb = self.rng.sample(COUNTRIES, 2)
                    a, b = self.company(ca, stem), self.company(cb, stem)
                self.traps["same_name_other_country"].append([a.entity, b.entity])
            elif r < 0.08:  # one name and form in two cities of one country
                country = self.country()
                stem, form = self.stem(country), self.rng.choice(FORMS[country])
                a, b = self.company(country, stem, form), self.company(country, stem, form)
                self.traps["same_name_other_city"].append([a.entity, b.entity])
            elif r < 0.12:  # a group's companies at one address
                country = self.country()
                base = self.rng.choice(self.pools[country]["last"])
                site = self.site(country)
                if self.noise.chance(0.3) and country in ("DE", "FR", "ES", "GB"):
                    forms = {
                        "DE": ("GmbH", "AG"),
                        "FR": ("SAS", "SA"),
                        "ES": ("SL", "SA"),
                        "GB": ("Ltd", "PLC"),
                    }[country]
                    members = [self.company(country, base, f, site) for f in forms]
                else:
                    units = self.rng.sample(GROUP_UNITS, self.rng.randint(2, 3))
                    form = FORMS[country][0]
                    members = [self.company(country, f"{base} {u}", form, site) for u in units]
                self.traps["group_at_one_address"].append([m.entity for m in members])
            elif r < 0.17:  # one building, one switchboard, several tenants
                country = self.country()
                site, phone = self.site(country), self.phone(country)
                members = [
                    self.company(
                        country,
                        self.stem(country),
                        None,
                        Site(site.street, site.postcode, site.city, site.region),
                        phone,
                    )
                    for _ in range(self.rng.randint(3, 5))
                ]
                self.traps["switchboard"].append([m.entity for m in members])
            else:
                country = self.country()
                self.company(country, self.stem(country))
        for c in self.companies:
            if self.noise.chance(0.1):
                c.previous = c.site
                c.site = self.site(c.country)
            c.silos = {
                s
                for s, q in (("erp", 0.75), ("crm", 0.65), ("support", 0.55))
                if self.noise.chance(q)
            }
            if not c.silos:
                c.silos = {self.rng.choice(("erp", "crm", "support"))}

    # -- how silos write a name ---------------------------------------------------------------
    def spelled_form(self, form: str) -> str:
        return self.rng.choice(SPELLINGS.get(form, (form,)))

    def name_variant(self, c: Company, p_typo: float = 0.04) -> str:
        stem = c.stem
        if "&" in stem and self.noise.chance(0.3):
            stem = stem.replace(
                "&",
                "and"
                if c.country in ("GB", "US")
                else "und"
                if c.country == "DE"
                else "et"
                if c.country == "FR"
                else "y",
            )
        if self.noise.chance(0.25):  # ASCII-folded umlauts and accents, as old systems type them
            stem = stem.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")
            stem = (
                stem.replace("é", "e")
                .replace("è", "e")
                .replace("í", "i")
                .replace("ó", "o")
                .replace("á", "a")
            )
        return self.noise.maybe_typo(stem, p_typo)

    def erp(self, truth: Truth) -> list[dict]:
        rows = []
        for c in self.companies:
            if "erp" not in c.silos:
                continue
            key = f"{100000 + len(rows)}"
            truth.add("erp", key, c.entity)
            stem = self.name_variant(c).upper() if self.noise.chance(0.4) else self.name_variant(c)
            in_name1 = self.noise.chance(0.3)
            form = self.spelled_form(c.form)
            rows.append(
                {
                    "Debitor": key,
                    "Name1": f"{stem} {form}" if in_name1 else stem,
                    "Name2": "" if in_name1 else form,
                    "Street": c.site.street,
                    "PostCode": c.site.postcode,
                    "City": c.site.city,
                    "Region": c.site.region,
                    "Country": c.country,
                    "TaxNumber": self.noise.blank(self.show_reg_id(c.country, c.reg_id), 0.15),
                    "Telephone": self.noise.blank(self.show_phone(c.country, c.phone, False), 0.1),
                    "ChangedOn": f"2026{self.rng.randint(1, 10):02d}{self.rng.randint(1, 28):02d}",
                }
            )
        return rows

    def crm(self, truth: Truth) -> list[dict]:
        rows = []
        for c in self.companies:
            if "crm" not in c.silos:
                continue
            copies = 2 if self.noise.chance(0.08) else 1
            if copies == 2:
                self.traps["crm_duplicates"].append(c.entity)
            for n in range(copies):
                key = f"001{self.rng.getrandbits(40):012X}"
                truth.add("crm", key, c.entity)
                site = c.previous if c.previous and self.noise.chance(0.5) else c.site
                form = "" if self.noise.chance(0.15) else " " + self.spelled_form(c.form)
                web = self.rng.choice(
                    (f"https://www.{c.domain}", f"www.{c.domain}", c.domain, f"http://{c.domain}/")
                )
                rows.append(
                    {
                        "AccountId": key,
                        "AccountName": self.name_variant(c, 0.06 if n else 0.03) + form,
                        "Website": self.noise.blank(web, 0.25),
                        "BillingStreet": site.street,
                        "BillingCity": site.city,
                        "BillingState": site.region,
                        "BillingPostalCode": self.noise.blank(site.postcode, 0.05),
                        "BillingCountry": self.rng.choice(COUNTRY_NAMES[c.country]),
                        "Phone": self.noise.blank(
                            self.show_phone(c.country, c.phone, self.noise.chance(0.7)), 0.2
                        ),
                        "LastModifiedDate": f"2026-{self.rng.randint(1, 10):02d}-{self.rng.randint(1, 28):02d}T09:30:00Z",
                    }
                )
        return rows

    def support(self, truth: Truth) -> list[dict]:
        rows = []
        for c in self.companies:
            if "support" not in c.silos:
                continue
            key = f"org-{len(rows) + 1}"
            truth.add("support", key, c.entity)
            given = self.rng.choice(self.pools[c.country]["given"])
            family = self.rng.choice(self.pools[c.country]["last"])
            domain = self.rng.choice(FREE_MAIL) if self.noise.chance(0.15) else c.domain
            email = f"{_plain(given)}.{_plain(family)}@{domain}"
            form = " " + self.spelled_form(c.form) if self.noise.chance(0.6) else ""
            rows.append(
                {
                    "org_id": key,
                    "organisation": self.name_variant(c) + form,
                    "requester": {"name": f"{given} {family}", "email": email},
                    "phone": self.show_phone(c.country, c.phone, self.noise.chance(0.5))
                    if self.noise.chance(0.6)
                    else None,
                    "address": {
                        "street": self.noise.blank(c.site.street, 0.3),
                        "postcode": c.site.postcode,
                        "city": c.site.city,
                        "country_code": c.country,
                    },
                    "vat": self.show_reg_id(c.country, c.reg_id)
                    if self.noise.chance(0.3)
                    else None,
                    "updated": f"2026-{self.rng.randint(1, 11):02d}-01T00:00:00Z",
                }
            )
        return rows


ERP_HEADER = [
    "Debitor",
    "Name1",
    "Name2",
    "Street",
    "PostCode",
    "City",
    "Region",
    "Country",
    "TaxNumber",
    "Telephone",
    "ChangedOn",
]
CRM_HEADER = [
    "AccountId",
    "AccountName",
    "Website",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountry",
    "Phone",
    "LastModifiedDate",
]


def generate(out: Path, records: int = 8000, seed: int = 2718) -> dict[str, int]:
    """``out/landing/{erp,crm,support}/``, ``out/truth.csv`` and ``out/traps.json``."""
    gen = B2B(seed)
    gen.populate(max(8, round(records / 2.0)))
    truth = Truth()
    erp, crm, support = gen.erp(truth), gen.crm(truth), gen.support(truth)
    write_csv(out / "landing/erp/debitors_2026-10-01.csv", ERP_HEADER, erp, delimiter=";")
    write_csv(out / "landing/crm/accounts_2026-10-01.csv", CRM_HEADER, crm)
    write_jsonl(out / "landing/support/organisations_2026-10-01.jsonl", support)
    truth.write(out / "truth.csv")
    write_traps(out / "traps.json", gen.traps)
    return {"erp": len(erp), "crm": len(crm), "support": len(support)}
