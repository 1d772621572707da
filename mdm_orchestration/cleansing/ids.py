"""National ids, checked per country by ``python-stdnum`` (SSN ranges, ITIN, EIN, NIR, ...)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

from mdm_orchestration.cleansing.text import clean_text


@dataclass(frozen=True)
class NationalId:
    national_id: str | None = None
    id_type: str | None = None  # the stdnum module that accepted it, e.g. "us.ssn"
    valid: bool | None = None  # None: no value, or no rule for the country


@lru_cache(maxsize=64)
def _module(name: str) -> ModuleType:
    return importlib.import_module(f"stdnum.{name}")


@lru_cache(maxsize=262144)
def check_national_id(
    value: str | None, country: str | None, modules: tuple[str, ...]
) -> NationalId:
    """The first of ``modules`` that accepts the value gives its type and formatted form.

    Without a rule for the country the value is kept (compacted) and not judged.
    """
    text = clean_text(value)
    if not text:
        return NationalId()
    compact = "".join(ch for ch in text if ch.isalnum()).upper()
    if not modules:
        return NationalId(national_id=compact, valid=None)
    for name in modules:
        module = _module(name)
        if module.is_valid(text):
            formatter = getattr(module, "format", None)
            shown = formatter(text) if formatter else module.compact(text)
            return NationalId(national_id=shown, id_type=name, valid=True)
    return NationalId(national_id=compact, valid=False)
