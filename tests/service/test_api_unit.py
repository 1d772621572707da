"""The service through FastAPI's in-process client (fast): keys and scopes, errors as problem
documents naming the field, reads, match, writes, idempotency, the gate."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from mdm_orchestration.service import revoke_api_key
from tests.service.conftest import PROBLEM, make_key, written_counts


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def one(engine: sa.Engine, sql: str, **params):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).first()


def an_active_golden(engine: sa.Engine) -> str:
    return one(
        engine,
        "SELECT golden_id FROM golden_records WHERE status = 'active' AND party_type = 'person' "
        "ORDER BY golden_id LIMIT 1",
    )[0]


def current_raw(engine: sa.Engine, source: str, offset: int = 0) -> tuple[str, dict]:
    row = one(
        engine,
        "SELECT s.id, v.raw FROM source_records s JOIN source_record_versions v ON "
        "v.extract_id = s.current_extract_id AND v.row_number = s.current_row_number "
        "WHERE s.source = :s ORDER BY s.id LIMIT 1 OFFSET :o",
        s=source,
        o=offset,
    )
    raw = json.loads(row[1]) if isinstance(row[1], str) else row[1]
    return row[0], raw


# --- authentication ---------------------------------------------------------------------------


def test_no_key_is_401_problem_with_a_bearer_challenge(client, hub_engine):
    r = client.get(f"/v1/golden/{an_active_golden(hub_engine)}")
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["status"] == 401


def test_an_unknown_or_malformed_key_is_401(client, hub_engine):
    gid = an_active_golden(hub_engine)
    for token in ("nonsense", "mdm_000000000000_" + "A" * 43):
        r = client.get(f"/v1/golden/{gid}", headers=bearer(token))
        assert r.status_code == 401


def test_a_key_without_the_scope_is_403(client, hub_engine):
    key = make_key(hub_engine, ["match"])
    r = client.get(f"/v1/golden/{an_active_golden(hub_engine)}", headers=bearer(key))
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    assert "read" in r.json()["detail"]
    r = client.post(
        "/v1/sources/self_service/records",
        headers=bearer(key),
        json={"customer_id": "x1", "given_name": "Ann", "family_name": "Lee"},
    )
    assert r.status_code == 403


def test_a_revoked_key_is_401(client, hub_engine):
    key = make_key(hub_engine, ["read"], "soon-revoked")
    gid = an_active_golden(hub_engine)
    assert client.get(f"/v1/golden/{gid}", headers=bearer(key)).status_code == 200
    assert revoke_api_key(hub_engine, "soon-revoked")
    assert client.get(f"/v1/golden/{gid}", headers=bearer(key)).status_code == 401


def test_keys_are_stored_hashed(hub_engine):
    key = make_key(hub_engine, ["read"], "hashed")
    with hub_engine.connect() as conn:
        dumped = json.dumps(
            [list(r) for r in conn.execute(sa.text("SELECT * FROM api_keys"))], default=str
        )
    assert key not in dumped and key.split("_")[2] not in dumped


def test_the_rate_limit_answers_429_with_retry_after(hub_url, hub_engine):
    from fastapi.testclient import TestClient

    from mdm_orchestration.service import ServiceSettings, create_app
    from tests.conftest import CONFIG_DIR

    settings = ServiceSettings(
        hub_url=hub_url, config_dir=CONFIG_DIR, rate_per_second=0.01, rate_burst=3
    )
    key = make_key(hub_engine, ["read"])
    gid = an_active_golden(hub_engine)
    with TestClient(create_app(settings)) as c:
        answers = [c.get(f"/v1/golden/{gid}", headers=bearer(key)).status_code for _ in range(5)]
        limited = c.get(f"/v1/golden/{gid}", headers=bearer(key))
    assert answers[:3] == [200, 200, 200] and answers[3:] == [429, 429]
    assert limited.headers["content-type"] == PROBLEM and int(limited.headers["retry-after"]) >= 1


# --- reads ------------------------------------------------------------------------------------


def test_golden_history_xref_and_as_of(client, hub_engine, api_key):
    gid = an_active_golden(hub_engine)
    r = client.get(f"/v1/golden/{gid}", headers=bearer(api_key))
    assert r.status_code == 200
    body = r.json()
    assert body["golden_id"] == gid and body["merged"] is False
    assert body["golden"]["xref"]
    entry = body["golden"]["xref"][0]
    r = client.get(f"/v1/xref/{entry['source']}/{entry['source_key']}", headers=bearer(api_key))
    assert r.status_code == 200 and r.json()["golden_id"] == gid
    history = client.get(f"/v1/golden/{gid}/history", headers=bearer(api_key)).json()
    assert [v["version"] for v in history["versions"]] == list(
        range(1, len(history["versions"]) + 1)
    )
    r = client.get(f"/v1/golden/{gid}?as_of=2000-01-01T00:00:00Z", headers=bearer(api_key))
    assert r.status_code == 404
    r = client.get(f"/v1/golden/{gid}?as_of=2999-01-01T00:00:00", headers=bearer(api_key))
    assert r.status_code == 200 and r.json()["golden"]["version"] == len(history["versions"])
    r = client.get(f"/v1/golden/{gid}?as_of=yesterday", headers=bearer(api_key))
    assert r.status_code == 422 and r.json()["field"] == "query.as_of"
    assert client.get("/v1/golden/G9999999999", headers=bearer(api_key)).status_code == 404
    assert client.get("/v1/xref/crm/no-such-key", headers=bearer(api_key)).status_code == 404


def test_a_merged_id_answers_with_its_survivor(client, hub_engine, api_key):
    with hub_engine.begin() as conn:
        a, b = conn.execute(
            sa.text(
                "SELECT golden_id FROM golden_records WHERE status = 'active' "
                "ORDER BY golden_id LIMIT 2"
            )
        ).scalars()
        conn.execute(
            sa.text(
                "UPDATE golden_records SET status = 'merged', merged_into = :b WHERE golden_id = :a"
            ),
            {"a": a, "b": b},
        )
    body = client.get(f"/v1/golden/{a}", headers=bearer(api_key)).json()
    assert body == {**body, "requested_id": a, "golden_id": b, "merged": True}


def test_search_by_body_and_by_query_paged(client, hub_engine, api_key):
    row = one(
        hub_engine,
        "SELECT c.email, c.family_name FROM cleansed_records c WHERE c.email_valid "
        "AND c.party_type = 'person' LIMIT 1",
    )
    r = client.post("/v1/search", headers=bearer(api_key), json={"email": row[0].upper()})
    assert r.status_code == 200 and r.json()["total"] >= 1
    found = r.json()["results"][0]["golden_id"]
    r = client.get("/v1/search", params={"email": row[0]}, headers=bearer(api_key))
    assert r.status_code == 200 and r.json()["results"][0]["golden_id"] == found
    r = client.post(
        "/v1/search", headers=bearer(api_key), json={"name": row[1], "page_size": 1, "page": 1}
    )
    assert r.status_code == 200 and len(r.json()["results"]) <= 1
    r = client.post("/v1/search", headers=bearer(api_key), json={"page": 1})
    assert r.status_code == 422
    r = client.post("/v1/search", headers=bearer(api_key), json={"emial": "x"})
    assert r.status_code == 422 and r.json()["field"] == "body.emial"


# --- match ------------------------------------------------------------------------------------


def test_match_answers_ranked_candidates_and_the_cleansed_form_writing_nothing(
    client, hub_engine, api_key
):
    _rid, raw = current_raw(hub_engine, "billing")
    before = written_counts(hub_engine)
    r = client.post("/v1/match?source=billing", headers=bearer(api_key), json=raw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"candidates", "cleansed"}
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert all(set(c) >= {"golden_id", "score", "band", "explanation"} for c in body["candidates"])
    assert {c["band"] for c in body["candidates"]} <= {"auto", "review", "none"}
    assert body["cleansed"]["party_type"] == "person"
    assert written_counts(hub_engine) == before


def test_match_in_canonical_fields(client, hub_engine, api_key):
    row = one(
        hub_engine,
        "SELECT given_name, family_name, email, birth_date FROM cleansed_records "
        "WHERE email_valid AND party_type = 'person' AND given_name IS NOT NULL LIMIT 1",
    )
    proposed = {"given_name": row[0], "family_name": row[1], "email": row[2]}
    r = client.post("/v1/match", headers=bearer(api_key), json=proposed)
    assert r.status_code == 200
    top = r.json()["candidates"][0]
    assert top["band"] in ("auto", "review")
    assert top["explanation"]["fields"]
    r = client.post("/v1/match", headers=bearer(api_key), json={**proposed, "colour": "red"})
    assert r.status_code == 422 and r.json()["field"] == "body.colour"
    r = client.post("/v1/match?source=nowhere", headers=bearer(api_key), json=proposed)
    assert r.status_code == 422 and r.json()["field"] == "query.source"


# --- writes -----------------------------------------------------------------------------------

PORTAL = "/v1/sources/self_service/records"


def test_a_write_is_stored_as_a_one_row_extract_and_an_update_as_a_new_version(
    client, hub_engine, api_key
):
    record = {"customer_id": "cust-1", "given_name": "Ann", "family_name": "Lee"}
    r = client.post(PORTAL, headers=bearer(api_key), json=record)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "created" and first["current"] is True
    r = client.post(PORTAL, headers=bearer(api_key), json={**record, "city": "Springfield"})
    assert r.status_code == 200 and r.json()["status"] == "updated"
    extract = one(
        hub_engine,
        "SELECT source, status, rows_landed, rows_loaded, file_name FROM extracts "
        "WHERE id = (SELECT max(id) FROM extracts)",
    )
    assert tuple(extract[:4]) == ("self_service", "loaded", 1, 1)
    assert extract[4].startswith("api/") and "Ann" not in extract[4]
    versions = one(
        hub_engine,
        "SELECT count(*) FROM source_record_versions WHERE source_record_id = :r",
        r=first["source_record_id"],
    )[0]
    assert versions == 2


def test_an_idempotent_retry_writes_once(client, hub_engine, api_key):
    record = {"customer_id": "cust-2", "given_name": "Bo", "family_name": "Nils"}
    headers = {**bearer(api_key), "Idempotency-Key": "k-123"}
    before = written_counts(hub_engine)
    first = client.post(PORTAL, headers=headers, json=record)
    again = client.post(PORTAL, headers=headers, json=record)
    assert first.status_code == again.status_code == 201
    assert again.json() == {**first.json(), "replayed": True}
    after = written_counts(hub_engine)
    assert after["extracts"] == before["extracts"] + 1
    assert after["source_record_versions"] == before["source_record_versions"] + 1
    other = client.post(PORTAL, headers=headers, json={**record, "city": "Elsewhere"})
    assert other.status_code == 422 and other.json()["field"] == "header.idempotency-key"
    assert written_counts(hub_engine) == after


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"customer_id": "c", ', "body"),
        (json.dumps({"customer_id": "c", "given_name": "A", "shoe_size": 9}), "body.shoe_size"),
        (json.dumps({"customer_id": "c", "given_name": "A", "email": "a@@b"}), "body.email"),
        (
            json.dumps({"customer_id": "c", "given_name": "A", "birth_date": "1990-02-31"}),
            "body.birth_date",
        ),
        (json.dumps({"given_name": "A", "family_name": "B"}), "body.customer_id"),
        (json.dumps({"customer_id": "c", "given_name": {"nested": 1}}), "body.given_name"),
        (
            json.dumps({"customer_id": "c", "given_name": "A", "consent_marketing_email": "maybe"}),
            "body.consent_marketing_email",
        ),
    ],
)
def test_bad_input_is_4xx_naming_the_field_and_writes_nothing(
    client, hub_engine, api_key, content, field
):
    before = written_counts(hub_engine)
    r = client.post(
        PORTAL,
        headers={**bearer(api_key), "Content-Type": "application/json"},
        content=content,
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["field"].startswith(field), r.json()
    assert written_counts(hub_engine) == before


def test_an_oversized_body_an_unknown_source_and_a_wrong_media_type(client, hub_engine, api_key):
    before = written_counts(hub_engine)
    big = {"customer_id": "c", "given_name": "A" * 5000}
    r = client.post(PORTAL, headers=bearer(api_key), json=big)
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    r = client.post("/v1/sources/crm/records", headers=bearer(api_key), json={"Id": "1"})
    assert r.status_code == 404 and r.json()["field"] == "path.source"
    r = client.post("/v1/sources/nowhere/records", headers=bearer(api_key), json={"Id": "1"})
    assert r.status_code == 404
    r = client.post(PORTAL, headers=bearer(api_key), content=b"customer_id=c")
    assert r.status_code == 415
    assert written_counts(hub_engine) == before


def test_an_erased_subject_is_refused(client, hub_engine, api_key):
    from mdm_orchestration.hub.models import source_record_id

    with hub_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO erasures (id, golden_id, records, requested_by, erased_at) "
                "VALUES (9001, 'G0', 1, 'test', '2026-01-01')"
            )
        )
        conn.execute(
            sa.text("INSERT INTO erased_records (record_id, erasure_id) VALUES (:r, 9001)"),
            {"r": source_record_id("self_service", "gone-1")},
        )
    before = written_counts(hub_engine)
    r = client.post(
        PORTAL, headers=bearer(api_key), json={"customer_id": "gone-1", "given_name": "Zed"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "erased_subject"
    assert written_counts(hub_engine) == before


def test_the_gate_answers_409_with_candidates_and_a_confirmed_write_goes_through(
    client, hub_engine, api_key
):
    row = one(
        hub_engine,
        "SELECT given_name, family_name, email, birth_date FROM cleansed_records "
        "WHERE email_valid AND party_type = 'person' AND given_name IS NOT NULL "
        "AND birth_date IS NOT NULL LIMIT 1",
    )
    record = {
        "customer_id": "dup-1",
        "given_name": row[0],
        "family_name": row[1],
        "email": row[2],
        "birth_date": str(row[3])[:10],
    }
    before = written_counts(hub_engine)
    r = client.post(f"{PORTAL}?gate=true", headers=bearer(api_key), json=record)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == PROBLEM
    candidates = r.json()["candidates"]
    assert candidates and candidates[0]["band"] in ("auto", "review")
    assert written_counts(hub_engine) == before
    r = client.post(f"{PORTAL}?gate=true&confirm=true", headers=bearer(api_key), json=record)
    assert r.status_code == 201
    unlike = {"customer_id": "new-1", "given_name": "Zebediah", "family_name": "Quuxworth"}
    assert (
        client.post(f"{PORTAL}?gate=true", headers=bearer(api_key), json=unlike).status_code == 201
    )


def test_the_access_log_has_ids_and_masked_queries_never_values(
    client, hub_engine, api_key, caplog
):
    canary = "canary.4711@example.org"
    caplog.set_level(logging.INFO, logger="mdm.service")
    client.get("/v1/search", params={"email": canary}, headers=bearer(api_key))
    client.post("/v1/search", json={"email": canary}, headers=bearer(api_key))
    client.get(f"/v1/golden/{canary}", headers=bearer(api_key))
    client.post(
        PORTAL,
        headers=bearer(api_key),
        json={"customer_id": "c9", "given_name": "Canaryname", "email": canary},
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/search?email=*" in text
    assert canary not in text and "Canaryname" not in text
    assert "/v1/golden/{golden_id}" in text
