"""Person and organisation names.

Person names are split by ``nameparser`` (titles, suffixes, "Last, First" order, particles such
as "de la"); organisation legal forms are found by ``cleanco``'s international term list; person
vs organisation, where a source does not say, by ``probablepeople``. Display values keep accents;
match keys are folded to ASCII, and given-name keys map nicknames to the formal name with the
maintained ``nicknames`` list (Bill -> william, Peggy -> margaret).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

from cleanco import basename, prepare_default_terms
from doublemetaphone import doublemetaphone
from nameparser import HumanName
from nicknames import NickNamer

from mdm_orchestration.cleansing.text import clean_text, fold


@dataclass(frozen=True)
class PersonName:
    title: str | None = None
    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None
    suffix: str | None = None
    full_name: str | None = None
    given_key: str | None = None
    family_key: str | None = None
    given_phonetic: str | None = None
    family_phonetic: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True)
class OrganisationName:
    company_name: str | None = None
    legal_form: str | None = None
    company_key: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@lru_cache(maxsize=1)
def _nicknamer() -> NickNamer:
    return NickNamer()


@lru_cache(maxsize=1)
def _name_frequency() -> dict[str, float]:
    """US census given-name frequencies (as bundled with Faker), folded names as keys."""
    from faker.providers.person.en_US import Provider

    freq: dict[str, float] = {}
    for table in (Provider.first_names_male, Provider.first_names_female):
        for name, weight in table.items():
            key = name.lower()
            freq[key] = freq.get(key, 0.0) + float(weight)
    return freq


@lru_cache(maxsize=65536)
def formal_given_name(name: str) -> str:
    """The formal form of a folded given name for match keys: ``bill`` -> a formal name.

    The nickname list relates names loosely and both ways (it lists ``john`` under ``johnathan``
    and ``bill`` under both ``william`` and ``robert``), so among the name and the names that list
    it as a nickname, the one given most often as a first name wins; the name itself on a tie.
    A formal name therefore stays itself, and a nickname maps to its commonest formal form.
    """
    nn = _nicknamer()
    freq = _name_frequency()
    best, best_freq = name, freq.get(name, 0.0)
    for candidate in sorted(nn.canonicals_of(name)):
        if name in nn.nicknames_of(candidate) and freq.get(candidate, 0.0) > best_freq:
            best, best_freq = candidate, freq[candidate]
    return best


@lru_cache(maxsize=65536)
def nickname_related(a: str, b: str) -> bool:
    """Whether two folded given names are one a nickname of the other (``tina`` and
    ``christine``, ``gina`` and ``regina``) in the maintained list, whichever way it lists them.
    Broader than the match key, which maps a nickname to one formal name only."""
    nn = _nicknamer()
    return (
        b in nn.nicknames_of(a)
        or a in nn.nicknames_of(b)
        or b in nn.canonicals_of(a)
        or a in nn.canonicals_of(b)
    )


def _fix_case(part: str | None) -> str | None:
    """Title-case a name part written all upper or all lower; keep deliberate mixed case."""
    if not part:
        return None
    if part.isupper() or part.islower():
        name = HumanName(part)
        name.capitalize(force=True)
        fixed = str(name)
        # HumanName may reorder a lone piece into a title or suffix; keep the original order.
        return (
            fixed
            if fixed.replace(" ", "").lower() == part.replace(" ", "").lower()
            else part.title()
        )
    return part


def _phonetic(key: str | None) -> str | None:
    if not key:
        return None
    return doublemetaphone(key.replace(" ", ""))[0] or None


def _key_compact(value: str | None) -> str | None:
    folded = fold(value)
    return folded.replace(" ", "") if folded else None


def parse_person_name(
    given: str | None = None, family: str | None = None, full: str | None = None
) -> PersonName:
    """Split and normalise a person's name from separate parts or one full-name string.

    ``full`` is used when neither part is given ("SMITH, John A.", "Dr. Mary-Ann O'Neil Jr").
    """
    given, family, full = clean_text(given), clean_text(family), clean_text(full)
    if not (given or family):
        if not full:
            return PersonName()
        human = HumanName(full)
    else:
        # "family, given" lets nameparser find titles and suffixes typed into either field.
        human = HumanName(f"{family}, {given}" if family and given else given or "")
        if family and (not given or not human.last):
            # A family name alone (or one nameparser cannot place) is taken as written.
            human = HumanName()
            human.last = family
            if given:
                human.first = given
    if (full or "").isupper() or (full or "").islower():
        human.capitalize(force=True)
    first = _fix_case(human.first or None)
    middle = _fix_case(human.middle or None)
    last = _fix_case(human.last or None)
    title = human.title or None
    suffix = human.suffix or None
    if not (first or last):
        return PersonName()
    display = " ".join(p for p in (first, middle, last, suffix) if p)
    first_key = fold(first)
    given_key = formal_given_name(first_key.split(" ")[0]) if first_key else None
    family_key = _key_compact(last)
    return PersonName(
        title=title,
        given_name=first,
        middle_name=middle,
        family_name=last,
        suffix=suffix,
        full_name=display,
        given_key=given_key,
        family_key=family_key,
        given_phonetic=_phonetic(given_key),
        family_phonetic=_phonetic(family_key),
    )


@lru_cache(maxsize=1)
def _legal_terms() -> list[tuple[int, list[str]]]:
    return prepare_default_terms()


#: Display spelling of common legal forms (cleanco finds them; this only spells them).
LEGAL_FORM_DISPLAY = {
    "inc": "Inc",
    "incorporated": "Inc",
    "corp": "Corp",
    "corporation": "Corp",
    "co": "Co",
    "company": "Co",
    "llc": "LLC",
    "llp": "LLP",
    "lp": "LP",
    "pllc": "PLLC",
    "ltd": "Ltd",
    "limited": "Ltd",
    "plc": "PLC",
    "gmbh": "GmbH",
    "ag": "AG",
    "kg": "KG",
    "sa": "S.A.",
    "sas": "S.A.S.",
    "sarl": "S.à r.l.",
    "srl": "S.r.l.",
    "spa": "S.p.A.",
    "bv": "B.V.",
    "nv": "N.V.",
    "ab": "AB",
    "as": "AS",
    "oy": "Oy",
    "pty ltd": "Pty Ltd",
    "pvt ltd": "Pvt Ltd",
    "sp z oo": "Sp. z o.o.",
    "gmbh & co kg": "GmbH & Co. KG",
}


def _normalise_legal_form(tail: str) -> str:
    key = " ".join(fold(tail.replace(".", "").replace(",", "")).split()) if fold(tail) else ""
    return LEGAL_FORM_DISPLAY.get(key, tail.strip(" ,").replace(".", "").upper())


_ORG_SMALL_WORDS = frozenset({"and", "of", "the", "for", "de", "du", "la", "von", "van", "und"})


def _org_word(word: str, first: bool) -> str:
    if not first and word.lower() in _ORG_SMALL_WORDS:
        return word.lower()
    # All-caps short tokens are usually acronyms (IBM, ABC); longer ones are shouting.
    if word.isupper() and len(word) <= 3:
        return word
    return "-".join(p[:1].upper() + p[1:].lower() for p in word.split("-"))


def _org_case(name: str) -> str:
    if not (name.isupper() or name.islower()):
        return name
    return " ".join(_org_word(w, i == 0) for i, w in enumerate(name.split()))


@lru_cache(maxsize=65536)
def parse_organisation_name(value: str | None) -> OrganisationName:
    """Split an organisation name into its name and normalised legal form, plus a match key."""
    name = clean_text(value)
    if not name:
        return OrganisationName()
    base = basename(name, terms=_legal_terms()).strip(" ,")
    tail = name[len(base) :].strip(" ,") if base and name.startswith(base) else ""
    legal_form = _normalise_legal_form(tail) if tail else None
    display_base = _org_case(base or name)
    display = f"{display_base} {legal_form}" if legal_form else display_base
    key = fold((base or name).replace("&", " and "))
    return OrganisationName(company_name=display, legal_form=legal_form, company_key=key)


@lru_cache(maxsize=65536)
def looks_like_organisation(name: str | None) -> bool:
    """Whether a free-text name is an organisation (for sources that do not say)."""
    name = clean_text(name)
    if not name:
        return False
    if parse_organisation_name(name).legal_form:
        return True
    import probablepeople  # loads its model on import (half a second); only some sources need it

    try:
        _, kind = probablepeople.tag(name)
    except probablepeople.RepeatedLabelError:
        return False
    return kind == "Corporation"
