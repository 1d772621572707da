"""The service over real HTTP: ``mdm serve`` in its own process on a free loopback port, on
SQLite and on PostgreSQL, keys made by ``mdm api-key create``.

Cheap by construction: the mastered hub is built once per session (SQLite: the service tests'
shared hub; PostgreSQL: the same silos mastered once into a template database with the SQLite
hub's trained model copied in, so dedupe trains once), each backend gets one private copy (a
file copy; ``CREATE DATABASE ... TEMPLATE``) and one server for the whole module. Tests that
write use keys of their own, so they do not depend on each other's writes. The last test of
each backend is the privacy canary over the server's whole log.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from mdm_orchestration import cli
from mdm_orchestration.config import HubConfig, load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from tests.conftest import CONFIG_DIR, PG_ADMIN_URL, _postgres_available
from tests.service.conftest import PROBLEM, Server, written_counts
from tests.service.test_match_agrees_with_batch import check_agreement

CANARY_EMAIL = "canary.7f3a@example.org"
CANARY_NAME = "Zyxcanary"
CANARY_STREET = "4711 Canarywood Lane"
PORTAL = "/v1/sources/self_service/records"


def mdm(*args: str) -> tuple[int, str]:
    """``mdm ARGS`` in this process (the CLI's own parsing and printing; a subprocess per call
    cost 2-3 s of imports here): its exit code and standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def new_key(hub_url: str, *scopes: str, name: str) -> str:
    args = ["api-key", "create", "--hub", hub_url, "--config", str(CONFIG_DIR), "--name", name]
    for s in scopes:
        args += ["--scope", s]
    code, out = mdm(*args)
    assert code == 0, out
    key = out.strip().splitlines()[-1]  # the contract: the key alone on the last line
    assert key.startswith("mdm_") and " " not in key
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- the hubs and the servers, once per backend -----------------------------------------------


def _admin() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def copy_hub(source: sa.Engine, target: sa.Engine) -> None:
    """Every row of the hub ``source`` into the freshly migrated, empty hub ``target``, in
    foreign-key order, then each serial column's sequence moved past the copied ids."""
    from sqlmodel import SQLModel

    tables = SQLModel.metadata.sorted_tables
    with source.connect() as src, target.begin() as dst:
        for table in tables:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            for i in range(0, len(rows), 5000):
                dst.execute(table.insert(), rows[i : i + 5000])
        serials = dst.execute(
            sa.text(
                "SELECT table_name, column_name, seq FROM (SELECT table_name, column_name, "
                "pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq "
                "FROM information_schema.columns WHERE table_schema = current_schema()) s "
                "WHERE seq IS NOT NULL"
            )
        ).all()
        for table, column, seq in serials:
            dst.execute(
                sa.text(
                    f'SELECT setval(:seq, coalesce(max("{column}"), 0) + 1, false) FROM "{table}"'
                ),
                {"seq": seq},
            )


@pytest.fixture(scope="session")
def postgres_template(mastered_hub_file: Path) -> Iterator[str]:
    """The mastered SQLite hub copied row by row into a PostgreSQL database, once per session,
    as the template each module clones: dedupe trains once, and the same hub is served on both
    backends (the reconsolidation test then runs the incremental path on PostgreSQL)."""
    problem = _postgres_available()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem})"
        if os.environ.get("MDM_REQUIRE_POSTGRES"):  # as tests/conftest.py's postgres_url
            pytest.fail(message + " and MDM_REQUIRE_POSTGRES is set")
        pytest.skip(message)
    name = f"mdm_http_tpl_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        source = create_hub_engine(f"sqlite:///{mastered_hub_file}")
        engine = create_hub_engine(_pg_url(name))
        try:
            copy_hub(source, engine)
        finally:
            source.dispose()
            engine.dispose()
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Live:
    """One backend's running service: its hub (a private copy), its server, its keys."""

    backend: str
    hub_url: str
    server: Server
    home: Path
    reader: str
    writer: str
    client: httpx.Client

    def engine(self) -> sa.Engine:
        return create_hub_engine(self.hub_url)

    def counts(self) -> dict[str, int]:
        engine = self.engine()
        try:
            return written_counts(engine)
        finally:
            engine.dispose()

    def log(self) -> str:
        return self.server.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def _hub_copy(request: pytest.FixtureRequest, backend: str, root: Path) -> Iterator[str]:
    if backend == "sqlite":
        target = root / "hub.db"
        shutil.copy(request.getfixturevalue("mastered_hub_file"), target)
        yield f"sqlite:///{target}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"mdm_http_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp(f"http_{request.param}")
    with _hub_copy(request, request.param, root) as hub_url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("MDM_HOME", str(root / "mdm_home"))
        reader = new_key(hub_url, "read", name="reader")
        writer = new_key(hub_url, "read", "match", "write:self_service", name="portal")
        server = Server(hub_url, root / "server.log")
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield Live(
                    request.param, hub_url, server, root / "mdm_home", reader, writer, client
                )
        finally:
            server.stop()


