"""Person and organisation names.

Person names are split by ``nameparser`` (titles, suffixes, "Last, First" order, particles such
as "de la"); organisation legal forms are found by ``cleanco``'s international term list; person
vs organisation, where a source does not say, by ``probablepeople``. Display values keep accents;
match keys are folded to ASCII, and given-name keys map nicknames to the formal name with the
maintained ``nicknames`` list (Bill -> william, Peggy -> margaret).

A generational suffix is a suffix wherever a source puts it: ``FERNANDEZ JR`` in the family-name
column and ``Jorge Jr`` in the given-name column give family ``Fernandez``, given ``Jorge``,
suffix ``Jr``, and the match keys are made from the names without it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

from cleanco import basename, prepare_default_terms
from cleanco.termdata import terms_by_type
from doublemetaphone import doublemetaphone
from nameparser import HumanName
from nameparser.config import CONSTANTS as NAME_CONSTANTS
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
    legal_form_family: str | None = None  # see LEGAL_FORM_FAMILIES

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


@lru_cache(maxsize=65536)
def _fix_case(part: str | None) -> str | None:
    """Title-case a name part written all upper or all lower; keep deliberate mixed case.

    Cached: the same given and family names recur across a hub's records, and nameparser's
    capitalisation is a third of a name's cleansing."""
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


#: The suffixes stripped from the end of a given- or family-name column: nameparser's suffixes
#: that are not acronyms (jr, jnr, junior, sr, snr, ii, iii, iv, esq, ...). Not its 600 degree and
#: honour acronyms (MA, ED, DO, CH...: real names and initials), nor single letters (``John V``
#: is a middle initial far more often than the fifth), nor ``dr`` (a title typed late).
STRIPPED_SUFFIXES = frozenset(
    s for s in NAME_CONSTANTS.suffix_not_acronyms if len(s) > 1 and s != "dr"
)
#: One spelling per generational suffix, so that ``JR``, ``Jr.`` and ``Junior`` compare equal.
SUFFIX_SPELLING = {
    "jr": "Jr",
    "jnr": "Jr",
    "junior": "Jr",
    "sr": "Sr",
    "snr": "Sr",
    "senior": "Sr",
    "esq": "Esq",
    "esquire": "Esq",
}
_ROMAN = re.compile(r"^[ivx]+$")
_SUFFIX_SPLIT = re.compile(r"[\s,]+")


def _suffix_key(token: str) -> str:
    return token.strip(".").lower()


def _spell_suffix(suffix: str) -> str:
    """``JR`` -> ``Jr``, ``jr.`` -> ``Jr``, ``iii`` -> ``III``; other suffixes as written."""
    out = []
    for token in _SUFFIX_SPLIT.split(suffix.strip(" ,")):
        key = _suffix_key(token)
        if key in SUFFIX_SPELLING:
            out.append(SUFFIX_SPELLING[key])
        elif _ROMAN.match(key):
            out.append(key.upper())
        elif token:
            out.append(token)
    return " ".join(dict.fromkeys(out))  # once each, in order


def split_trailing_suffixes(part: str | None) -> tuple[str | None, list[str]]:
    """A name column's value without the suffixes typed at its end, and those suffixes:
    ``FERNANDEZ JR`` -> (``FERNANDEZ``, [``JR``]). A suffix is stripped only while a name
    remains: a family name that is itself ``Junior`` stays."""
    if not part:
        return part, []
    tokens = [t for t in _SUFFIX_SPLIT.split(part) if t]
    found: list[str] = []
    while len(tokens) > 1 and _suffix_key(tokens[-1]) in STRIPPED_SUFFIXES:
        found.insert(0, tokens.pop())
    if not found:
        return part, []
    rest = part[: part.rindex(found[0])].rstrip(" ,")
    return rest, found


