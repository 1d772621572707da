"""``POST /v1/sources/{source}/records``: a system or a customer portal writes a record of a
source configured ``written_by: api`` (scope ``write:<source>``).

The record is stored as a source-record version exactly like a row of an extract (see
``ingestion.write_api_record``); the API-writes sensor then requests the reconsolidation that
carries it to golden records and subscribers. With ``?gate=true`` a likely duplicate (a
candidate in the ``auto`` or ``review`` band) answers 409 with the candidates, and nothing is
written, unless the caller confirms with ``confirm=true``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mdm_orchestration.config.sources import WrittenBy
from mdm_orchestration.ingestion import IdempotencyConflict, RecordRefused, write_api_record
from mdm_orchestration.matching import AUTO, REVIEW
from mdm_orchestration.service.deps import Caller, Hub, State
from mdm_orchestration.service.inputs import Scalar, cleanse_one, now_iso, raw_values
from mdm_orchestration.service.keys import WRITE_PREFIX
from mdm_orchestration.service.matching import GoldenCandidate, golden_candidates
from mdm_orchestration.service.problems import Problem, field_error

router = APIRouter(prefix="/v1", tags=["records"])


class WriteAnswer(BaseModel):
    source: str
    source_key: str
    source_record_id: str
    write_id: str
    status: str
    current: bool
    replayed: bool = False


class GateAnswer(BaseModel):
    """A problem document (RFC 9457) with the candidates."""

    type: str = "https://mdm.invalid/problems/likely-duplicate"
    title: str = "Conflict"
    status: int = 409
    detail: str
    instance: str
    candidates: list[GoldenCandidate]


def _request_hash(source: str, values: dict[str, Any], gate: bool, confirm: bool) -> str:
    text = json.dumps([source, values, gate, confirm], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@router.post(
    "/sources/{source}/records",
    response_model=WriteAnswer,
    status_code=201,
    responses={409: {"model": GateAnswer, "description": "likely duplicates (gate=true)"}},
)
def post_record(
    conn: Hub,
    state: State,
    principal: Caller,
    source: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
    body: Annotated[dict[str, Scalar], Body(description="the source's own columns")],
    gate: Annotated[
        bool, Query(description="answer 409 with the candidates of a duplicate")
    ] = False,
    confirm: Annotated[bool, Query(description="with gate: the caller saw them; write")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:  # noqa: ANN401
    """Create or update a record by its key. 201 created, 200 updated (or a replay of the
    same ``Idempotency-Key``), 409 a likely duplicate under ``gate=true``, 422 invalid fields
    (nothing written)."""
    config = state.config.sources.get(source)
    if config is None or config.written_by is not WrittenBy.api:
        raise Problem(
            404,
            f"no source {source!r} written through the API",
            errors=[field_error("path.source", "unknown_source", "not written_by: api")],
        )
    if not principal.allows(f"{WRITE_PREFIX}{source}"):
        raise Problem(403, f"this API key lacks the scope 'write:{source}'", kind="scope")
    values = raw_values(body, config)
    if not (values.get(config.key_column) or "").strip():
        raise Problem(
            422,
            "the record's key is missing",
            errors=[field_error(f"body.{config.key_column}", "missing_key", "required")],
            kind="invalid-fields",
        )
    if config.updated_at_column and not values.get(config.updated_at_column):
        values[config.updated_at_column] = now_iso()
        stamped = True
    else:
        stamped = False
    record, _cleansed = cleanse_one(values, config, state.config, strict=True)
    request_hash = _request_hash(
        source,
        {k: v for k, v in values.items() if not (stamped and k == config.updated_at_column)},
        gate,
        confirm,
    )
    if gate and not confirm:
        candidates = [
            c
            for c in golden_candidates(conn, state, record, state.settings.max_candidates)
            if c.band in (AUTO, REVIEW)
        ]
        if candidates:
            # The answer names golden ids and scores; the explanations hold values the caller
            # sent and the hub's matching ones, which a gate on an entry screen needs to show.
            return JSONResponse(
                GateAnswer(
                    detail="likely duplicates: confirm=true to write anyway",
                    instance=f"/v1/sources/{source}/records",
                    candidates=candidates,
                ).model_dump(mode="json"),
                status_code=409,
                media_type="application/problem+json",
            )
    conn.close()  # the write takes its own transaction
    try:
        result = write_api_record(
            state.engine,
            state.config,
            config,
            values,
            api_key_id=principal.key_id,
            request_hash=request_hash,
            idempotency_key=idempotency_key,
        )
    except RecordRefused as exc:
        raise Problem(
            422,
            "the record cannot be stored",
            errors=[field_error(f"body.{exc.field or config.key_column}", exc.reason, exc.detail)],
            kind="refused",
        ) from None
    except IdempotencyConflict:
        raise Problem(
            422,
            "the Idempotency-Key was used for a different request",
            errors=[field_error("header.idempotency-key", "idempotency_conflict")],
            kind="idempotency-conflict",
        ) from None
    answer = WriteAnswer(**result.response, replayed=result.replayed)
    # A replay answers as the first write did.
    status = 201 if answer.status == "created" else 200
    return JSONResponse(answer.model_dump(mode="json"), status_code=status)
