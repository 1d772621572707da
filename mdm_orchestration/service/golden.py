"""Reads: golden records, their history, the cross-reference and search (scope ``read``).

Every read goes through survivorship's look-ups, the ones ``mdm lookup`` uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from mdm_orchestration.service.deps import Hub, require
from mdm_orchestration.service.keys import READ
from mdm_orchestration.service.problems import Problem, field_error
from mdm_orchestration.survivorship import (
    golden_as_of,
    golden_documents,
    golden_history,
    golden_ids_matching,
    lookup,
    resolve_golden_id,
)

router = APIRouter(prefix="/v1", tags=["golden"], dependencies=[Depends(require(READ))])

GOLDEN_ID = r"^[A-Za-z0-9_-]{1,32}$"


class GoldenAnswer(BaseModel):
    """A golden record. ``requested_id`` is the id asked for; when it was merged into another
    record, ``merged`` is true and ``golden`` is the survivor."""

    requested_id: str
    golden_id: str
    merged: bool
    golden: dict[str, Any]


class HistoryAnswer(BaseModel):
    golden_id: str
    versions: list[dict[str, Any]]


class XrefAnswer(BaseModel):
    source: str
    source_key: str
    record_id: str
    golden_id: str
    golden: dict[str, Any]


class SearchQuery(BaseModel):
    """Search criteria (all given must hold), normalised by the hub's cleansers."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=256)
    postcode: str | None = Field(default=None, max_length=32)
    country: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


class SearchAnswer(BaseModel):
    page: int
    page_size: int
    total: int
    results: list[dict[str, Any]]


def _as_of(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Problem(
            422,
            "as_of must be an ISO 8601 time",
            errors=[field_error("query.as_of", "invalid_datetime", "an ISO 8601 time")],
            kind="invalid-fields",
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@router.get("/golden/{golden_id}", response_model=GoldenAnswer)
def get_golden(
    conn: Hub,
    golden_id: Annotated[str, Path(pattern=GOLDEN_ID)],
    as_of: Annotated[str | None, Query(description="ISO time: the version current then")] = None,
) -> GoldenAnswer:
    """A golden record by id (a merged id answers with its survivor), or as it was at
    ``as_of`` (the history's version current then)."""
    if as_of is not None:
        version = golden_as_of(conn, golden_id, _as_of(as_of))
        if version is None:
            raise Problem(404, "no version of this golden record at that time")
        return GoldenAnswer(
            requested_id=golden_id,
            golden_id=golden_id,
            merged=version.get("status") == "merged",
            golden=version,
        )
    found = lookup(conn, golden_id=golden_id)
    if not found:
        raise Problem(404, "no such golden record")
    doc = found[0]
    return GoldenAnswer(
        requested_id=golden_id,
        golden_id=doc["golden_id"],
        merged=doc["golden_id"] != golden_id,
        golden=doc,
    )


@router.get("/golden/{golden_id}/history", response_model=HistoryAnswer)
def get_history(conn: Hub, golden_id: Annotated[str, Path(pattern=GOLDEN_ID)]) -> HistoryAnswer:
    """Every version of a golden record, oldest first."""
    versions = golden_history(conn, golden_id)
    if not versions:
        raise Problem(404, "no such golden record")
    return HistoryAnswer(golden_id=golden_id, versions=versions)


@router.get("/xref/{source}/{key}", response_model=XrefAnswer)
def get_xref(conn: Hub, source: str, key: str) -> XrefAnswer:
    """The golden record a source record belongs to."""
    found = lookup(conn, source=source, key=key)
    for doc in found:
        for entry in doc["xref"]:
            if entry["source"] == source and entry["source_key"] == key:
                return XrefAnswer(
                    source=source,
                    source_key=key,
                    record_id=entry["record_id"],
                    golden_id=doc["golden_id"],
                    golden=doc,
                )
    raise Problem(404, "no golden record holds this source record")


def _search(conn: Hub, q: SearchQuery) -> SearchAnswer:
    criteria = {k: getattr(q, k) for k in ("email", "phone", "name", "postcode")}
    criteria = {k: v for k, v in criteria.items() if v is not None and v.strip()}
    if not criteria:
        raise Problem(
            422,
            "give at least one of email, phone, name or postcode",
            errors=[field_error("email", "missing", "one criterion at least")],
            kind="invalid-fields",
        )
    ids = golden_ids_matching(conn, country=q.country, **criteria)
    start = (q.page - 1) * q.page_size
    page = ids[start : start + q.page_size]
    # A record found whose golden record was merged leads to the survivor.
    survivors = sorted({s for s in (resolve_golden_id(conn, g) for g in page) if s})
    return SearchAnswer(
        page=q.page,
        page_size=q.page_size,
        total=len(ids),
        results=golden_documents(conn, survivors),
    )


@router.post("/search", response_model=SearchAnswer)
def post_search(conn: Hub, query: SearchQuery) -> SearchAnswer:
    """Golden records by email, phone, name and/or postcode (criteria in the body, so that
    they stay out of every URL and log). Paged."""
    return _search(conn, query)


@router.get("/search", response_model=SearchAnswer)
def get_search(conn: Hub, query: Annotated[SearchQuery, Query()]) -> SearchAnswer:
    """The same as ``POST /v1/search`` with the criteria in the query (the service logs the
    parameter names only; proxies in front of it may log more: prefer POST)."""
    return _search(conn, query)
