"""A batch of stored versions cleansed into the rows the hub writes, all in one worker.

The hub's cleansing (``runner``) reads versions as plain columns, ``raw`` as its stored JSON
text, and writes ``cleansed_records`` and ``quarantine`` rows of stored values only. Everything
in between (decoding ``raw``, the batch's frame, :func:`cleanse_batch`, each value in the form
the database driver takes) happens here, in a worker process: what crosses between the
processes is text and plain tuples, cheap to pickle, and the writer only inserts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime
from itertools import repeat
from typing import Any, NamedTuple

import pandas as pd

from mdm_orchestration.cleansing.pipeline import IDENTITY_COLUMNS, RECORD_COLUMNS, cleanse_batch
from mdm_orchestration.config import QualityConfig, SourceConfig
from mdm_orchestration.hub.store import json_loads

#: The stage named on the quarantine rows cleansing writes.
STAGE = "cleanse"
#: Columns of a ``cleansed_records`` row, in bulk-write order.
CLEANSED_TABLE_COLUMNS = (*IDENTITY_COLUMNS, *RECORD_COLUMNS, "cleansed_at")
#: The columns of a batch of versions, in the order ``cleanse_batch`` names them.
VERSION_COLUMNS = (
    "extract_id",
    "row_number",
    "source_record_id",
    "source_key",
    "raw",
    "source_updated_at",
)
_BOOL_COLUMNS = {"email_valid", "phone_valid", "national_id_valid"}
_JSON_COLUMNS = {"consents", "quality_flags"}

#: A batch of versions: one tuple of values per column of :data:`VERSION_COLUMNS`.
VersionColumns = tuple[tuple[Any, ...], ...]


class StoredForm(NamedTuple):
    """How the hub's database stores what cleansing writes: a datetime (``to_text``, see
    ``hub.bulk.stored_datetime``) and this run's ``cleansed_at`` stamp, so stored."""

    to_text: Callable[[datetime], str]
    now: str


class StoredResult(NamedTuple):
    """A cleansed batch as it is written: ``cleansed_records`` rows (in
    :data:`CLEANSED_TABLE_COLUMNS` order) and ``quarantine`` rows (``QUARANTINE_COLUMNS``
    order), stored values only, and how many records failed each rule (as
    ``CleanseResult.rule_counts``)."""

    records: list[tuple[Any, ...]]
    quarantine: list[tuple[Any, ...]]
    rule_counts: dict[str, int]


def versions_frame(batch: VersionColumns) -> pd.DataFrame:
    """The frame :func:`cleanse_batch` takes, from a batch of version columns (``raw`` as the
    stored JSON text, decoded as the hub's engines decode it, or already decoded)."""
    columns = {name: list(values) for name, values in zip(VERSION_COLUMNS, batch, strict=True)}
    columns["raw"] = [json_loads(v) if isinstance(v, (str, bytes)) else v for v in columns["raw"]]
    return pd.DataFrame(columns, dtype=object)


def cleanse_stored(
    batch: VersionColumns,
    source: SourceConfig,
    quality: QualityConfig,
    today: date,
    form: StoredForm,
) -> StoredResult:
    """:func:`cleanse_batch` of a batch of version columns, as the rows the hub writes."""
    result = cleanse_batch(versions_frame(batch), source, quality, today)
    records = result.records
    stored = [
        stored_column(records[c].tolist(), c, form.to_text)
        for c in (*IDENTITY_COLUMNS, *RECORD_COLUMNS)
    ]
    rows = list(zip(*stored, repeat(form.now, len(records)), strict=True))
    q = result.quarantine
    quarantine = [
        (int(e), int(r), STAGE, f, reason, d, form.now)
        for e, r, f, reason, d in zip(
            q["extract_id"], q["row_number"], q["field"], q["reason"], q["detail"], strict=True
        )
    ]
    return StoredResult(rows, quarantine, result.rule_counts)


def stored_value(value: Any, column: str) -> Any:
    """A cleansed value in the form ``bulk_insert`` takes (datetimes still datetimes)."""
    if value is None or value is pd.NA:
        return None
    if column in _JSON_COLUMNS:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if column in _BOOL_COLUMNS:
        return bool(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


#: The types whose values :func:`stored_value` keeps as they are outside the JSON and boolean
#: columns (and which hold no datetime).
_AS_IS = frozenset({str, int, bool, type(None)})


def stored_column(values: list[Any], column: str, to_text: Callable[[datetime], str]) -> list[Any]:
    """:func:`stored_value` of each value of a column, and each datetime as ``to_text`` stores
    it (what ``bulk_insert`` does to the datetimes of rows not ``stored``). Each distinct JSON
    value is encoded once (``json.dumps`` is most of a row's cost otherwise); the plain values
    (most of them) are taken as they are, without the checks."""
    if column in _JSON_COLUMNS:
        encoded: dict[tuple[type, str], Any] = {}
        out = []
        for value in values:
            key = (type(value), repr(value))
            text = encoded.get(key, encoded)
            if text is encoded:
                text = encoded[key] = stored_value(value, column)
            out.append(text)
        return out
    if column in _BOOL_COLUMNS:
        return [v if type(v) is bool else stored_value(v, column) for v in values]
    return [
        v if type(v) in _AS_IS else _datetime_text(stored_value(v, column), to_text) for v in values
    ]


def _datetime_text(value: Any, to_text: Callable[[datetime], str]) -> Any:
    return to_text(value) if isinstance(value, datetime) else value
