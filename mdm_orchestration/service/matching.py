"""``POST /v1/match``: search before create. Nothing is written (scope ``match``)."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel
from sqlalchemy import Connection

from mdm_orchestration.config import SourceConfig
from mdm_orchestration.matching import NoModel, match_one
from mdm_orchestration.service.deps import Hub, State, require
from mdm_orchestration.service.inputs import (
    Scalar,
    canonical_source,
    cleanse_one,
    raw_values,
)
from mdm_orchestration.service.keys import MATCH
from mdm_orchestration.service.problems import Problem, field_error
from mdm_orchestration.service.state import ServiceState
from mdm_orchestration.survivorship import golden_ids_of_records

router = APIRouter(prefix="/v1", tags=["match"])


class GoldenCandidate(BaseModel):
    golden_id: str
    score: float
    band: str
    #: the source record of the golden record that scored best
    record_id: str
    by_rule: bool
    explanation: dict[str, Any] | None


class MatchAnswer(BaseModel):
    candidates: list[GoldenCandidate]
    cleansed: dict[str, Any]
    quality_flags: list[str]
    quality_score: float


def source_for(state: ServiceState, source: str | None, country: str) -> SourceConfig:
    if source is None:
        return canonical_source(country)
    found = state.config.sources.get(source)
    if found is None:
        raise Problem(
            422,
            f"unknown source {source!r}",
            errors=[field_error("query.source", "unknown_source", "not a source in sources.yaml")],
            kind="invalid-fields",
        )
    return found


def golden_candidates(
    conn: Connection, state: ServiceState, record: pd.DataFrame, limit: int, explain: int = 3
) -> list[GoldenCandidate]:
    """The golden records the cleansed ``record`` may be, best first (a golden record's score
    is its best-scoring record's); the first ``explain`` explained by that record (each
    explanation re-scores the pair: about 10 ms)."""
    try:
        models = state.models(conn)
    except NoModel as exc:
        raise Problem(503, f"no usable match model: {exc}", kind="no-model") from exc
    found = match_one(conn, state.config, models, record)
    golden_of = golden_ids_of_records(conn, [c.record_id for c in found.candidates])
    best: dict[str, Any] = {}
    for c in found.candidates:
        gid = golden_of.get(c.record_id)
        if gid is not None and gid not in best:
            best[gid] = c
        if len(best) >= limit:
            break
    out = []
    for rank, (gid, c) in enumerate(best.items()):
        explanation = found.explain(c.record_id) if rank < explain else None
        out.append(
            GoldenCandidate(
                golden_id=gid,
                score=c.score,
                band=c.band,
                record_id=c.record_id,
                by_rule=c.by_rule,
                explanation=explanation.as_dict() if explanation is not None else None,
            )
        )
    return out


@router.post("/match", response_model=MatchAnswer, dependencies=[Depends(require(MATCH))])
def post_match(
    conn: Hub,
    state: State,
    body: Annotated[dict[str, Scalar], Body(description="canonical fields, or ?source= columns")],
    source: Annotated[str | None, Query(description="the body is in this source's layout")] = None,
    country: Annotated[
        str, Query(pattern=r"^[A-Z]{2}$", description="default country of canonical fields")
    ] = "US",
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    explain: Annotated[int, Query(ge=0, le=100, description="explain the first N")] = 3,
) -> MatchAnswer:
    """A proposed person or organisation, cleansed by the hub's cleansers, matched against the
    blocking index and scored by the stored model and rules: ranked golden candidates with
    band ``auto`` (the batch matcher would merge them), ``review`` or ``none``, each with its
    explanation per field; the cleansed form and its quality flags. Nothing is written."""
    layout = source_for(state, source, country)
    values = raw_values(body, layout)
    record, cleansed = cleanse_one(values, layout, state.config, strict=False)
    candidates = golden_candidates(
        conn, state, record, min(limit or state.settings.max_candidates, 100), explain
    )
    return MatchAnswer(
        candidates=candidates,
        cleansed=cleansed,
        quality_flags=list(cleansed.get("quality_flags") or []),
        quality_score=float(cleansed.get("quality_score") or 0.0),
    )
