"""``POST /v1/match``: search before create. Nothing is written (scope ``match``)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Connection

from mdm_orchestration.config import SourceConfig
from mdm_orchestration.matching import NoModel, match_many_of
from mdm_orchestration.matching.online import explain_together
from mdm_orchestration.matching.records import match_frame, match_frame_of_values
from mdm_orchestration.service.deps import State, require
from mdm_orchestration.service.inputs import (
    Scalar,
    canonical_source,
    cleanse_many,
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
    is its best-scoring record's); the first ``explain`` explained by that record."""
    return golden_candidates_many(conn, state, match_frame(record), [(limit, explain)])[0]


def golden_candidates_many(
    conn: Connection,
    state: ServiceState,
    mine: pd.DataFrame,
    asks: list[tuple[int, int]],
) -> list[list[GoldenCandidate]]:
    """:func:`golden_candidates` of each record of ``mine`` (the match frame of cleansed
    records), the hub read once for all of them; ``asks``: each one's ``(limit, explain)``."""
    try:
        models = state.models(conn)
    except NoModel as exc:
        raise Problem(503, f"no usable match model: {exc}", kind="no-model") from exc
    matches = match_many_of(conn, state.config, models, mine)
    golden_of = golden_ids_of_records(
        conn, {c.record_id for found in matches for c in found.candidates}
    )
    ranked = []
    for found, (limit, _explain) in zip(matches, asks, strict=True):
        best: dict[str, Any] = {}
        for c in found.candidates:
            gid = golden_of.get(c.record_id)
            if gid is not None and gid not in best:
                best[gid] = c
            if len(best) >= limit:
                break
        ranked.append(best)
    why = explain_together(
        [
            (found, [c.record_id for c in list(best.values())[:explain]])
            for found, best, (_limit, explain) in zip(matches, ranked, asks, strict=True)
        ]
    )
    return [
        [
            GoldenCandidate(
                golden_id=gid,
                score=c.score,
                band=c.band,
                record_id=c.record_id,
                by_rule=c.by_rule,
                explanation=why[n][c.record_id].as_dict() if c.record_id in why[n] else None,
            )
            for gid, c in best.items()
        ]
        for n, best in enumerate(ranked)
    ]


@dataclass
class Proposal:
    """One ``POST /v1/match``: the body as ``layout``'s raw values, and what to answer."""

    values: dict[str, str | None]
    layout: SourceConfig
    limit: int
    explain: int


def answer_many(state: ServiceState, proposals: list[Proposal]) -> list[MatchAnswer | Problem]:
    """Each proposal cleansed and matched, as if asked alone: one call of the cleansers per
    layout and one read of the hub for all. A proposal the cleansers refuse gets its problem;
    the others their answers."""
    by_layout: dict[int, list[int]] = {}
    for i, p in enumerate(proposals):
        by_layout.setdefault(id(p.layout), []).append(i)
    refused: dict[int, Problem] = {}
    cleansed: list[dict[str, Any]] = []
    flat, ok = {}, []
    for group in by_layout.values():
        layout = proposals[group[0]].layout
        done = cleanse_many(
            [proposals[i].values for i in group], layout, state.config, strict=False
        )
        for i, k in zip(group, done.answers, strict=True):
            if isinstance(k, Problem):
                refused[i] = k
            else:
                ok.append(i)
                cleansed.append(done.values[k])
                flat[i] = done.json(k)
    found: dict[int, list[GoldenCandidate]] = {}
    if ok:
        with state.engine.connect() as conn:
            ranked = golden_candidates_many(
                conn,
                state,
                # Matched from the cleansed values: no frame of cleansing's columns is made.
                match_frame_of_values(cleansed),
                [(proposals[i].limit, proposals[i].explain) for i in ok],
            )
        found = dict(zip(ok, ranked, strict=True))
    out: list[MatchAnswer | Problem] = []
    for i in range(len(proposals)):
        if i in refused:
            out.append(refused[i])
            continue
        out.append(
            MatchAnswer(
                candidates=found[i],
                cleansed=flat[i],
                quality_flags=list(flat[i].get("quality_flags") or []),
                quality_score=float(flat[i].get("quality_score") or 0.0),
            )
        )
    return out


