"""``survivorship.yaml`` and ``subscriptions.yaml``: golden attributes, survivorship, subscribers."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from mdm_orchestration.config.base import _known, _Strict

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
#: In a subscriber's ``events``: every change event and every business event of events.yaml.
ALL_EVENTS = "*"
#: What a change may name (its ``changed`` list, ``changed_any``): the golden attributes, the
#: organisation link, the lifecycle, the member records, and ``consents.<purpose>``.
CHANGE_NAMES = (*GOLDEN_ATTRIBUTES, "organisation_golden_id", "lifecycle", "members")
CONSENT_CHANGE = re.compile(r"consents\.[a-z][a-z0-9_]{0,39}")


def known_changes(value: list[str], noun: str) -> list[str]:
    """``value`` if every entry names a change (``CHANGE_NAMES`` or ``consents.<purpose>``);
    else a ValueError that calls them ``noun``: the validator of ``changed_any`` lists."""
    unknown = [v for v in value if v not in CHANGE_NAMES and not CONSENT_CHANGE.fullmatch(v)]
    if unknown:
        raise ValueError(
            f"unknown {noun}(s) {unknown}; allowed: {', '.join(CHANGE_NAMES)} or consents.<purpose>"
        )
    return value


#: What a subscriber's ``where`` may test: a golden attribute, the lifecycle, the party type.
WHERE_FIELDS = (*GOLDEN_ATTRIBUTES, "lifecycle", "party_type")

#: ``${NAME}`` in a subscriber's folder, URL or header value reads the environment only for
#: names with this prefix: any other name (the Dagster database URL, cloud credentials) could
#: otherwise be carried out to a subscriber by whoever edits subscriptions.yaml. ``$$`` is a
#: literal ``$``; a bare ``$NAME`` (which used to expand) is refused rather than sent as text.
SECRET_PREFIX = "MDM_SECRET_"
_SECRET_NAME = re.compile(rf"{SECRET_PREFIX}[A-Z0-9_]+")
_REFERENCE = re.compile(r"\$(\$|\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)?")


def env_reference_problem(value: str) -> str | None:
    """Why ``value`` may not be expanded (a variable outside ``MDM_SECRET_*``), or ``None``."""
    for match in _REFERENCE.finditer(value):
        ref = match.group(1)
        if ref is None or ref == "$":
            continue
        if ref.startswith("{"):
            name = ref[1:-1] if ref.endswith("}") else ref[1:]
            if ref.endswith("}") and _SECRET_NAME.fullmatch(name):
                continue
        else:
            name = ref
        return (
            f"environment variable {name!r} may not be read: only ${{{SECRET_PREFIX}...}} "
            "names expand (write $$ for a literal $)"
        )
    return None


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with each ``${MDM_SECRET_...}`` replaced from the environment and ``$$`` by
    ``$``; raises ``ValueError`` (naming the variable, never a value) for any other name or an
    unset one."""
    problem = env_reference_problem(value)
    if problem:
        raise ValueError(problem)
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref is None or ref == "$":
            return "$"
        name = ref[1:-1]
        if name not in env:
            raise ValueError(f"environment variable {name!r} is not set")
        return env[name]

    return _REFERENCE.sub(replace, value)


def _secret_refs_only(value: str) -> str:
    problem = env_reference_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: A configuration string in which only ``${MDM_SECRET_...}`` expands (checked at load).
EnvString = Annotated[str, AfterValidator(_secret_refs_only)]


class FileTarget(_Strict):
    #: Folder the batches are written into (relative: under MDM_HOME);
    #: ``${MDM_SECRET_...}`` expands.
    folder: EnvString
    format: Literal["jsonl", "csv"] = "jsonl"


#: The only schemes a webhook may use: anything else (``file:``, ``ftp:``, ``data:``) would be
#: "delivered" without reaching a subscriber.
WEBHOOK_SCHEMES = ("http", "https")


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook's address, or ``None`` when it can."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        return f"scheme {parts.scheme or '(none)'!r} is not allowed; use http:// or https://"
    if not parts.hostname:
        return "the URL names no host"
    return None


