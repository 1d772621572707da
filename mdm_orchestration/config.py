"""Loads and validates the hub's configuration (``*.yaml``; defaults ship in ``defaults/``).

Sources are configuration, not code: each names its landing folder, file format, key column,
trust rank, update-timestamp column, default country, date order, a mapping from its own columns
to the canonical fields and its consent columns. Every validation error names the file, the
source and the field, so an operator can fix the YAML without reading code.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: The canonical customer model (ARCHITECTURE.md), plus ``organisation_key``: the source key of
#: the organisation a B2B contact belongs to, within the same source.
CANONICAL_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "full_name",
    "birth_date",
    "email",
    "phone",
    "street",
    "city",
    "region",
    "postcode",
    "country",
    "national_id",
    "company_name",
    "job_title",
    "party_type",
    "lifecycle",
    "organisation_key",
)

#: Column names we accept in extracts and in the mapping: letters (any script), digits and a few
#: separators. Anything else (``;``, quotes, control characters) is refused at the header.
SAFE_COLUMN = re.compile(r"^[\w][\w .\-/#()]{0,127}$")

#: The shipped defaults, package data of ``mdm_orchestration`` (a folder in every install).
DEFAULT_CONFIG_DIR = Path(str(resources.files("mdm_orchestration") / "defaults"))
CONFIG_FILES = (
    "sources.yaml",
    "quality.yaml",
    "matching.yaml",
    "survivorship.yaml",
    "subscriptions.yaml",
)


def _known(names: Any, allowed: Any, what: str) -> Any:
    """``names`` unchanged if each is in ``allowed``; else a message listing the allowed ones."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; allowed: {', '.join(allowed)}")
    return names


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names file, source and field."""


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class DateOrder(StrEnum):
    DMY = "DMY"
    MDY = "MDY"
    YMD = "YMD"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMapping(_Strict):
    """Where one canonical field comes from.

    Exactly one of ``column`` (one column), ``columns`` (several, joined with ``separator``) or
    ``value`` (a constant for the whole source). ``values`` translates source codes
    (``Lead`` -> ``lead``); codes not listed pass through unchanged.
    """

    column: str | None = None
    columns: list[str] | None = None
    separator: str = " "
    value: str | None = None
    values: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> FieldMapping:
        given = [x for x in (self.column, self.columns, self.value) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'column', 'columns' or 'value'")
        for col in self.source_columns:
            if not SAFE_COLUMN.match(col):
                raise ValueError(f"column name {col!r} has characters that are not allowed")
        return self

    @property
    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        return list(self.columns or [])


class ConsentColumn(_Strict):
    """A column that carries consent for one purpose. ``opt_out`` columns mean 'true = refused'."""

    column: str
    opt_out: bool = False


class DeletedFlag(_Strict):
    """A column by which a source marks a record deleted; such a version takes the record out
    of its cluster and golden record."""

    column: str
    values: list[str] = Field(default_factory=lambda: ["true", "1", "y", "yes", "deleted", "x"])


class SourceConfig(_Strict):
    name: str
    landing_folder: str
    format: FileFormat
    key_column: str
    trust_rank: Annotated[int, Field(ge=1)]
    updated_at_column: str | None = None
    default_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    date_order: DateOrder = DateOrder.YMD
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    encoding: str = "utf-8"
    mapping: dict[str, FieldMapping]
    consent_columns: dict[str, ConsentColumn] = Field(default_factory=dict)
    #: Columns the source sends that the hub knowingly does not use (no drift warning for them).
    ignored_columns: list[str] = Field(default_factory=list)
    deleted_flag: DeletedFlag | None = None
    description: str = ""

    @field_validator("mapping", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        # ``given_name: FirstName`` is shorthand for ``given_name: {column: FirstName}``.
        if isinstance(value, dict):
            return {k: ({"column": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("consent_columns", mode="before")
    @classmethod
    def _consent_short_form(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({"column": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("mapping")
    @classmethod
    def _canonical_only(cls, value: dict[str, FieldMapping]) -> dict[str, FieldMapping]:
        return _known(value, CANONICAL_FIELDS, "canonical field")

    @field_validator("key_column", "updated_at_column")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not SAFE_COLUMN.match(value):
            raise ValueError(f"column name {value!r} has characters that are not allowed")
        return value

    @field_validator("landing_folder")
    @classmethod
    def _plain_folder(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", value):
            raise ValueError("must be one plain folder name (letters, digits, '_' or '-')")
        return value

    @property
    def required_columns(self) -> list[str]:
        """Columns an extract must have: the key, the updated-at column and every mapped column."""
        cols = [self.key_column]
        if self.updated_at_column:
            cols.append(self.updated_at_column)
        for mapping in self.mapping.values():
            cols.extend(mapping.source_columns)
        for consent in self.consent_columns.values():
            cols.append(consent.column)
        if self.deleted_flag is not None:
            cols.append(self.deleted_flag.column)
        return list(dict.fromkeys(cols))

    def is_known_column(self, column: str) -> bool:
        """Mapped, ignored on purpose, or the parent of a mapped dotted JSON column."""
        known = [*self.required_columns, *self.ignored_columns]
        return column in known or any(k.startswith(column + ".") for k in known)


class IngestSettings(_Strict):
    #: A file whose size and mtime have not changed for this long counts as complete.
    settle_seconds: Annotated[float, Field(ge=0)] = 10.0
    #: Longest accepted field value; longer values quarantine the row.
    max_field_length: Annotated[int, Field(ge=16)] = 4096


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
}


class MatchingConfig(_Strict):
    #: Match probability at or above which two records join a cluster; ``None``: the threshold
    #: chosen from the labels for the best expected F1 when the model was trained.
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    #: Pairs scored in this band go to the steward review queue.
    review_band: tuple[float, float] = (0.3, 0.7)
    #: Blocks (records sharing a key) larger than this are skipped: shared switchboards and
    #: placeholder values, not evidence. Counted in the metadata.
    max_block_size: Annotated[int, Field(ge=2)] = 60
    #: The asset check flags clusters larger than this (over-merging).
    max_cluster_size: Annotated[int, Field(ge=2)] = 12
    rules: list[str] = Field(default_factory=lambda: list(MATCH_RULES))
    #: Two records agreeing on nothing but the name are left to review unless at most this
    #: many records in the hub carry that name (a rare name is evidence; a common one is not).
    rare_name_records: Annotated[int, Field(ge=0)] = 0
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
SURVIVORSHIP_STRATEGIES = (
    "valid_only",
    "prefer_valid",
    "source_trust",
    "most_recent",
    "most_frequent",
    "most_complete",
)
#: Golden attributes, each surviving as a group from one record, and the cleansed columns in
#: each (shown values, their match keys and validity flags).
GOLDEN_GROUPS: dict[str, tuple[str, ...]] = {
    "name": (
        "full_name",
        "title",
        "given_name",
        "middle_name",
        "family_name",
        "suffix",
        "given_key",
        "family_key",
    ),
    "organisation": ("company_name", "legal_form", "company_key"),
    "job_title": ("job_title",),
    "email": ("email", "email_key", "email_valid"),
    "phone": ("phone", "phone_valid"),
    "address": (
        "street",
        "street_number",
        "street_name",
        "unit",
        "city",
        "region",
        "postcode",
        "country",
        "address_key",
    ),
    "birth_date": ("birth_date",),
    "national_id": ("national_id", "national_id_type", "national_id_valid"),
}
#: The part of each group a golden record shows (the rest are match keys and validity flags).
GOLDEN_PUBLIC_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("title", "given_name", "middle_name", "family_name", "suffix", "full_name"),
    "organisation": ("company_name", "legal_form"),
    "job_title": ("job_title",),
    "email": ("email",),
    "phone": ("phone",),
    "address": ("street", "unit", "city", "region", "postcode", "country"),
    "birth_date": ("birth_date",),
    "national_id": ("national_id", "national_id_type"),
}
GOLDEN_ATTRIBUTES: tuple[str, ...] = tuple(f for fs in GOLDEN_PUBLIC_FIELDS.values() for f in fs)
LIFECYCLES = ("customer", "one-off", "contact", "lead")


class AttributeRule(_Strict):
    #: Applied in order: each keeps the candidate records that are best by its measure.
    strategies: list[str]
    #: Source order for ``source_trust`` on this attribute (best first); sources not listed
    #: come after, by their ``trust_rank``. Default: ``trust_rank`` alone.
    source_order: list[str] = Field(default_factory=list)

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one strategy is needed")
        if "valid_only" in value and "prefer_valid" in value:
            raise ValueError("use valid_only or prefer_valid, not both")
        return _known(value, SURVIVORSHIP_STRATEGIES, "strategy")


def _default_attribute_rules() -> dict[str, AttributeRule]:
    return {
        "name": AttributeRule(strategies=["most_complete", "source_trust", "most_recent"]),
        "organisation": AttributeRule(strategies=["source_trust", "most_complete"]),
        "job_title": AttributeRule(strategies=["most_recent", "source_trust"]),
        "email": AttributeRule(strategies=["prefer_valid", "most_recent", "source_trust"]),
        "phone": AttributeRule(strategies=["prefer_valid", "most_recent", "source_trust"]),
        "address": AttributeRule(strategies=["prefer_valid", "most_recent", "most_complete"]),
        "birth_date": AttributeRule(strategies=["valid_only", "most_frequent", "source_trust"]),
        "national_id": AttributeRule(strategies=["valid_only", "source_trust", "most_frequent"]),
    }


class SurvivorshipConfig(_Strict):
    attributes: dict[str, AttributeRule] = Field(default_factory=_default_attribute_rules)
    #: Breaks a tie left by an attribute's strategies; the smallest source record id comes last,
    #: so the result never depends on the order records were read in.
    tie_break: list[str] = Field(default_factory=lambda: ["most_recent", "source_trust"])
    #: A golden record's lifecycle is the first of these that any of its records has.
    lifecycle_order: list[str] = Field(default_factory=lambda: list(LIFECYCLES))
    #: Persons at one normalised address form a household when their family names are
    #: compatible (the same, or sharing one part of a double-barrelled name).
    households: bool = True

    @field_validator("attributes")
    @classmethod
    def _every_group(cls, value: dict[str, AttributeRule]) -> dict[str, AttributeRule]:
        _known(value, GOLDEN_GROUPS, "golden attribute")
        return {**_default_attribute_rules(), **value}

    @field_validator("tie_break")
    @classmethod
    def _tie_break(cls, value: list[str]) -> list[str]:
        return _known(value, ("most_recent", "source_trust", "most_complete"), "tie-break")


EVENT_TYPES = ("created", "updated", "merged", "split", "retired", "erased")


class FileTarget(_Strict):
    #: Folder the batches are written into (relative: under MDM_HOME); ``${VAR}`` expands.
    folder: str
    format: Literal["jsonl", "csv"] = "jsonl"


class WebhookTarget(_Strict):
    #: ``${VAR}`` expands (keep secrets in the environment).
    url: str
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    headers: dict[str, str] = Field(default_factory=dict)


class SqlTarget(_Strict):
    #: Any SQLAlchemy URL; ``${VAR}`` expands.
    url: str
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]


class SubscriberFilter(_Strict):
    party_types: list[Literal["person", "organisation"]] = Field(default_factory=list)
    lifecycles: list[str] = Field(default_factory=list)
    #: Golden records spanning at least one of these sources.
    sources: list[str] = Field(default_factory=list)


class Subscriber(_Strict):
    description: str = ""
    transport: Literal["file", "webhook", "sql"]
    file: FileTarget | None = None
    webhook: WebhookTarget | None = None
    sql: SqlTarget | None = None
    #: Golden attributes it receives (empty: all of them).
    attributes: list[str] = Field(default_factory=list)
    filter: SubscriberFilter = SubscriberFilter()
    #: A golden record is sent only with consent granted for this purpose (a withdrawal is
    #: sent as a removal).
    consent_purpose: str | None = None
    #: Change events it wants; ``erased`` is always sent to a subscriber that received the
    #: golden record.
    events: list[str] = Field(default_factory=lambda: list(EVENT_TYPES))
    #: A new subscriber first receives every golden record it may see, then the changes.
    snapshot: bool = True
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    max_attempts: Annotated[int, Field(ge=1)] = 5
    backoff_seconds: Annotated[float, Field(ge=0)] = 1.0
    #: The asset check fails when more events than this wait for the subscriber.
    max_lag_events: Annotated[int, Field(ge=0)] = 10_000

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        return _known(value, EVENT_TYPES, "event type")

    @model_validator(mode="after")
    def _target(self) -> Subscriber:
        if getattr(self, self.transport) is None:
            raise ValueError(f"transport {self.transport} needs a '{self.transport}' section")
        return self

    def target(self) -> FileTarget | WebhookTarget | SqlTarget:
        return getattr(self, self.transport)


class SubscriptionsConfig(_Strict):
    subscribers: dict[str, Subscriber] = Field(default_factory=dict)


class HubConfig(_Strict):
    sources: dict[str, SourceConfig]
    ingest: IngestSettings = IngestSettings()
    quality: QualityConfig = QualityConfig()
    matching: MatchingConfig = MatchingConfig()
    survivorship: SurvivorshipConfig = SurvivorshipConfig()
    subscriptions: SubscriptionsConfig = SubscriptionsConfig()
    config_dir: Path

    def source_for_folder(self, folder: str) -> SourceConfig | None:
        for source in self.sources.values():
            if source.landing_folder == folder:
                return source
        return None


def _format_errors(path: Path, err: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    lines = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        if len(loc) >= 2 and loc[0] == "sources":
            where = f"source '{loc[1]}'"
            field = ".".join(str(p) for p in loc[2:]) or "(the source itself)"
        elif loc and loc[0] == "ingest":
            where = "section 'ingest'"
            field = ".".join(str(p) for p in loc[1:]) or "(the section itself)"
        elif len(loc) >= 2 and loc[0] == "subscribers":
            where = f"subscriber '{loc[1]}'"
            field = ".".join(str(p) for p in loc[2:]) or "(the subscriber itself)"
        elif len(loc) >= 2 and loc[0] in ("rules", "national_ids", "attributes"):
            where = f"section '{loc[0]}'"
            field = ".".join(str(p) for p in loc[1:])
        else:
            where = "top level"
            field = ".".join(str(p) for p in loc) or "(file)"
        lines.append(f"{path}: {where}: field '{field}': {e['msg']}")
    return "\n".join(lines)


def resolve_config_dir(config_dir: str | os.PathLike[str] | None = None) -> Path:
    """The configuration folder: the argument, else ``MDM_CONFIG_DIR``, else the shipped one."""
    chosen = config_dir or os.environ.get("MDM_CONFIG_DIR") or DEFAULT_CONFIG_DIR
    return Path(chosen).expanduser().resolve()


def init_config_dir(dest: str | os.PathLike[str]) -> list[Path]:
    """Write an editable copy of the shipped configuration into ``dest``; the files written.

    ``dest`` is created when missing. Existing files are never overwritten: when any of the
    configuration files is already there, nothing is written and ``ConfigError`` says which.
    """
    folder = Path(dest).expanduser().resolve()
    targets = [folder / name for name in CONFIG_FILES]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise ConfigError("refusing to overwrite existing configuration: " + ", ".join(existing))
    folder.mkdir(parents=True, exist_ok=True)
    shipped = resources.files("mdm_orchestration") / "defaults"
    for name, path in zip(CONFIG_FILES, targets, strict=True):
        path.write_bytes((shipped / name).read_bytes())
    return targets


def load_hub_config(config_dir: str | os.PathLike[str] | None = None) -> HubConfig:
    """Read ``sources.yaml`` from the configuration folder and validate it."""
    folder = resolve_config_dir(config_dir)
    path = folder / "sources.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (set --config or MDM_CONFIG_DIR)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("sources"), dict) or not raw["sources"]:
        raise ConfigError(f"{path}: top level: field 'sources': a mapping of sources is required")
    sources: dict[str, SourceConfig] = {}
    problems: list[str] = []
    for name, body in raw["sources"].items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", str(name)):
            problems.append(
                f"{path}: source '{name}': field '(name)': use lower-case letters, digits and '_'"
            )
            continue
        if not isinstance(body, dict):
            problems.append(f"{path}: source '{name}': field '(the source itself)': not a mapping")
            continue
        try:
            sources[name] = SourceConfig(name=name, **{"landing_folder": name, **body})
        except ValidationError as exc:
            problems.append(_format_errors(path, exc, ("sources", name)))
    folders: dict[str, str] = {}
    for src in sources.values():
        if src.landing_folder in folders:
            problems.append(
                f"{path}: source '{src.name}': field 'landing_folder': "
                f"'{src.landing_folder}' is already used by source '{folders[src.landing_folder]}'"
            )
        folders[src.landing_folder] = src.name
    try:
        ingest = IngestSettings(**(raw.get("ingest") or {}))
    except ValidationError as exc:
        problems.append(_format_errors(path, exc, ("ingest",)))
        ingest = IngestSettings()
    unknown_top = sorted(set(raw) - {"sources", "ingest"})
    if unknown_top:
        problems.append(f"{path}: top level: field '{unknown_top[0]}': not a known section")
    quality, quality_problems = _load_quality(folder / "quality.yaml", sources)
    problems.extend(quality_problems)
    matching, matching_problems = _load_optional(folder / "matching.yaml", MatchingConfig)
    problems.extend(matching_problems)
    survivorship, survivorship_problems = _load_optional(
        folder / "survivorship.yaml", SurvivorshipConfig
    )
    problems.extend(survivorship_problems)
    for group, rule in survivorship.attributes.items():
        problems.extend(
            f"{folder / 'survivorship.yaml'}: attribute '{group}': field 'source_order': "
            f"'{name}' is not a source in sources.yaml"
            for name in rule.source_order
            if name not in sources
        )
    subscriptions, subscription_problems = _load_subscriptions(folder / "subscriptions.yaml")
    problems.extend(subscription_problems)
    if problems:
        raise ConfigError("\n".join(problems))
    return HubConfig(
        sources=sources,
        ingest=ingest,
        quality=quality,
        matching=matching,
        survivorship=survivorship,
        subscriptions=subscriptions,
        config_dir=folder,
    )


def _load_optional(path: Path, model: type[_Strict]) -> tuple[Any, list[str]]:
    """An optional YAML file validated by ``model``; its defaults when the file is absent."""
    if not path.is_file():
        return model(), []
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        return model(), [f"{path}: not valid YAML: {exc}"]
    if not isinstance(raw, dict):
        return model(), [f"{path}: top level: field '(file)': a mapping is required"]
    try:
        return model(**raw), []
    except ValidationError as exc:
        return model(), [_format_errors(path, exc)]


def _load_quality(path: Path, sources: dict[str, SourceConfig]) -> tuple[QualityConfig, list[str]]:
    """``quality.yaml`` is optional: without it every rule flags with the default weight."""
    quality, problems = _load_optional(path, QualityConfig)
    if problems:
        return quality, problems
    problems = [
        f"{path}: source '{name}': field '(name)': not a source in sources.yaml"
        for name in sorted(set(quality.sources) - set(sources))
    ]
    return quality, problems


def _load_subscriptions(path: Path) -> tuple[SubscriptionsConfig, list[str]]:
    """``subscriptions.yaml``: names like sources', attributes among the golden attributes."""
    subs, problems = _load_optional(path, SubscriptionsConfig)
    if problems:
        return subs, problems
    for name, sub in subs.subscribers.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            problems.append(
                f"{path}: subscriber '{name}': field '(name)': use lower-case "
                "letters, digits and '_'"
            )
        unknown = sorted(set(sub.attributes) - set(GOLDEN_ATTRIBUTES))
        if unknown:
            problems.append(
                f"{path}: subscriber '{name}': field 'attributes': unknown "
                f"attribute(s) {unknown}; allowed: {', '.join(GOLDEN_ATTRIBUTES)}"
            )
    return subs, problems
