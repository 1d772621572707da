"""What the scenario generators share: seeded noise, writers, the truth file, Faker pools.

Nothing here imports the hub: a scenario is data plus its ``sources.yaml``, and the hub sees it
only through its configuration, as it would see a site it has never met.
"""

from __future__ import annotations

import csv
import json
import random
import string
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

KEYBOARD_NEIGHBOURS = {
    "a": "qsz",
    "b": "vgn",
    "c": "xdv",
    "d": "sfe",
    "e": "wrd",
    "f": "dgr",
    "g": "fht",
    "h": "gjy",
    "i": "uok",
    "j": "hku",
    "k": "jli",
    "l": "ko",
    "m": "nj",
    "n": "bmh",
    "o": "ipl",
    "p": "o",
    "r": "etf",
    "s": "adw",
    "t": "ryg",
    "u": "yij",
    "v": "cbf",
    "w": "qes",
    "y": "tuh",
    "z": "xa",
}


@lru_cache(maxsize=1)
def _nick_namer():  # type: ignore[no-untyped-def]
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=8192)
def nicknames_of(given: str) -> tuple[str, ...]:
    return tuple(sorted(n.title() for n in _nick_namer().nicknames_of(given.lower())))


@dataclass
class Noise:
    """Seeded noise of the kinds silos really carry."""

    rng: random.Random

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def typo(self, text: str) -> str:
        """One keying slip: a neighbour key, a dropped, doubled or swapped letter."""
        letters = [i for i, ch in enumerate(text) if ch.isalpha()]
        if len(letters) < 3:
            return text
        i = self.rng.choice(letters[1:])
        kind = self.rng.randrange(4)
        ch = text[i]
        if kind == 0 and ch.lower() in KEYBOARD_NEIGHBOURS:
            sub = self.rng.choice(KEYBOARD_NEIGHBOURS[ch.lower()])
            return text[:i] + (sub.upper() if ch.isupper() else sub) + text[i + 1 :]
        if kind == 1:
            return text[:i] + text[i + 1 :]
        if kind == 2:
            return text[:i] + ch + text[i:]
        if i + 1 < len(text) and text[i + 1].isalpha():
            return text[:i] + text[i + 1] + ch + text[i + 2 :]
        return text[:i] + text[i + 1 :]

    def maybe_typo(self, text: str, p: float) -> str:
        return self.typo(text) if text and self.chance(p) else text

    def blank(self, value: str, p: float) -> str:
        return "" if self.chance(p) else value

    def nickname(self, given: str, p: float) -> str:
        if not self.chance(p):
            return given
        names = nicknames_of(given)
        return self.rng.choice(names) if names else given

    def case(self, text: str, p_upper: float = 0.1, p_lower: float = 0.03) -> str:
        r = self.rng.random()
        if r < p_upper:
            return text.upper()
        if r < p_upper + p_lower:
            return text.lower()
        return text

    def birth_date(self, rng_years: tuple[int, int] = (1940, 2005)) -> date:
        start = date(rng_years[0], 1, 1)
        days = (date(rng_years[1], 12, 31) - start).days
        return start + timedelta(days=self.rng.randrange(days))

    def date_slip(self, born: date, p: float) -> date:
        """A keying slip in a date: day and month swapped (when both fit) or one digit off."""
        if not self.chance(p):
            return born
        if born.day <= 12 and born.day != born.month and self.chance(0.5):
            return born.replace(day=born.month, month=born.day)
        try:
            return born.replace(day=max(1, min(28, born.day + self.rng.choice((-1, 1, 10)))))
        except ValueError:
            return born

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))


@dataclass
class Truth:
    """(source, source_key) -> entity id, written as ``truth.csv`` as the sample generator does."""

    rows: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, source: str, key: str, entity: str) -> None:
        self.rows[(source, key)] = entity

    def write(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["source", "source_key", "entity_id"])
            for (source, key), entity in sorted(self.rows.items()):
                w.writerow([source, key, entity])


def write_csv(path: Path, header: list[str], rows: list[dict], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, delimiter=delimiter, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_traps(path: Path, traps: dict[str, list]) -> None:
    """Which entities form each trap the scenario claims (tests check them on cleansed data)."""
    path.write_text(json.dumps(traps, indent=1, sort_keys=True), encoding="utf-8")


class Pools:
    """Name, street and place pools from one Faker locale, drawn once, then sampled quickly."""

    def __init__(self, locale: str, seed: int, places: int = 400, streets: int = 600) -> None:
        from faker import Faker

        fake = Faker(locale)
        fake.seed_instance(seed)
        self.locale = locale
        self.female = sorted({fake.first_name_female() for _ in range(900)})
        self.male = sorted({fake.first_name_male() for _ in range(900)})
        self.last = sorted({fake.last_name() for _ in range(2500)})
        self.streets = sorted({fake.street_name() for _ in range(streets)})
        self.places = sorted({(fake.city(), fake.postcode()) for _ in range(places)})
        self.company_words = sorted(
            {w.strip(",") for _ in range(600) for w in fake.company().split() if w[:1].isupper()}
        )
        self.free_mail = {
            "en_US": ("gmail.com", "yahoo.com", "outlook.com", "aol.com", "icloud.com"),
            "en_GB": ("gmail.com", "btinternet.com", "hotmail.co.uk", "yahoo.co.uk"),
            "de_DE": ("gmx.de", "web.de", "t-online.de", "gmail.com"),
            "fr_FR": ("orange.fr", "free.fr", "laposte.net", "gmail.com"),
            "es_ES": ("gmail.com", "hotmail.es", "telefonica.net"),
        }[locale]


def email_local(given: str, family: str, rng: random.Random) -> str:
    """A mailbox name from a person's name, ASCII-folded as mail providers would."""
    import unicodedata

    def plain(s: str) -> str:
        s = s.replace("ß", "ss")
        s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
        return "".join(ch for ch in s.lower() if ch.isalnum())

    g, f = plain(given), plain(family)
    style = rng.randrange(5)
    if style == 0:
        return f"{g}.{f}"
    if style == 1:
        return f"{g[:1]}{f}"
    if style == 2:
        return f"{g}{f}{rng.randrange(10, 99)}"
    if style == 3:
        return f"{f}.{g}"
    return f"{g}_{f}{rng.randrange(1, 9)}"


def valid_phone(region: str, national: str) -> bool:
    import phonenumbers

    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(national, region))
    except phonenumbers.NumberParseException:
        return False
