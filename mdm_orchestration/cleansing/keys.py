"""The internal match keys of one attribute group, from its values: what cleansing derives for a
record, for values that did not come from a record (a steward's pinned value)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdm_orchestration.cleansing.addresses import parse_address
from mdm_orchestration.cleansing.contact import normalise_email
from mdm_orchestration.cleansing.names import parse_organisation_name, parse_person_name


def group_keys(group: str, values: Mapping[str, Any], default_country: str) -> dict[str, Any]:
    """The keys cleansing would give ``values`` of ``group`` (``name``: given and family keys;
    ``organisation``: the company key; ``email``: the email key; ``address``: the address
    key); an empty dict for a group without keys."""

    def text(field: str) -> str | None:
        v = values.get(field)
        return None if v is None else str(v)

    if group == "name":
        p = parse_person_name(text("given_name"), text("family_name"), text("full_name"))
        return {"given_key": p.given_key, "family_key": p.family_key}
    if group == "organisation":
        return {"company_key": parse_organisation_name(text("company_name")).company_key}
    if group == "email":
        return {"email_key": normalise_email(text("email")).email_key}
    if group == "address":
        a = parse_address(
            text("street"),
            text("city"),
            text("region"),
            text("postcode"),
            text("country"),
            default_country,
        )
        return {"address_key": a.address_key}
    return {}


__all__ = ["group_keys"]
