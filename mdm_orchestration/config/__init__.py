"""Loads and validates the hub's configuration (``*.yaml``; defaults ship in ``defaults/``).

Sources are configuration, not code: each names its landing folder, file format, key column,
trust rank, update-timestamp column, default country, date order, a mapping from its own columns
to the canonical fields and its consent columns. Every validation error names the file, the
source and the field, so an operator can fix the YAML without reading code.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mdm_orchestration.config.base import (
    CANONICAL_FIELDS,
    SAFE_COLUMN,
    ConfigError,
    _Strict,
)
from mdm_orchestration.config.events import BusinessEventRule, EventsConfig
from mdm_orchestration.config.golden import (
    ALL_EVENTS,
    AMQP_BATCH_SIZE,
    CHANGE_NAMES,
    EVENT_TYPES,
    GOLDEN_ATTRIBUTES,
    GOLDEN_GROUPS,
    GOLDEN_PUBLIC_FIELDS,
    LIFECYCLES,
    SECRET_PREFIX,
    SURVIVORSHIP_STRATEGIES,
    WHERE_FIELDS,
    AmqpTarget,
    AttributeRule,
    FileTarget,
    SqlTarget,
    Subscriber,
    SubscriberFilter,
    SubscriptionsConfig,
    SurvivorshipConfig,
    WebhookTarget,
    env_reference_problem,
    expand_env,
    webhook_url_problem,
)
from mdm_orchestration.config.rules import (
    MATCH_RULES,
    QUALITY_RULES,
    MatchingConfig,
    Plausibility,
    QualityConfig,
    QualityRule,
    QualityThresholds,
    Severity,
    SourceQuality,
)
from mdm_orchestration.config.sources import (
    ConsentColumn,
    DateOrder,
    DeletedFlag,
    FieldMapping,
    FileFormat,
    IngestSettings,
    SourceConfig,
)
from mdm_orchestration.settings import settings

#: The shipped defaults, package data of ``mdm_orchestration`` (a folder in every install).
DEFAULT_CONFIG_DIR = Path(str(resources.files("mdm_orchestration") / "defaults"))
CONFIG_FILES = (
    "sources.yaml",
    "quality.yaml",
    "matching.yaml",
    "survivorship.yaml",
    "subscriptions.yaml",
    "events.yaml",
)


class HubConfig(_Strict):
    sources: dict[str, SourceConfig]
    ingest: IngestSettings = IngestSettings()
    quality: QualityConfig = QualityConfig()
    matching: MatchingConfig = MatchingConfig()
    survivorship: SurvivorshipConfig = SurvivorshipConfig()
    subscriptions: SubscriptionsConfig = SubscriptionsConfig()
    events: EventsConfig = EventsConfig()
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
    chosen = config_dir or settings().mdm_config_dir or DEFAULT_CONFIG_DIR
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
    events, event_problems = _load_optional(folder / "events.yaml", EventsConfig)
    problems.extend(event_problems)
    subscriptions, subscription_problems = _load_subscriptions(
        folder / "subscriptions.yaml", events, sources
    )
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
        events=events,
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


def _load_subscriptions(
    path: Path, events: EventsConfig, sources: dict[str, SourceConfig]
) -> tuple[SubscriptionsConfig, list[str]]:
    """``subscriptions.yaml``: names like sources', attributes among the golden attributes,
    event types among the change events and events.yaml's, ``source_keys`` among the sources."""
    subs, problems = _load_optional(path, SubscriptionsConfig)
    if problems:
        return subs, problems
    for name, sub in subs.subscribers.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            problems.append(
                f"{path}: subscriber '{name}': field '(name)': use lower-case "
                "letters, digits and '_'"
            )
        allowed = (*EVENT_TYPES, *events.names())
        unknown_events = sorted(set(sub.events) - set(allowed) - {ALL_EVENTS})
        if unknown_events:
            problems.append(
                f"{path}: subscriber '{name}': field 'events': unknown event type(s) "
                f"{unknown_events}; allowed: {', '.join(allowed)}"
            )
        unknown = sorted(set(sub.attributes) - set(GOLDEN_ATTRIBUTES))
        if unknown:
            problems.append(
                f"{path}: subscriber '{name}': field 'attributes': unknown "
                f"attribute(s) {unknown}; allowed: {', '.join(GOLDEN_ATTRIBUTES)}"
            )
        unknown_sources = [s for s in sub.source_keys if s not in sources]
        if unknown_sources:
            problems.append(
                f"{path}: subscriber '{name}': field 'source_keys': unknown source(s) "
                f"{unknown_sources}; allowed: {', '.join(sources)}"
            )
    return subs, problems


__all__ = [
    "ALL_EVENTS",
    "CHANGE_NAMES",
    "WHERE_FIELDS",
    "AMQP_BATCH_SIZE",
    "AmqpTarget",
    "AttributeRule",
    "BusinessEventRule",
    "EventsConfig",
    "CANONICAL_FIELDS",
    "CONFIG_FILES",
    "ConfigError",
    "ConsentColumn",
    "DEFAULT_CONFIG_DIR",
    "DateOrder",
    "DeletedFlag",
    "EVENT_TYPES",
    "FieldMapping",
    "FileFormat",
    "FileTarget",
    "GOLDEN_ATTRIBUTES",
    "GOLDEN_GROUPS",
    "GOLDEN_PUBLIC_FIELDS",
    "HubConfig",
    "IngestSettings",
    "LIFECYCLES",
    "MATCH_RULES",
    "MatchingConfig",
    "Plausibility",
    "QUALITY_RULES",
    "QualityConfig",
    "QualityRule",
    "QualityThresholds",
    "SAFE_COLUMN",
    "SURVIVORSHIP_STRATEGIES",
    "Severity",
    "SourceConfig",
    "SourceQuality",
    "SqlTarget",
    "Subscriber",
    "SubscriberFilter",
    "SubscriptionsConfig",
    "SurvivorshipConfig",
    "WebhookTarget",
    "webhook_url_problem",
    "SECRET_PREFIX",
    "env_reference_problem",
    "expand_env",
    "init_config_dir",
    "load_hub_config",
    "resolve_config_dir",
]
