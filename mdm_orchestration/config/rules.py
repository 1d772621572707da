"""``quality.yaml`` and ``matching.yaml``: data-quality rules, matching settings."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from mdm_orchestration.config.base import CANONICAL_FIELDS, _known, _Strict


class Severity(StrEnum):
    #: The record goes to quarantine with the rule as its reason.
    block = "block"
    #: The record is cleansed; the rule is listed in its flags and lowers its score.
    flag = "flag"


#: The data-quality rules cleansing evaluates. Their severity and weight are configuration.
QUALITY_RULES: dict[str, str] = {
    "no_name": "neither a person name nor an organisation name",
    "no_contact_point": "no valid email, phone or street address",
    "required_missing": "a field the source must provide is empty (one flag per field)",
    "email_invalid": "email address fails syntax validation",
    "phone_invalid": "phone number is not a valid number for its country",
    "address_unparsed": "street line could not be split into number and street",
    "postcode_invalid": "postcode does not match its country's format",
    "country_unknown": "country is not an ISO 3166 country",
    "birth_date_invalid": "birth date is not a real date in the source's date order",
    "birth_date_implausible": "birth date outside the plausible age range",
    "national_id_invalid": "national id fails every check configured for its country",
}


class QualityRule(_Strict):
    severity: Severity = Severity.flag
    #: Score penalty when the rule fails (the score is 1 minus the penalties, floored at 0).
    weight: Annotated[float, Field(ge=0, le=1)] = 0.1


class QualityThresholds(_Strict):
    #: Above this share of a source's rows quarantined by cleansing, its check fails.
    max_quarantine_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    #: Each required field must be filled (and valid) in at least this share of records.
    min_completeness: Annotated[float, Field(ge=0, le=1)] = 0.8


class SourceQuality(_Strict):
    #: Canonical fields this source must provide; each empty one is a ``required_missing`` flag.
    required: list[str] = Field(default_factory=list)
    thresholds: QualityThresholds | None = None
    #: Per-source severity/weight overrides, e.g. ``{national_id_invalid: {severity: block}}``.
    rules: dict[str, QualityRule] = Field(default_factory=dict)

    @field_validator("required")
    @classmethod
    def _canonical(cls, value: list[str]) -> list[str]:
        return _known(value, CANONICAL_FIELDS, "canonical field")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: dict[str, QualityRule]) -> dict[str, QualityRule]:
        return _known(value, QUALITY_RULES, "rule")


class Plausibility(_Strict):
    min_age_years: Annotated[int, Field(ge=0, le=150)] = 14
    max_age_years: Annotated[int, Field(ge=1, le=150)] = 120


class QualityConfig(_Strict):
    rules: dict[str, QualityRule] = Field(
        default_factory=lambda: {name: QualityRule() for name in QUALITY_RULES}
    )
    thresholds: QualityThresholds = QualityThresholds()
    plausibility: Plausibility = Plausibility()
    #: Processes cleansing an extract of more than one batch (0: one per CPU, at most 4).
    workers: Annotated[int, Field(ge=0, le=64)] = 0
    #: Country -> python-stdnum modules tried in order (``us.ssn``); the first valid one wins.
    national_ids: dict[str, list[str]] = Field(default_factory=dict)
    sources: dict[str, SourceQuality] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _all_rules(cls, value: dict[str, QualityRule]) -> dict[str, QualityRule]:
        _known(value, QUALITY_RULES, "rule")
        # Rules left out of the file keep their defaults.
        return {name: value.get(name, QualityRule()) for name in QUALITY_RULES}

    @field_validator("national_ids")
    @classmethod
    def _stdnum_modules(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        import importlib

        for country, modules in value.items():
            if not re.fullmatch(r"[A-Z]{2}", country):
                raise ValueError(f"{country!r} is not an ISO 3166-1 alpha-2 code")
            for name in modules:
                if not re.fullmatch(r"[a-z]{2}\.[a-z_]+", name):
                    raise ValueError(f"{name!r} is not a python-stdnum module such as 'us.ssn'")
                try:
                    importlib.import_module(f"stdnum.{name}")
                except ImportError:
                    raise ValueError(f"python-stdnum has no module {name!r}") from None
        return value

    def rule(self, source: str, name: str) -> QualityRule:
        override = self.sources.get(source)
        if override and name in override.rules:
            return override.rules[name]
        return self.rules[name]

    def thresholds_for(self, source: str) -> QualityThresholds:
        override = self.sources.get(source)
        return (override.thresholds if override else None) or self.thresholds

    def required_for(self, source: str) -> list[str]:
        override = self.sources.get(source)
        return list(override.required) if override else []


#: Deterministic match rules applied before the learned model (``matching.yaml`` turns them on).
MATCH_RULES: dict[str, str] = {
    "same_national_id": "the same valid national id (and party type)",
    "same_email_and_given_name": "the same email key and the same formal given name",
    "same_phone_and_full_name": "the same valid phone and the same given and family name keys",
    "same_contact_and_company_name": (
        "organisations: the same name key and the same web domain (website or business "
        "email) or valid phone"
    ),
}


#: Person fields an agreement on which can be weighed by frequency.
TF_WEIGHTED = {
    "full_name": "the given and family name together (weighed in place of each when both agree)",
    "given_key": "the formal given name",
    "family": "the family name",
    "birth": "the birth date",
    "postcode": "the postcode",
    "city": "the town or city (weighed only where the postcode does not also agree)",
}

#: Person fields whose agreement identifies one person: it lifts the frequency penalty.
TF_IDENTIFYING = {
    "email": "the email key",
    "national_id": "the national id",
    "phone": "the valid phone (a household's landline is shared: not identifying by default)",
}


class TermFrequencyConfig(_Strict):
    """How an agreement on a common value is weighed down (``matching.yaml``
    ``term_frequencies``): counts are read by their level, ``floor(log2(count))``, and a value
    whose level is above its reference count's (``reference_counts[field]``, else
    ``reference_count``; for 64: from 128 records on) loses ``weights[field]`` log-odds per
    level, at most ``max_penalty`` per field and ``max_total_penalty`` per pair. Agreements on
    rare values are not weighed up: precision first. Setting ``reference_counts`` replaces the
    whole default (``birth: 8``); setting ``weights`` without ``full_name`` weighs the names
    each on its own.

    What is weighed is the coincidence two strangers would need: a pair agreeing on both names
    is weighed by how common the *full name* is (``James Smith``, not ``James`` and ``Smith``
    each); a postcode and its town count once (the postcode); a pair that also agrees on an
    ``identifying`` value (an email, a national id) is no coincidence and is not weighed down."""

    reference_count: Annotated[int, Field(ge=1)] = 64
    #: Per-field reference counts in place of ``reference_count``. A birth date is one of some
    #: 25,000 days: at a million records each is held by about 40, so it stops being
    #: distinctive far sooner than a name.
    reference_counts: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: {"birth": 8}
    )
    weights: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {
            "full_name": 0.35,
            "given_key": 0.35,
            "family": 0.35,
            "birth": 0.35,
            "postcode": 0.2,
            "city": 0.2,
        }
    )
    max_penalty: Annotated[float, Field(ge=0)] = 2.0
    max_total_penalty: Annotated[float, Field(ge=0)] = 3.0
    identifying: list[str] = Field(default_factory=lambda: ["email", "national_id"])

    @field_validator("weights", "reference_counts")
    @classmethod
    def _known_fields(cls, value: dict[str, float]) -> dict[str, float]:
        return _known(value, TF_WEIGHTED, "term-frequency field")

    @field_validator("identifying")
    @classmethod
    def _known_identifying(cls, value: list[str]) -> list[str]:
        return _known(value, TF_IDENTIFYING, "identifying field")

    def reference(self, field: str) -> int:
        """The level (``floor(log2)``) above which an agreement on ``field`` is weighed down."""
        return int(math.floor(math.log2(self.reference_counts.get(field, self.reference_count))))


class MatchingConfig(_Strict):
    #: Match probability at or above which two records join a cluster; ``None``: the threshold
    #: chosen from the labels for the best expected F1 when the model was trained.
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    #: Pairs scored in this band go to the steward review queue.
    review_band: tuple[float, float] = (0.3, 0.7)
    #: At most this share of the hub's records is pending review at a time: the items whose
    #: decision changes the most (uncertainty x records affected) are kept.
    review_max_share: Annotated[float, Field(gt=0, le=1)] = 0.01
    #: Blocks (records sharing a key) larger than this are skipped: shared switchboards and
    #: placeholder values, not evidence. Counted in the metadata.
    max_block_size: Annotated[int, Field(ge=2)] = 60
    #: The asset check flags clusters larger than this (over-merging).
    max_cluster_size: Annotated[int, Field(ge=2)] = 12
    rules: list[str] = Field(default_factory=lambda: list(MATCH_RULES))
    #: Two records agreeing on nothing but the name are left to review unless at most this
    #: many records in the hub carry that name (a rare name is evidence; a common one is not).
    rare_name_records: Annotated[int, Field(ge=0)] = 0
    #: Frequency-aware weighing of person agreements (see :class:`TermFrequencyConfig`).
    term_frequencies: TermFrequencyConfig = Field(default_factory=TermFrequencyConfig)
    #: Log-odds an agreement on the digits of a phone number that failed validation adds (a
    #: valid number's agreement counts through the model; an invalid one weighs less).
    invalid_phone_weight: Annotated[float, Field(ge=0)] = 1.0
    #: Two organisations whose names each hold a word the other lacks, and agree by less than
    #: this share of their words weighted by rarity, are different companies (``Acme Holdings``
    #: and ``Acme Logistics`` at one address) unless a registration id says otherwise: they go
    #: to review, never merge on their own.
    organisation_name_agreement: Annotated[float, Field(ge=0, le=1)] = 0.75
    #: Records whose birth years are this far apart (and not a typo) never share a cluster,
    #: even through a third record resembling both (a father and son). 0 turns it off.
    birth_year_gap: Annotated[int, Field(ge=0)] = 10
    #: The shipped default labels (from generated silos) train the model until the hub holds
    #: this many labels of its own for a party type (steward reviews, imported labels; at least
    #: 10 of each kind); from then on the model trains on the hub's own labels alone. ``None``:
    #: always train on both.
    own_labels_suffice: Annotated[int, Field(ge=20)] | None = 1000

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        return _known(value, MATCH_RULES, "match rule")

    @model_validator(mode="after")
    def _band(self) -> MatchingConfig:
        low, high = self.review_band
        if not 0 <= low < high <= 1:
            raise ValueError("review_band must be [low, high] with 0 <= low < high <= 1")
        return self


#: How survivorship picks a golden value among a cluster's records (``survivorship.yaml``).