class MatchBatcher:
    """``POST /v1/match``'s worker: one thread that answers, in one batch
    (:func:`answer_many`), the proposals that queued up while it answered the previous batch.

    At low load a batch is one proposal and nothing waits for a batch to fill; under load the
    fixed cost of cleansing and matching small frames (pandas' per-call bookkeeping, most of a
    lone proposal's CPU) is paid once per batch instead of once per request. One proposal's
    failure is not the others': a batch that fails is answered again one proposal at a time."""

    def __init__(self, state: ServiceState, max_batch: int = 32) -> None:
        self._state, self._max = state, max_batch
        self._max_queued = state.settings.max_queued_matches
        #: batch size -> how many batches of that size were answered (counts only)
        self.batch_sizes: Counter[int] = Counter()
        #: the worker's CPU seconds answering them
        self.cpu_seconds = 0.0
        self._queue: queue.SimpleQueue[tuple[Proposal, Future[MatchAnswer]] | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="mdm-match-batcher", daemon=True)
        self._thread.start()

    def submit(self, proposal: Proposal) -> Future[MatchAnswer]:
        future: Future[MatchAnswer] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(Problem(503, "the service is stopping"))
            elif self._queue.qsize() >= self._max_queued:
                future.set_exception(
                    Problem(503, "too many match requests waiting", headers={"Retry-After": "1"})
                )
            else:
                self._queue.put((proposal, future))
        return future

    def close(self) -> None:
        """Answer what is queued, then stop; later submissions are refused (503)."""
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=60)
        answered = sum(size * n for size, n in self.batch_sizes.items())
        if answered:
            logging.getLogger("mdm.service").info(
                "match batcher: %d proposals in %d batches (largest %d), %.1f ms CPU each",
                answered,
                sum(self.batch_sizes.values()),
                max(self.batch_sizes),
                self.cpu_seconds * 1000 / answered,
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stopping = False
            while len(batch) < self._max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                self._answer(batch)
            except BaseException as exc:  # noqa: BLE001 - the worker must outlive any batch
                # Nobody waits for ever: a future not yet answered gets the error.
                for _p, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            if stopping:
                return

    def _answer(self, batch: list[tuple[Proposal, Future[MatchAnswer]]]) -> None:
        # A request whose client went away was cancelled: left out. The others' futures are
        # running from here on, so a late cancel cannot make setting their answer fail.
        batch = [(p, f) for p, f in batch if f.set_running_or_notify_cancel()]
        if not batch:
            return
        proposals = [p for p, _f in batch]
        self.batch_sizes[len(batch)] += 1
        began = time.thread_time()
        answers: list[MatchAnswer | BaseException]
        try:
            answers = list(answer_many(self._state, proposals))
        except Problem as problem:  # the hub's answer to all of them (no model: 503)
            answers = [problem] * len(proposals)
        except Exception as exc:  # noqa: BLE001 - each proposal gets its own error below
            # By type only: an exception's text may quote a value.
            logging.getLogger("mdm.service").warning(
                "match batch of %d failed (%s): answering each alone",
                len(batch),
                type(exc).__name__,
            )
            answers = []
            for p in proposals:
                try:
                    answers.append(answer_many(self._state, [p])[0])
                except Exception as alone:  # noqa: BLE001 - handed to the request's own handler
                    answers.append(alone)
        self.cpu_seconds += time.thread_time() - began
        for (_p, future), answer in zip(batch, answers, strict=True):
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)


async def match_batcher(request: Request) -> MatchBatcher:
    return request.app.state.match_batcher  # type: ignore[no-any-return]


@router.post("/match", response_model=MatchAnswer, dependencies=[Depends(require(MATCH))])
async def post_match(
    state: State,
    batcher: Annotated[MatchBatcher, Depends(match_batcher)],
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
    proposal = Proposal(
        raw_values(body, layout), layout, min(limit or state.settings.max_candidates, 100), explain
    )
    return await asyncio.wrap_future(batcher.submit(proposal))