@pytest.fixture(scope="module")
def person(live: Live) -> dict:
    """A cleansed person of the hub with a valid email and a birth date, and a golden id."""
    engine = live.engine()
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT given_name, family_name, email, birth_date FROM cleansed_records "
                    "WHERE email_valid AND party_type = 'person' AND given_name IS NOT NULL "
                    "AND birth_date IS NOT NULL ORDER BY source_record_id LIMIT 1"
                )
            ).one()
            gid = conn.execute(
                sa.text(
                    "SELECT golden_id FROM golden_records WHERE status = 'active' "
                    "ORDER BY golden_id LIMIT 1"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return {
        "given_name": row[0],
        "family_name": row[1],
        "email": row[2],
        "birth_date": str(row[3])[:10],
        "golden_id": gid,
    }


def proposed(person: dict) -> dict:
    return {k: person[k] for k in ("given_name", "family_name", "email", "birth_date")}


# --- authentication ---------------------------------------------------------------------------


def test_no_key_wrong_scope_and_a_revoked_key(live: Live, person: dict) -> None:
    c, golden = live.client, f"/v1/golden/{person['golden_id']}"
    r = c.get(golden)
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert c.get(golden, headers=bearer(live.reader)).status_code == 200
    r = c.post("/v1/match", headers=bearer(live.reader), json={"given_name": "A"})
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    r = c.post(PORTAL, headers=bearer(live.reader), json={"customer_id": "x", "given_name": "A"})
    assert r.status_code == 403
    revoked = new_key(live.hub_url, "read", name="to-revoke")
    assert c.get(golden, headers=bearer(revoked)).status_code == 200
    code, out = mdm("api-key", "revoke", "--hub", live.hub_url, "to-revoke")
    assert code == 0, out
    assert c.get(golden, headers=bearer(revoked)).status_code == 401
    code, out = mdm("api-key", "list", "--hub", live.hub_url, "--json")
    listed = json.loads(out)
    assert {k["name"] for k in listed} >= {"reader", "portal", "to-revoke"}
    assert all("key_hash" not in k for k in listed)


# --- reads and match --------------------------------------------------------------------------


def test_match_answers_ranked_candidates_and_the_cleansed_form(live: Live, person: dict) -> None:
    before = live.counts()
    r = live.client.post("/v1/match", headers=bearer(live.writer), json=proposed(person))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["candidates"] and body["candidates"][0]["band"] in ("auto", "review")
    scores = [cand["score"] for cand in body["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert body["cleansed"]["email"] == person["email"].lower()
    assert live.counts() == before  # nothing written
    assert live.client.get("/docs").status_code == 200
    assert "/v1/match" in live.client.get("/openapi.json").json()["paths"]


def test_match_agrees_with_the_batch_matcher(live: Live) -> None:
    engine = live.engine()
    try:
        check_agreement(live.client, engine, live.writer)
    finally:
        engine.dispose()


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "status", "field"),
    [
        (PORTAL, b'{"customer_id": ', 400, "body"),
        (PORTAL, {"customer_id": "b1", "given_name": "A", "shoe_size": 9}, 422, "body.shoe_size"),
        (
            PORTAL,
            {"customer_id": "b1", "given_name": CANARY_NAME, "email": "a@@b"},
            422,
            "body.email",
        ),
        (
            PORTAL,
            {"customer_id": "b1", "given_name": "A", "birth_date": "1990-02-31"},
            422,
            "body.birth_date",
        ),
        (PORTAL, {"customer_id": "b1", "given_name": "x" * 70_000}, 413, None),
        ("/v1/sources/nowhere/records", {"customer_id": "b1"}, 404, "path.source"),
        ("/v1/sources/crm/records", {"Id": "b1"}, 404, "path.source"),
    ],
    ids=[
        "malformed",
        "unknown-field",
        "email",
        "date",
        "oversized",
        "unknown-source",
        "file-source",
    ],
)
def test_bad_input_is_4xx_naming_the_field_and_writes_nothing(
    live: Live, path: str, content: bytes | dict, status: int, field: str | None
) -> None:
    before = live.counts()
    body = content if isinstance(content, bytes) else json.dumps(content).encode()
    r = live.client.post(
        path,
        headers={**bearer(live.writer), "Content-Type": "application/json"},
        content=body,
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    if field is not None:
        assert r.json()["field"].startswith(field), r.json()
    assert live.counts() == before


# --- writes -----------------------------------------------------------------------------------


def test_the_gate_answers_409_then_a_confirmed_write_goes_through(live: Live, person: dict) -> None:
    record = {"customer_id": f"gate-{live.backend}", **proposed(person)}
    before = live.counts()
    r = live.client.post(f"{PORTAL}?gate=true", headers=bearer(live.writer), json=record)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["candidates"][0]["golden_id"]
    assert live.counts() == before
    r = live.client.post(
        f"{PORTAL}?gate=true&confirm=true", headers=bearer(live.writer), json=record
    )
    assert r.status_code == 201, r.text
    after = live.counts()
    assert after["extracts"] == before["extracts"] + 1
    assert after["api_writes"] == before["api_writes"] + 1


def test_an_idempotent_retry_writes_once(live: Live) -> None:
    record = {"customer_id": "retry-1", "given_name": "Bo", "family_name": "Nilsretry"}
    headers = {**bearer(live.writer), "Idempotency-Key": "retry-42"}
    before = live.counts()
    first = live.client.post(PORTAL, headers=headers, json=record)
    again = live.client.post(PORTAL, headers=headers, json=record)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == {**first.json(), "replayed": True}
    after = live.counts()
    assert after["extracts"] == before["extracts"] + 1
    assert after["source_record_versions"] == before["source_record_versions"] + 1


# --- a write reaches the subscribers ----------------------------------------------------------


def _reconsolidate_and_syndicate(live: Live, config: HubConfig) -> dict[str, list[dict]]:
    """What the API-writes sensor's reconsolidate run and the syndication runs do, through the
    same faces, in this process; answers each file subscriber's new messages."""
    from mdm_orchestration.cleansing import cleanse_pending
    from mdm_orchestration.matching import rematch
    from mdm_orchestration.survivorship import consolidate
    from mdm_orchestration.syndication import syndicate

    engine = live.engine()
    out: dict[str, list[dict]] = {}
    try:
        cleanse_pending(engine, config)
        rematch(engine, config)
        consolidate(engine, config, "http-test")
        for name in ("warehouse", "marketing"):
            folder = live.home / "outbound" / name
            seen = set(folder.iterdir()) if folder.exists() else set()
            syndicate(engine, config, name, home=live.home)
            out[name] = []
            for path in sorted(set(folder.iterdir()) - seen):
                text = path.read_text(encoding="utf-8")
                if path.suffix == ".jsonl":
                    out[name] += [json.loads(line) for line in text.splitlines() if line]
                else:
                    out[name] += list(csv.DictReader(io.StringIO(text)))
    finally:
        engine.dispose()
    return out


def _golden_of(live: Live, key: str) -> str:
    r = live.client.get(f"/v1/xref/self_service/{key}", headers=bearer(live.reader))
    assert r.status_code == 200, r.text
    return r.json()["golden_id"]


def test_an_address_change_and_a_consent_withdrawal_reach_the_file_subscribers(
    live: Live,
) -> None:
    """A customer's own portal writes, through the reconsolidation and syndication faces:
    created at both subscribers, an address change ``updated`` at the warehouse, a consent
    withdrawal ``removed`` at marketing."""
    config = load_hub_config(CONFIG_DIR)
    _reconsolidate_and_syndicate(live, config)  # the subscribers' snapshots, and earlier writes
    key = f"portal-{uuid.uuid4().hex[:8]}"
    customer = {
        "customer_id": key,
        "given_name": "Quillon",
        "family_name": "Vandersnoot",
        "email": f"{key}@example.net",
        "street": "12 Old Road",
        "city": "Springfield",
        "postcode": "62701",
        "country": "US",
        "consent_marketing_email": True,
    }
    w = bearer(live.writer)

    def post(record: dict) -> None:
        r = live.client.post(PORTAL, headers=w, json=record)
        assert r.status_code in (200, 201), r.text

    def events(messages: list[dict], golden: str) -> list[str]:
        return [m["event_type"] for m in messages if m["golden_id"] == golden]

    post(customer)
    sent = _reconsolidate_and_syndicate(live, config)
    golden = _golden_of(live, key)
    assert events(sent["warehouse"], golden) == ["created"]
    assert events(sent["marketing"], golden) == ["created"]

    post({**customer, "street": "99 New Avenue", "city": "Shelbyville", "postcode": "62565"})
    sent = _reconsolidate_and_syndicate(live, config)
    # The change event, and the business event derived from it.
    assert events(sent["warehouse"], golden) == ["updated", "address_changed"]
    update = next(m for m in sent["warehouse"] if m["event_type"] == "updated")
    assert (
        update["golden_id"] == golden and update["attributes"]["street"] == "99 New Ave"
    )  # cleansed

    post(
        {
            **customer,
            "street": "99 New Avenue",
            "city": "Shelbyville",
            "postcode": "62565",
            "consent_marketing_email": False,
        }
    )
    sent = _reconsolidate_and_syndicate(live, config)
    assert events(sent["marketing"], golden) == ["removed"]


# --- the privacy canary (last: it reads the whole log) ----------------------------------------


def test_no_customer_value_in_the_server_log(live: Live, person: dict) -> None:
    c, w = live.client, bearer(live.writer)
    canary = {
        "customer_id": "canary-1",
        "given_name": CANARY_NAME,
        "family_name": "Testperson",
        "email": CANARY_EMAIL,
        "street": CANARY_STREET,
    }
    assert (
        c.post(PORTAL, headers={**w, "Idempotency-Key": "canary"}, json=canary).status_code == 201
    )
    c.post(PORTAL, headers=w, json={**canary, "email": "bad@@" + CANARY_EMAIL})  # 422
    c.post("/v1/search", headers=w, json={"email": CANARY_EMAIL, "name": CANARY_NAME})
    c.get("/v1/search", headers=w, params={"email": CANARY_EMAIL, "name": CANARY_NAME})
    c.get(f"/v1/golden/{CANARY_EMAIL}", headers=w)
    c.post("/v1/match", headers=w, json={"given_name": CANARY_NAME, "email": CANARY_EMAIL})
    log = live.log()
    assert '"POST /v1/sources/self_service/records" 201' in log  # the access log is there
    assert "/v1/search?email=*&name=*" in log
    values = (CANARY_EMAIL, CANARY_NAME, CANARY_STREET, "canary.7f3a", "Canarywood")
    others = (person["email"], "Vandersnoot", "Quillon", "99 New Avenue", "Nilsretry")
    for value in values + others:
        assert value not in log, value