def parse_person_name(
    given: str | None = None, family: str | None = None, full: str | None = None
) -> PersonName:
    """Split and normalise a person's name from separate parts or one full-name string.

    ``full`` is used when neither part is given ("SMITH, John A.", "Dr. Mary-Ann O'Neil Jr").
    Suffixes at the end of either part are suffixes (:func:`split_trailing_suffixes`).
    """
    given, family, full = clean_text(given), clean_text(family), clean_text(full)
    given, given_suffixes = split_trailing_suffixes(given)
    family, family_suffixes = split_trailing_suffixes(family)
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
    found = human.suffix or ""
    initial = (given or "").split(" ")[-1].strip(".")
    if (
        given
        and family
        and not middle
        and len(initial) == 1
        and found.strip(".").upper() == initial.upper()
    ):
        # "John V" + "Smith": nameparser reads the V as "the fifth"; it is a middle initial.
        middle, found = _fix_case(initial), ""
    suffix = _spell_suffix(" ".join([*family_suffixes, *given_suffixes, found])) or None
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


#: Families of legal forms (issue 16): two records whose legal forms are of different families
#: (an ``Inc`` and a ``GmbH``) are two organisations; two of one family (``Ltd`` and ``Limited``,
#: ``LLC`` and ``GmbH``) do not contradict. The families are coarse on purpose, so that the ways
#: one company's form gets written stay in one family:
#:
#: - ``limited``: private companies limited by shares or guarantee (Ltd, Limited, LLC, PLLC,
#:   GmbH, UG, SARL, EURL, SL, SLU, SLL, SRL, BV, BVBA, Pty Ltd, Pte Ltd, Sp. z o.o., ApS, Oy,
#:   AB, AS)
#: - ``corporation``: public and share-issuing companies (PLC, Inc, Corp, Corporation, AG, SE,
#:   KGaA, SA, SAU, SAD, SAL, SAS, SASU, SpA, NV, ASA, Oyj, Bhd, SA de CV)
#: - ``partnership``: LLP, LP, LLLP, KG, GmbH & Co. KG, OHG, GbR, PartG, SNC, SCS, SC, SCP, SRC,
#:   S.Com., VOF, CV
#: - ``sole_trader`` (e.K., EI, EIRL), ``cooperative`` (eG, Coop, S.Coop., SAT), ``non_profit`` (e.V.,
#:   gGmbH, CIC), ``unlimited`` (Unlimited, ULC)
#:
#: Keyed by the folded form without spaces or punctuation (``S.à r.l.`` -> ``sarl``). A form not
#: listed takes the family of cleanco's business-type classification when cleanco puts it in
#: one family only (:data:`CLEANCO_TYPE_FAMILY`); cleanco alone is not enough, as it files PLC,
#: S.A. and N.V. with LLC and SARL. ``Co``/``Company`` belong to no family (``Smith & Co`` can be
#: any form). ``SAS`` is the French form (an Italian s.a.s. is a partnership).
LEGAL_FORM_FAMILIES: dict[str, str | None] = {
    **dict.fromkeys(
        (
            "ltd limited llc pllc lc gmbh mbh ug ughaftungsbeschrankt sarl srl srls eurl sl slu"
            " slne sll bv bvba sprl ptyltd pty pteltd pvtltd privatelimited spzoo sro aps oy ab as"
            " ltda sderl sdnbhd kft doo ooo"
        ).split(),
        "limited",
    ),
    **dict.fromkeys(
        (
            "plc inc incorporated corp corporation ag se kgaa sa sau sad sal sas sasu spa nv asa"
            " oyj bhd sadecv pc sca"
        ).split(),
        "corporation",
    ),
    **dict.fromkeys(
        (
            "llp lp lllp kg gmbhcokg ohg gbr partg partgmbb snc scs sc scp scom src srlc vof cv"
        ).split(),
        "partnership",
    ),
    **dict.fromkeys("ek ekfm ekfr ei eirl".split(), "sole_trader"),
    **dict.fromkeys("eg coop scoop sat cooperative".split(), "cooperative"),
    **dict.fromkeys("ev ggmbh cic".split(), "non_profit"),
    **dict.fromkeys("unlimited unltd ultd ulc".split(), "unlimited"),
    **dict.fromkeys("co company".split(), None),
}
#: cleanco's business types (``cleanco.termdata.terms_by_type``) and the family each falls in.
CLEANCO_TYPE_FAMILY = {
    "Corporation": "corporation",
    "Professional Corporation": "corporation",
    "Limited": "limited",
    "Limited Liability Company": "limited",
    "Professional Limited Liability Company": "limited",
    "Private Company": "limited",
    "General Partnership": "partnership",
    "Limited Partnership": "partnership",
    "Limited Liability Partnership": "partnership",
    "Limited Liability Limited Partnership": "partnership",
    "Joint Stock / Unlimited": "unlimited",
    "Non-Profit": "non_profit",
    "Sole Proprietorship": "sole_trader",
}


