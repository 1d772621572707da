"""The shared base of the configuration models: strict models, the error type, helpers."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

#: The canonical customer model, plus ``organisation_key``: the source key of
#: the organisation a B2B contact belongs to, within the same source. ``website``: a party's
#: web address (cleansing derives the organisation's web domain from it, else from a business
#: email address).
CANONICAL_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "full_name",
    "birth_date",
    "email",
    "phone",
    "website",
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


def _known(names: Any, allowed: Any, what: str) -> Any:
    """``names`` unchanged if each is in ``allowed``; else a message listing the allowed ones."""
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; allowed: {', '.join(allowed)}")
    return names


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names file, source and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
