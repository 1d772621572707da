"""``events.yaml``: the business events derived from each golden-record change.

A golden record's new version is announced by one outbox event (``created``, ``updated``,
``merged``, ...). Business events say what that change means to a business: its address
changed, a lead became a customer, a consent was withdrawn. Each is a rule over the change:

- ``changed_any``: the change touched one of these golden attributes (or
  ``organisation_golden_id``, ``lifecycle``, ``consents.<purpose>``);
- ``lifecycle_from`` / ``lifecycle_to``: the lifecycle moved from one of these to one of those
  (an empty ``lifecycle_from``: from anything else);
- ``consent``: ``given`` (a purpose's consent went from anything but granted to granted) or
  ``withdrawn`` (from granted to anything else); ``purposes`` narrows it;
- ``household``: ``joined`` (the change put the person with others in a household: a move to
  an address where a household of a compatible family name lives) or ``left`` (it took the
  person out of a household of several), judged against the households as they stood before
  the change.

Every condition a rule names must hold. The names derived are written with the outbox event,
in the same transaction as the golden change, and a subscriber selects them by name in its
``events``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mdm_orchestration.config.base import _Strict
from mdm_orchestration.config.golden import CHANGE_NAMES, EVENT_TYPES, LIFECYCLES, known_changes


class BusinessEventRule(_Strict):
    description: str = ""
    changed_any: list[str] = Field(default_factory=list)
    lifecycle_from: list[str] = Field(default_factory=list)
    lifecycle_to: list[str] = Field(default_factory=list)
    consent: Literal["given", "withdrawn"] | None = None
    household: Literal["joined", "left"] | None = None
    #: With ``consent``: only these purposes (empty: any).
    purposes: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]] = Field(
        default_factory=list
    )

    @field_validator("changed_any")
    @classmethod
    def _known_changes(cls, value: list[str]) -> list[str]:
        return known_changes(value, "attribute")

    @field_validator("lifecycle_from", "lifecycle_to")
    @classmethod
    def _known_lifecycles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LIFECYCLES))
        if unknown:
            raise ValueError(f"unknown lifecycle(s) {unknown}; allowed: {', '.join(LIFECYCLES)}")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> BusinessEventRule:
        if not (
            self.changed_any
            or self.lifecycle_to
            or self.lifecycle_from
            or self.consent
            or self.household
        ):
            raise ValueError(
                "a business event needs at least one of changed_any, lifecycle_to, "
                "lifecycle_from, consent or household"
            )
        if self.purposes and not self.consent:
            raise ValueError("purposes narrows a consent rule: set consent too")
        return self


def _default_events() -> dict[str, BusinessEventRule]:
    return {
        "address_changed": BusinessEventRule(
            changed_any=["street", "unit", "city", "region", "postcode", "country"]
        ),
        "contact_details_changed": BusinessEventRule(changed_any=["email", "phone"]),
        "name_changed": BusinessEventRule(
            changed_any=[
                "title",
                "given_name",
                "middle_name",
                "family_name",
                "suffix",
                "full_name",
                "company_name",
                "legal_form",
            ]
        ),
        "became_customer": BusinessEventRule(
            lifecycle_from=["lead", "contact", "one-off"], lifecycle_to=["customer"]
        ),
        "consent_given": BusinessEventRule(consent="given"),
        "consent_withdrawn": BusinessEventRule(consent="withdrawn"),
        "organisation_changed": BusinessEventRule(changed_any=["organisation_golden_id"]),
        "joined_household": BusinessEventRule(household="joined"),
        "left_household": BusinessEventRule(household="left"),
    }


class EventsConfig(_Strict):
    events: dict[str, BusinessEventRule] = Field(default_factory=_default_events)

    @field_validator("events")
    @classmethod
    def _names(cls, value: dict[str, BusinessEventRule]) -> dict[str, BusinessEventRule]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"event '{name}': use lower-case letters, digits and '_'")
            if name in EVENT_TYPES or name in ("snapshot", "removed"):
                raise ValueError(f"event '{name}': the name of a change event; choose another")
        return value

    def names(self) -> tuple[str, ...]:
        return tuple(self.events)


__all__ = ["CHANGE_NAMES", "BusinessEventRule", "EventsConfig"]