def _form_tokens(text: str) -> list[str]:
    """Folded words of a legal form, dots dropped first so ``S.A.D.`` stays one word."""
    return (fold(text.replace(".", "").replace("&", " ")) or "").split()


def _family_key(text: str) -> str:
    return "".join(_form_tokens(text))


@lru_cache(maxsize=1)
def _cleanco_families() -> dict[str, str]:
    """cleanco's terms whose business types all fall in one family, by :func:`_family_key`."""
    found: dict[str, set[str]] = {}
    for business_type, terms in terms_by_type.items():
        family = CLEANCO_TYPE_FAMILY.get(business_type)
        for term in terms:
            found.setdefault(_family_key(term), set()).add(family or "")
    return {k: next(iter(v)) for k, v in found.items() if k and len(v) == 1 and "" not in v}


@lru_cache(maxsize=4096)
def legal_form_family(tail: str | None) -> str | None:
    """The family (:data:`LEGAL_FORM_FAMILIES`) of the legal-form words at the end of a name:
    the longest run of trailing words that names a known form (``& Co. KG`` -> ``kg``)."""
    tokens = _form_tokens(tail or "")
    cleanco = _cleanco_families()
    for start in range(len(tokens)):
        key = "".join(tokens[start:])
        if key in LEGAL_FORM_FAMILIES:
            return LEGAL_FORM_FAMILIES[key]
        if key in cleanco:
            return cleanco[key]
    return None


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


#: Forms that are also words or initials of names ("Acme Sat", "Bill Coop"): taken as a legal
#: form by :func:`_uncommon_legal_form` only when written with dots (``S.A.T.``).
_WORDLIKE_FORMS = frozenset(
    "pc sal sad sat src sc cv as ab oy se sa ei eg ev coop cooperative unlimited pty".split()
)


def _uncommon_legal_form(name: str) -> tuple[str, str]:
    """(name, legal form) for a form cleanco's term list lacks (``S.L.U.``, ``S.A.U.``, ``UG``,
    ``e.K.``): the last one or two words, when they are a form of :data:`LEGAL_FORM_FAMILIES`
    (a word-like one only with dots) and a name remains; else (``name``, "")."""
    words = name.split(" ")
    for n in (2, 1):
        if len(words) > n:
            tail = " ".join(words[-n:])
            key = _family_key(tail)
            if (key not in _WORDLIKE_FORMS or "." in tail) and LEGAL_FORM_FAMILIES.get(key):
                return " ".join(words[:-n]).strip(" ,"), tail
    return name, ""


@lru_cache(maxsize=65536)
def parse_organisation_name(value: str | None) -> OrganisationName:
    """Split an organisation name into its name and normalised legal form, plus a match key."""
    name = clean_text(value)
    if not name:
        return OrganisationName()
    base = basename(name, terms=_legal_terms()).strip(" ,")
    tail = name[len(base) :].strip(" ,") if base and name.startswith(base) else ""
    if not tail:
        base, tail = _uncommon_legal_form(name)
    legal_form = _normalise_legal_form(tail) if tail else None
    display_base = _org_case(base or name)
    display = f"{display_base} {legal_form}" if legal_form else display_base
    key = fold((base or name).replace("&", " and "))
    return OrganisationName(
        company_name=display,
        legal_form=legal_form,
        company_key=key,
        legal_form_family=legal_form_family(tail) if tail else None,
    )


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
