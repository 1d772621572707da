"""``sources.yaml``: sources, their mappings and consent columns, ingestion settings."""

from __future__ import annotations

import codecs
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from mdm_orchestration.config.base import CANONICAL_FIELDS, SAFE_COLUMN, _known, _Strict


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class CompleteWhen(StrEnum):
    """When a landed file counts as complete (see ``ingestion.landing``)."""

    #: Once its size and mtime stop changing (or it is older than ``settle_seconds``); a
    #: ``<file>.manifest`` beside it is optional, and verified when present.
    stable = "stable"
    #: Once its ``<file>.manifest`` (the file's sha256) exists; until then it is invisible.
    manifest = "manifest"


class DateOrder(StrEnum):
    DMY = "DMY"
    MDY = "MDY"
    YMD = "YMD"


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


class WrittenBy(StrEnum):
    """How a source's records reach the hub: extracts dropped in its landing folder, or
    ``POST /v1/sources/{source}/records`` (each write a one-row extract in the same ledger)."""

    files = "files"
    api = "api"


class SourceConfig(_Strict):
    name: str
    landing_folder: str
    format: FileFormat
    written_by: WrittenBy = WrittenBy.files
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
    #: ``stable`` (default) or ``manifest``: the writer's manifest is the completion signal.
    complete_when: CompleteWhen = CompleteWhen.stable
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _api_records_are_json(cls, value: Any) -> Any:
        # A record written through the API is one JSON object, as a JSON Lines row is.
        if isinstance(value, dict) and value.get("written_by") == WrittenBy.api.value:
            value = {"format": FileFormat.jsonl.value, **value}
        return value

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

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str) -> str:
        # Checked here so that a misspelt name fails at load, naming the source and field, and
        # not as every file's rejection. The readers find rows by their ASCII delimiters and
        # newlines in the raw bytes, so only ASCII-compatible encodings (UTF-8, Latin-1,
        # cp1252, ISO 8859-x, Shift JIS...) can be read; UTF-16 and UTF-32 cannot.
        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r} (Python codec names: utf-8, latin-1, cp1252, ...)"
            ) from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{value!r} is not a text encoding")
        if info.name == "utf-8-sig":  # UTF-8 with a byte-order mark (stripped for any UTF-8)
            return value
        sample = "\n\r,;|\t\"'key_0123456789 AZaz._-/#()"
        try:
            same = sample.encode(info.name).decode(info.name) == sample and (
                sample.encode(info.name) == sample.encode("ascii")
            )
        except (UnicodeError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"encoding {value!r} is not ASCII-compatible (as UTF-16 and UTF-32 are not); "
                "convert the source's files to UTF-8, or declare an encoding such as latin-1 "
                "or cp1252"
            )
        return value

    @model_validator(mode="after")
    def _encoding_of_text_formats(self) -> SourceConfig:
        if self.format is FileFormat.parquet and codecs.lookup(self.encoding).name != "utf-8":
            raise ValueError(
                "'encoding' applies to csv and jsonl files; Parquet stores its own (UTF-8) text"
            )
        return self

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


class ArchiveSettings(_Strict):
    """Where ingested files go when they leave the landing zone, and for how long."""

    #: Move each ingested (or duplicate) file out of the landing zone into the archive.
    enabled: bool = False
    #: The archive folder; relative to ``MDM_HOME``; default ``<MDM_HOME>/archive``. It must
    #: not be inside the landing root.
    folder: str | None = None
    #: Archived files older than this (counted from archiving) are deleted.
    retention_days: Annotated[float, Field(ge=0)] = 30.0


class IngestSettings(_Strict):
    #: A file whose size and mtime have not changed for this long counts as complete.
    settle_seconds: Annotated[float, Field(ge=0)] = 10.0
    #: Longest accepted field value; longer values quarantine the row.
    max_field_length: Annotated[int, Field(ge=16)] = 4096
    #: Ingested files leave the landing zone for an archive with a retention (off by default).
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
