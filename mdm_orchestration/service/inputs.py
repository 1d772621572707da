"""A request body into a source's raw values and its cleansed form, by the hub's own cleansers.

Bodies are flat JSON objects: either canonical fields (``given_name``, ``email``...) or a
configured source's own columns. A value is a string, a number, a boolean or null; numbers and
booleans become the text an extract would carry. Unknown fields, values the cleansers find
invalid (an email, a phone, a date, a national id) and rows the quality rules would quarantine
are refused naming the field as the caller sent it, never quoting the value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from mdm_orchestration.cleansing import cleanse_rows
from mdm_orchestration.cleansing.rows import RowsResult
from mdm_orchestration.config import CANONICAL_FIELDS, HubConfig, SourceConfig
from mdm_orchestration.hub.models import source_record_id
from mdm_orchestration.service.problems import Problem, field_error

Scalar = str | int | float | bool | None

#: The layout of a proposed record in canonical fields: the pseudo-source ``canonical``.
CANONICAL = "canonical"
CANONICAL_KEY = "key"
#: Quality flags the service refuses on input, though an extract's row would only be flagged:
#: the caller is there to correct them.
REFUSED_FLAGS = {
    "email_invalid": "email",
    "phone_invalid": "phone",
    "birth_date_invalid": "birth_date",
    "birth_date_implausible": "birth_date",
    "national_id_invalid": "national_id",
}


@lru_cache(maxsize=64)
def canonical_source(country: str) -> SourceConfig:
    """Canonical fields as a source of their own (each field its own column)."""
    return SourceConfig(
        name=CANONICAL,
        landing_folder=CANONICAL,
        format="jsonl",
        key_column=CANONICAL_KEY,
        trust_rank=1,
        default_country=country,
        mapping={f: {"column": f} for f in CANONICAL_FIELDS},
    )


def as_text(value: Scalar) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def raw_values(body: dict[str, Scalar], source: SourceConfig) -> dict[str, str | None]:
    """The body as an extract row of ``source``: unknown columns refused (422)."""
    unknown = [k for k in body if not source.is_known_column(k) and k != source.key_column]
    if unknown:
        raise Problem(
            422,
            f"{len(unknown)} unknown field(s) for source {source.name!r}",
            errors=[field_error(f"body.{k}", "unknown_field", "unknown field") for k in unknown],
            kind="invalid-fields",
        )
    return {k: as_text(v) for k, v in body.items()}


def _columns_of(source: SourceConfig, canonical_field: str) -> list[str]:
    mapping = source.mapping.get(canonical_field)
    if mapping is None or mapping.value is not None:
        return [canonical_field]
    return mapping.source_columns or [canonical_field]


def cleanse_one(
    values: dict[str, str | None], source: SourceConfig, config: HubConfig, *, strict: bool
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The cleansed record (a one-row frame of cleansing's columns, and as JSON) of ``values``.

    Its ``source_record_id`` is the record's own when ``values`` carry its key, else a random
    one. A row a blocking quality rule stops is refused (422); with ``strict``, so is one the
    cleansers flag invalid (:data:`REFUSED_FLAGS`)."""
    done = cleanse_many([values], source, config, strict=strict)
    k = done.answers[0]
    if isinstance(k, Problem):
        raise k
    return done.records.iloc[[k]].reset_index(drop=True), done.json(k)


@dataclass
class Cleansed:
    """What :func:`cleanse_many` made of its rows."""

    result: RowsResult
    #: per input row: its row in ``records``, or the problem that refuses it
    answers: list[int | Problem]

    @property
    def records(self) -> pd.DataFrame:
        """The cleansed records (cleansing's columns, one row per input the cleansers
        accepted), made when first read."""
        return self.result.records

    @property
    def values(self) -> list[dict[str, Any]]:
        """Per row of ``records``: its values."""
        return self.result.values

    def json(self, k: int) -> dict[str, Any]:
        """Row ``k`` of ``records`` as the answer shows it."""
        return {c: _json(v) for c, v in self.values[k].items() if c not in _HIDDEN}


def cleanse_many(
    rows: list[dict[str, str | None]], source: SourceConfig, config: HubConfig, *, strict: bool
) -> Cleansed:
    """:func:`cleanse_one` of each of ``rows`` (one source's), by one call of the cleansers:
    per row, its cleansed record or the problem that refuses it."""
    ids = []
    for values in rows:
        key = (values.get(source.key_column) or "").strip()
        ids.append((source_record_id(source.name, key) if key else uuid.uuid4().hex, key))
    versions = [
        {
            "extract_id": 0,
            "row_number": n,
            "source_record_id": rid,
            "source_key": key,
            "raw": values,
            "source_updated_at": None,
        }
        for n, (values, (rid, key)) in enumerate(zip(rows, ids, strict=True), start=1)
    ]
    result = cleanse_rows(versions, source, config.quality, date.today())
    errors: dict[int, list[dict[str, str]]] = {}
    for row_number, reason, stopped_field in result.stopped:
        for column in _columns_of(source, str(stopped_field)):
            errors.setdefault(row_number, []).append(
                field_error(f"body.{column}", reason, "a quality rule stops it")
            )
    at = {int(v["row_number"]): k for k, v in enumerate(result.values)}
    out: list[int | Problem] = []
    for n, values in enumerate(rows, start=1):
        found = errors.get(n, [])
        k = at.get(n)
        if not found and k is not None and strict:
            found = _refused(values, result.values[k], source)
        if found or k is None:
            out.append(
                Problem(422, "the record has invalid fields", errors=found, kind="invalid-fields")
            )
            continue
        out.append(k)
    return Cleansed(result, out)


def _refused(
    values: dict[str, str | None], record: dict[str, Any], source: SourceConfig
) -> list[dict[str, str]]:
    """A strict write's refusals of a row the quality rules let through: the flags of
    :data:`REFUSED_FLAGS`, else consent columns that say neither yes nor no."""
    errors = []
    for flag in record["quality_flags"]:
        canonical_field = REFUSED_FLAGS.get(flag)
        if canonical_field:
            for column in _columns_of(source, canonical_field):
                errors.append(field_error(f"body.{column}", flag, flag.replace("_", " ")))
    if errors:
        return errors
    for purpose, spec in source.consent_columns.items():
        given = values.get(spec.column)
        if given is not None and given.strip() and purpose not in record["consents"]:
            errors.append(
                field_error(f"body.{spec.column}", "consent_invalid", "use true or false")
            )
    return errors


def _json(value: Any) -> Any:  # noqa: ANN401
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Cleansing's identity columns and internal keys, left out of the answer.
_HIDDEN = {"extract_id", "row_number", "source_updated_at"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
