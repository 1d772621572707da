"""``POST /v1/match`` answers the proposals that arrive together in one batch: each answer must
be the one the proposal gets alone, whatever else is in its batch (other layouts, other party
types, a refused one, the same record twice)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from mdm_orchestration.service.inputs import canonical_source, raw_values
from mdm_orchestration.service.matching import MatchBatcher, Proposal, answer_many
from mdm_orchestration.service.problems import Problem
from mdm_orchestration.service.state import ServiceSettings, ServiceState
from tests.conftest import CONFIG_DIR
from tests.service.test_api_unit import bearer
from tests.service.test_match_agrees_with_batch import raw_of


def proposals_of(engine: sa.Engine, state: ServiceState, n: int) -> list[Proposal]:
    """Hub records' own values in their sources' layouts (persons and organisations), the same
    record twice, canonical proposals with a typo, and one the cleansers refuse."""
    out = []
    for party in ("person", "organisation"):
        with engine.connect() as conn:
            picked = list(
                conn.execute(
                    sa.text(
                        "SELECT source_record_id FROM cleansed_records WHERE party_type = :p "
                        "ORDER BY source_record_id"
                    ),
                    {"p": party},
                ).scalars()
            )
        step = max(1, len(picked) // (n // 2))
        for rid in picked[::step][: n // 2]:
            source, raw = raw_of(engine, rid)
            layout = state.config.sources[source]
            out.append(Proposal(raw_values(raw, layout), layout, 10, 3))
    out.append(out[0])
    us = canonical_source("US")
    out.append(Proposal({"given_name": "Jonathn", "family_name": "Smith"}, us, 5, 1))
    # One record id, two contents (a record asked about twice, changed in between).
    out.append(Proposal({"key": "K-1", "given_name": "Ann", "family_name": "Lee"}, us, 10, 3))
    out.append(Proposal({"key": "K-1", "given_name": "Anne", "family_name": "Leigh"}, us, 10, 3))
    out.append(Proposal({"given_name": "Ann", "birth_date": "31/31/1990"}, us, 10, 3))
    # Nothing to tell anyone by: the quality rules stop it.
    out.append(Proposal({"country": "US"}, us, 10, 3))
    return out


def comparable(answer: object) -> object:
    if isinstance(answer, Problem):
        return ("problem", answer.status, answer.detail, answer.errors)
    dumped = answer.model_dump()  # type: ignore[attr-defined]
    # A proposal without its source's key gets a random record id of its own.
    dumped["cleansed"].pop("source_record_id", None)
    return dumped


def service_state(hub_url: str) -> ServiceState:
    return ServiceState.open(
        ServiceSettings(
            hub_url=hub_url, config_dir=CONFIG_DIR, rate_per_second=1e9, rate_burst=10**9
        )
    )


def test_a_batch_answers_each_proposal_as_if_alone(hub_url, hub_engine):
    state = service_state(hub_url)
    try:
        proposals = proposals_of(hub_engine, state, 40)
        alone = [comparable(answer_many(state, [p])[0]) for p in proposals]
        together = [comparable(a) for a in answer_many(state, proposals)]
    finally:
        state.engine.dispose()
    assert together == alone
    kinds = [a[0] if isinstance(a, tuple) else "answer" for a in alone]
    assert kinds.count("problem") >= 1 and kinds.count("answer") >= 40
    answered = [a for a in alone if isinstance(a, dict)]
    assert sum(bool(a["candidates"]) for a in answered) >= 30
    assert {a["cleansed"]["party_type"] for a in answered} == {"person", "organisation"}


def test_the_batcher_batches_what_queues_up_and_answers_each(hub_url, hub_engine):
    state = service_state(hub_url)
    batcher = MatchBatcher(state, max_batch=16)
    try:
        proposals = proposals_of(hub_engine, state, 30)
        alone = [comparable(answer_many(state, [p])[0]) for p in proposals]
        start = threading.Barrier(len(proposals))

        def ask(p: Proposal) -> object:
            start.wait()
            try:
                return comparable(batcher.submit(p).result(timeout=120))
            except Problem as exc:
                return comparable(exc)

        with ThreadPoolExecutor(len(proposals)) as pool:
            together = list(pool.map(ask, proposals))
    finally:
        batcher.close()
        state.engine.dispose()
    assert together == alone
    assert sum(batcher.batch_sizes.values()) < len(proposals)
    assert max(batcher.batch_sizes) > 1
    assert sum(size * n for size, n in batcher.batch_sizes.items()) == len(proposals)


def test_concurrent_requests_over_http_get_their_own_answers(server, hub_engine, api_key):
    """A real ``mdm serve``: concurrent proposals, each answered as when sent alone."""
    import httpx

    state = service_state(str(hub_engine.url))
    try:
        proposals = proposals_of(hub_engine, state, 24)
    finally:
        state.engine.dispose()
    bodies = [(p.layout.name, p.values) for p in proposals]

    def send(item: tuple[str, dict]) -> tuple[int, object]:
        source, values = item
        query = "" if source == "canonical" else f"?source={source}"
        with httpx.Client(base_url=server.url, timeout=60) as c:
            r = c.post(f"/v1/match{query}", headers=bearer(api_key), json=values)
        body = r.json()
        if r.status_code == 200:
            body["cleansed"].pop("source_record_id", None)
        return r.status_code, body

    alone = [send(b) for b in bodies]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(send, bodies))
    assert together == alone
    assert sum(status == 200 for status, _b in alone) >= 20


def test_cancelled_requests_do_not_stop_the_batcher_and_a_closed_one_refuses(hub_url, hub_engine):
    """A client that goes away cancels its future (asyncio cancels the wrapped future); the
    worker must go on answering the others, and after ``close`` nothing waits for ever."""
    state = service_state(hub_url)
    batcher = MatchBatcher(state, max_batch=4)
    try:
        proposals = proposals_of(hub_engine, state, 10)
        futures = [batcher.submit(p) for p in proposals]
        for f in futures[::2]:
            f.cancel()
        for f in futures[1::2]:
            f.exception(timeout=120)  # answered (an answer or its own problem), not stuck
        after = batcher.submit(proposals[0])
        assert after.result(timeout=120).cleansed
    finally:
        batcher.close()
        state.engine.dispose()
    refused = batcher.submit(proposals[0]).exception(timeout=5)
    assert isinstance(refused, Problem) and refused.status == 503


def test_a_hub_wide_problem_answers_every_proposal_of_the_batch(hub_url, hub_engine, monkeypatch):
    """No usable model: each request of the batch gets the 503, none hangs."""
    from mdm_orchestration.matching import NoModel

    state = service_state(hub_url)

    def no_model(_conn):  # type: ignore[no-untyped-def]
        raise NoModel("none trained")

    monkeypatch.setattr(state, "models", no_model)
    batcher = MatchBatcher(state)
    try:
        futures = [batcher.submit(p) for p in proposals_of(hub_engine, state, 6)]
        problems = [f.exception(timeout=120) for f in futures]
    finally:
        batcher.close()
        state.engine.dispose()
    refused = [p for p in problems if isinstance(p, Problem) and p.status == 422]
    assert all(isinstance(p, Problem) and p.status in (503, 422) for p in problems)
    assert sum(p.status == 503 for p in problems) == len(problems) - len(refused) >= 6


def test_workers_share_the_port_and_answer(hub_url, hub_engine, api_key, tmp_path):
    """``mdm serve --workers 2``: two processes on one port, each answering matches and reads."""
    import httpx

    from tests.service.conftest import Server

    state = service_state(hub_url)
    try:
        proposals = proposals_of(hub_engine, state, 12)
    finally:
        state.engine.dispose()
    with hub_engine.connect() as conn:
        golden = conn.execute(sa.text("SELECT golden_id FROM golden_records LIMIT 1")).scalar_one()
    server = Server(hub_url, tmp_path / "workers.log", "--workers", "2")
    try:

        def send(p: Proposal) -> int:
            query = "" if p.layout.name == "canonical" else f"?source={p.layout.name}"
            with httpx.Client(base_url=server.url, timeout=60) as c:
                r = c.post(f"/v1/match{query}", headers=bearer(api_key), json=p.values)
                g = c.get(f"/v1/golden/{golden}", headers=bearer(api_key))
            assert g.status_code == 200
            return r.status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, proposals * 2))
    finally:
        log = server.stop()
    assert statuses.count(200) >= 2 * 12 and set(statuses) <= {200, 422}
    assert log.count("Started server process") == 2, log[-2000:]


def test_a_full_queue_refuses_with_retry_after(hub_url, hub_engine, monkeypatch):
    """While the matcher is busy, at most ``max_queued_matches`` proposals wait; the next gets
    503 with Retry-After, and the waiting ones are answered once it is free."""
    import mdm_orchestration.service.matching as matching

    state = service_state(hub_url)
    state.settings = state.settings.model_copy(update={"max_queued_matches": 2})
    busy, release = threading.Event(), threading.Event()
    real = matching.answer_many

    def slow(state_, proposals):  # type: ignore[no-untyped-def]
        busy.set()
        release.wait(60)
        return real(state_, proposals)

    monkeypatch.setattr(matching, "answer_many", slow)
    batcher = MatchBatcher(state, max_batch=1)
    try:
        proposals = proposals_of(hub_engine, state, 4)
        first = batcher.submit(proposals[0])
        assert busy.wait(60)  # the worker holds the first; the queue is empty again
        waiting = [batcher.submit(p) for p in proposals[1:3]]
        refused = batcher.submit(proposals[3]).exception(timeout=5)
        assert isinstance(refused, Problem) and refused.status == 503
        assert refused.headers == {"Retry-After": "1"}
        release.set()
        for f in [first, *waiting]:
            assert f.result(timeout=120).cleansed
    finally:
        release.set()
        batcher.close()
        state.engine.dispose()


def test_more_concurrent_requests_than_hub_connections_all_answer(server, hub_engine):
    """Forty callers at once, reads and matches mixed, more than the hub's connection pool
    holds: each is answered (nothing in the event loop waits for a pooled connection that a
    request in a worker thread holds until the loop sends its answer)."""
    import httpx

    from tests.service.conftest import make_key

    key = make_key(hub_engine, ["read", "match"], name="many")
    state = service_state(str(hub_engine.url))
    try:
        proposals = proposals_of(hub_engine, state, 8)
    finally:
        state.engine.dispose()
    with hub_engine.connect() as conn:
        ids = list(
            conn.execute(
                sa.text("SELECT golden_id FROM golden_records WHERE status = 'active' LIMIT 32")
            ).scalars()
        )
    assert len(ids) == 32

    def send(n: int) -> int:
        with httpx.Client(base_url=server.url, timeout=20) as c:
            for _ in range(3):
                if n % 5 == 4:
                    p = proposals[n % len(proposals)]
                    query = "" if p.layout.name == "canonical" else f"?source={p.layout.name}"
                    r = c.post(f"/v1/match{query}", headers=bearer(key), json=p.values)
                else:
                    r = c.get(f"/v1/golden/{ids[n % len(ids)]}", headers=bearer(key))
                if r.status_code != 200:
                    return r.status_code
        return 200

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(send, range(40)))
    assert statuses == [200] * 40