class WebhookTarget(_Strict):
    #: ``${MDM_SECRET_...}`` expands (keep secrets in the environment); http:// or https://
    #: only.
    url: EnvString
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    #: Values: ``${MDM_SECRET_...}`` expands.
    headers: dict[str, EnvString] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        # A URL that starts with a variable is checked again once expanded (the transport).
        if not value.startswith("$"):
            problem = webhook_url_problem(value)
            if problem:
                raise ValueError(problem)
        return value


class SqlTarget(_Strict):
    #: Any SQLAlchemy URL; ``${MDM_SECRET_...}`` expands.
    url: EnvString
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]


#: The fields an AMQP routing key may name (``{event_type}``, ``{party_type}``).
AMQP_ROUTING_FIELDS = ("event_type", "party_type")
_AMQP_NAME = r"^[A-Za-z0-9_.:-]{1,200}$"


#: An ``amqp`` subscriber's default ``batch_size``.
AMQP_BATCH_SIZE = 5000


class AmqpTarget(_Strict):
    """A RabbitMQ (AMQP 0-9-1) exchange: persistent messages, publisher confirms."""

    #: ``amqp://user:password@host:port/vhost``; ``${MDM_SECRET_...}`` expands (keep the
    #: password in the environment).
    url: EnvString
    #: A durable topic exchange, declared if missing.
    exchange: Annotated[str, Field(pattern=_AMQP_NAME)] = "mdm.events"
    #: The routing key of each message; ``{event_type}`` and ``{party_type}`` fill in.
    routing_key: Annotated[str, Field(min_length=1, max_length=255)] = "{event_type}"
    #: A durable queue declared and bound to the exchange, so that nothing published is lost
    #: before a consumer exists; ``None``: the consumers declare their own queues.
    queue: Annotated[str, Field(pattern=_AMQP_NAME)] | None = None
    #: Binding keys of ``queue`` (``#``: every message).
    bindings: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=lambda: ["#"]
    )
    #: A message no queue takes is a failed delivery (the broker returns it), not a silent loss.
    mandatory: bool = True
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    #: The most messages unconfirmed by the broker at any time (publishing goes on while
    #: earlier ones are confirmed); 1: wait for each message's confirm.
    confirm_window: Annotated[int, Field(ge=1, le=10_000)] = 500

    @field_validator("url")
    @classmethod
    def _amqp_only(cls, value: str) -> str:
        if not value.startswith("$") and urlsplit(value).scheme.lower() not in ("amqp", "amqps"):
            raise ValueError("use amqp:// or amqps://")
        return value

    @field_validator("routing_key")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        names = set(re.findall(r"{([^{}]*)}", value))
        unknown = sorted(names - set(AMQP_ROUTING_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown field(s) {unknown} in the routing key; use {list(AMQP_ROUTING_FIELDS)}"
            )
        return value


class SubscriberFilter(_Strict):
    party_types: list[Literal["person", "organisation"]] = Field(default_factory=list)
    lifecycles: list[str] = Field(default_factory=list)
    #: Golden records spanning at least one of these sources.
    sources: list[str] = Field(default_factory=list)


class Subscriber(_Strict):
    description: str = ""
    transport: Literal["file", "webhook", "sql", "amqp"]
    file: FileTarget | None = None
    webhook: WebhookTarget | None = None
    sql: SqlTarget | None = None
    amqp: AmqpTarget | None = None
    #: Golden attributes it receives (empty: all of them).
    attributes: list[str] = Field(default_factory=list)
    filter: SubscriberFilter = SubscriberFilter()
    #: A golden record is sent only with consent granted for this purpose (a withdrawal is
    #: sent as a removal).
    consent_purpose: str | None = None
    #: Event types it wants: change events and the business events of events.yaml (each
    #: delivered as a message of its own after the change that carries it); ``"*"``: all of
    #: them. ``erased`` is always sent to a subscriber that received the golden record.
    events: list[str] = Field(default_factory=lambda: list(EVENT_TYPES))
    #: Business criteria on values: a golden record is for the subscriber only when each named
    #: field has one of the listed values (``{country: [GB, IE], lifecycle: [customer]}``); one
    #: that stops matching is sent as a removal.
    where: dict[str, list[str]] = Field(default_factory=dict)
    #: Business criteria on changes: an ``updated`` change (and the business events it
    #: carries) is sent only when it touched one of these (``[street, city, postcode]``).
    changed_any: list[str] = Field(default_factory=list)
    #: Sources whose keys for the golden record each message carries (``source_keys``): the
    #: subscriber's own ids of the record (its cross-reference rows).
    source_keys: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] = Field(
        default_factory=list
    )
    #: A new subscriber first receives every golden record it may see, then the changes.
    snapshot: bool = True
    #: Events per delivery batch (each batch's ledger committed after it is delivered);
    #: default 1000, and 5000 for an ``amqp`` subscriber (a batch ends with a wait for the
    #: broker's last confirms: fewer, larger batches deliver about 12% more per second).
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    max_attempts: Annotated[int, Field(ge=1)] = 5
    #: The wait after the n-th failure in a row: ``backoff_seconds * 2**(n-1)``, at most
    #: ``max_backoff_seconds``, with jitter (a random part of it, from half to all of it).
    backoff_seconds: Annotated[float, Field(ge=0)] = 1.0
    max_backoff_seconds: Annotated[float, Field(ge=0)] = 60.0
    #: The asset check fails when more events than this wait for the subscriber.
    max_lag_events: Annotated[int, Field(ge=0)] = 10_000
    #: Tries of one event the target refuses permanently (an HTTP 4xx other than 408, 425,
    #: 429 and the endpoint-wide 401, 403, 404, 405, 407; a SQL constraint or data error)
    #: before it is dead-lettered and the subscriber's other golden records flow on. Set, it
    #: may not exceed ``max_attempts``; left at the default, the lower of the two applies.
    dead_letter_after: Annotated[int, Field(ge=1)] = 3

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        # Change events, or business events: their names are checked against events.yaml
        # when the configuration is loaded.
        bad = [v for v in value if v != ALL_EVENTS and not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", v)]
        if bad:
            raise ValueError(
                f"not an event name: {bad}; use change events ({', '.join(EVENT_TYPES)}) "
                "or the business events of events.yaml"
            )
        return value

    @field_validator("where")
    @classmethod
    def _known_where(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(WHERE_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; allowed: {', '.join(WHERE_FIELDS)}")
        empty = sorted(k for k, v in value.items() if not v)
        if empty:
            raise ValueError(f"field(s) {empty}: list at least one value")
        for name, allowed in (
            ("lifecycle", LIFECYCLES),
            ("party_type", ("person", "organisation")),
        ):
            bad = sorted(set(value.get(name, ())) - set(allowed))
            if bad:
                raise ValueError(f"{name}: unknown value(s) {bad}; allowed: {', '.join(allowed)}")
        return value

    @field_validator("changed_any")
    @classmethod
    def _known_changes(cls, value: list[str]) -> list[str]:
        return known_changes(value, "field")

    def wants(self, event_type: str) -> bool:
        """Whether it selected this event type (a change or a business event)."""
        return ALL_EVENTS in self.events or event_type in self.events

    @model_validator(mode="after")
    def _target(self) -> Subscriber:
        if getattr(self, self.transport) is None:
            raise ValueError(f"transport {self.transport} needs a '{self.transport}' section")
        if self.transport == "amqp" and "batch_size" not in self.model_fields_set:
            object.__setattr__(self, "batch_size", AMQP_BATCH_SIZE)
        if "dead_letter_after" in self.model_fields_set and (
            self.dead_letter_after > self.max_attempts
        ):
            raise ValueError(
                f"dead_letter_after ({self.dead_letter_after}) must not exceed max_attempts "
                f"({self.max_attempts})"
            )
        return self

    def target(self) -> FileTarget | WebhookTarget | SqlTarget | AmqpTarget:
        return getattr(self, self.transport)

    @property
    def dead_letter_tries(self) -> int:
        """``dead_letter_after``, or ``max_attempts`` when that is lower and the default stood."""
        return min(self.dead_letter_after, self.max_attempts)


class SubscriptionsConfig(_Strict):
    subscribers: dict[str, Subscriber] = Field(default_factory=dict)
