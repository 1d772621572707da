"""The workbench's pages through FastAPI's TestClient: sign-in, redirects, CSRF, roles,
decisions as labels, the golden record 360, corrections and the audit trail."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import LABELS, OVERRIDES, REVIEW, WORKBENCH_AUDIT
from mdm_orchestration.workbench import create_user, disable_user
from tests.workbench.conftest import PASSWORD, workbench_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def app(workbench_hub, tmp_path_factory):
    return workbench_app(workbench_hub, tmp_path_factory.mktemp("wb_key") / "workbench.key")


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, follow_redirects=False) as c:
        yield c


@pytest.fixture(scope="module")
def engine(workbench_hub):
    engine = create_hub_engine(workbench_hub)
    yield engine
    engine.dispose()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD, next_: str = "") -> str:
    """Sign in as ``name``; the CSRF token of the signed-in session."""
    client.cookies.clear()
    form = client.get("/workbench/login")
    answer = client.post(
        "/workbench/login",
        data={
            "username": name,
            "password": password,
            "csrf_token": csrf_of(form.text),
            "next": next_,
        },
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/workbench/review").text)


def pending_item(engine) -> int:
    with engine.connect() as conn:
        return (
            conn.execute(
                select(REVIEW.c.id).where(REVIEW.c.status == "pending").order_by(REVIEW.c.id)
            )
            .scalars()
            .first()
        )


def audit_rows(engine, action: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(WORKBENCH_AUDIT).where(WORKBENCH_AUDIT.c.action == action)).all()


@pytest.mark.parametrize(
    "path",
    [
        "/workbench",
        "/workbench/review",
        "/workbench/search",
        "/workbench/audit",
        "/workbench/golden/G0000000001",
        "/workbench/review?item=1",
    ],
)
def test_a_signed_out_visitor_is_sent_to_sign_in(client, path):
    client.cookies.clear()
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/workbench/login?next=")


def test_a_signed_out_post_is_sent_to_sign_in_and_htmx_told_so(client, engine):
    client.cookies.clear()
    item = pending_item(engine)
    answer = client.post(f"/workbench/review/{item}/decide", data={"verdict": "match"})
    assert answer.status_code == 303 and "/workbench/login" in answer.headers["location"]
    answer = client.post(
        f"/workbench/review/{item}/decide",
        data={"verdict": "match"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 401 and answer.headers["hx-redirect"].startswith(
        "/workbench/login"
    )


def test_sign_in_sets_a_signed_httponly_samesite_cookie(client):
    client.cookies.clear()
    form = client.get("/workbench/login")
    assert form.status_code == 200 and "Sign in" in form.text
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    wrong = client.post(
        "/workbench/login",
        data={"username": "stella", "password": "nope" * 4, "csrf_token": csrf_of(form.text)},
    )
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    right = client.post(
        "/workbench/login",
        data={
            "username": "stella",
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "/workbench/search",
        },
    )
    assert right.status_code == 303 and right.headers["location"] == "/workbench/search"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/workbench" in cookie
    assert PASSWORD.lower() not in cookie
    page = client.get("/workbench/search")
    assert page.status_code == 200 and "stella (steward)" in page.text
    # A forged cookie is no session.
    client.cookies.set("mdm_workbench", "eyJ1Ijoic3RlbGxhIn0.forged", path="/workbench")
    assert client.get("/workbench/search").status_code == 303


def test_sign_in_never_redirects_off_the_workbench(client):
    client.cookies.clear()
    form = client.get("/workbench/login?next=https://evil.example/x")
    assert 'value="/workbench/review"' in form.text
    for target in ("https://evil.example/", "//evil.example/", "/elsewhere", "/workbench/login"):
        client.cookies.clear()
        form = client.get("/workbench/login")
        answer = client.post(
            "/workbench/login",
            data={
                "username": "vera",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
        assert answer.headers["location"] == "/workbench/review"


def test_the_sign_in_form_needs_its_csrf_token(client):
    client.cookies.clear()
    client.get("/workbench/login")
    answer = client.post("/workbench/login", data={"username": "stella", "password": PASSWORD})
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_post_without_its_csrf_token_is_refused(client, engine):
    sign_in(client, "stella")
    item = pending_item(engine)
    for headers, data in (
        ({}, {"verdict": "match"}),
        ({}, {"verdict": "match", "csrf_token": "not-the-token"}),
        ({"X-CSRF-Token": "not-the-token"}, {"verdict": "match"}),
    ):
        answer = client.post(f"/workbench/review/{item}/decide", data=data, headers=headers)
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"].startswith("the form's CSRF token")
    with engine.connect() as conn:
        assert conn.execute(select(REVIEW.c.status).where(REVIEW.c.id == item)).scalar() == (
            "pending"
        )


def test_a_viewer_sees_masked_values_and_cannot_decide(client, engine):
    token = sign_in(client, "vera")
    page = client.get("/workbench/review")
    assert page.status_code == 200
    assert "may look, not decide" in page.text and 'data-shortcut="m"' not in page.text
    item = pending_item(engine)
    answer = client.post(
        f"/workbench/review/{item}/decide",
        data={"verdict": "match"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert answer.status_code == 403 and "viewer" in answer.json()["detail"]
    with engine.connect() as conn:
        row = conn.execute(select(REVIEW).where(REVIEW.c.id == item)).first()
    assert row.status == "pending"
    # Masked on the 360 page: emails keep their domain only, phones their last digits.
    gid, email = _golden_with_email(engine)
    page = client.get(f"/workbench/golden/{gid}")
    assert page.status_code == 200 and email not in page.text
    assert "•••@" + email.split("@")[1] in page.text
    assert "Merge another golden record" not in page.text
    answer = client.post(
        f"/workbench/golden/{gid}/merge",
        data={"other": gid, "reason": "x", "csrf_token": token},
    )
    assert answer.status_code == 403


def _golden_with_email(engine) -> tuple[str, str]:
    from mdm_orchestration.hub.tables import GOLDEN

    with engine.connect() as conn:
        for gid, attributes in conn.execute(
            select(GOLDEN.c.golden_id, GOLDEN.c.attributes)
            .where(GOLDEN.c.status == "active")
            .order_by(GOLDEN.c.golden_id)
        ):
            if attributes.get("email") and attributes.get("phone"):
                return gid, attributes["email"]
    raise AssertionError("no golden record with an email")


def test_a_steward_decision_becomes_a_label_and_is_audited(client, engine):
    token = sign_in(client, "stella")
    page = client.get("/workbench/review")
    item = int(re.search(r'data-item="(\d+)"', page.text).group(1))
    assert "Why: each field" in page.text and "counted (log-odds)" in page.text
    answer = client.post(
        f"/workbench/review/{item}/decide",
        data={"verdict": "d"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert answer.status_code == 200, answer.text
    assert f"Item {item}: recorded as distinct" in answer.text
    assert "next reconsolidation" in answer.text
    assert f"review:{item}: distinct · waiting for the next reconsolidation" in answer.text
    with engine.connect() as conn:
        row = conn.execute(select(REVIEW).where(REVIEW.c.id == item)).first()
        label = conn.execute(
            select(LABELS.c.label, LABELS.c.labelled_by).where(
                LABELS.c.left_record_id == row.left_record_id,
                LABELS.c.right_record_id == row.right_record_id,
            )
        ).first()
    assert row.status == "done" and tuple(label) == ("distinct", "stella")
    (entry,) = [e for e in audit_rows(engine, "review_decision") if e.target == f"review:{item}"]
    assert entry.actor == "stella" and entry.details["verdict"] == "distinct"
    # Decided once: a second decision on it is a conflict.
    again = client.post(
        f"/workbench/review/{item}/decide", data={"verdict": "m"}, headers={"X-CSRF-Token": token}
    )
    assert again.status_code == 409


def test_the_golden_record_360_shows_lineage_members_history_and_search(client, engine):
    token = sign_in(client, "stella")
    gid, email = _golden_with_email(engine)
    page = client.get(f"/workbench/golden/{gid}")
    assert page.status_code == 200
    text = page.text
    assert email in text  # a steward sees values
    for part in (
        "Attributes and where each came from",
        "Member records",
        "History",
        "Consents",
        "Subscribers holding it",
        "Links",
    ):
        assert part in text
    assert re.search(r"most_recent|source_trust|agreed", text)  # a rule per attribute
    past = client.get(f"/workbench/golden/{gid}", params={"as_of": "2999-01-01T00:00:00"})
    assert "As of" in past.text
    found = client.post(
        "/workbench/search", data={"kind": "email", "q": email.upper(), "csrf_token": token}
    )
    assert found.status_code == 200 and f"/workbench/golden/{gid}" in found.text
    assert client.get("/workbench/golden/NOPE").status_code == 404
    bad = client.post(
        "/workbench/search", data={"kind": "source_key", "q": "nocolon", "csrf_token": token}
    )
    assert bad.status_code == 422


def test_merge_and_split_are_overrides_with_a_reason_and_audited(client, engine):
    from mdm_orchestration.hub.tables import GOLDEN, XREF

    token = sign_in(client, "stella")
    with engine.connect() as conn:
        a, b = conn.execute(
            select(GOLDEN.c.golden_id)
            .where(GOLDEN.c.status == "active", GOLDEN.c.party_type == "person")
            .order_by(GOLDEN.c.golden_id)
            .limit(2)
        ).scalars()
        big = (
            conn.execute(
                select(XREF.c.golden_id)
                .group_by(XREF.c.golden_id)
                .having(__import__("sqlalchemy").func.count() >= 3)
            )
            .scalars()
            .first()
        )
        members = conn.execute(
            select(XREF.c.source, XREF.c.source_key).where(XREF.c.golden_id == big)
        ).all()
    no_reason = client.post(
        f"/workbench/golden/{a}/merge", data={"other": b, "reason": " ", "csrf_token": token}
    )
    assert no_reason.status_code == 422
    merged = client.post(
        f"/workbench/golden/{a}/merge",
        data={"other": b, "reason": "same person, new surname", "csrf_token": token},
    )
    assert merged.status_code == 303 and merged.headers["location"].endswith("done=merge")
    source, key = members[0]
    split = client.post(
        f"/workbench/golden/{big}/split",
        data={"record": f"{source}:{key}", "reason": "a different person", "csrf_token": token},
    )
    assert split.status_code == 303
    assert "override" in client.get(split.headers["location"]).text
    with engine.connect() as conn:
        kinds = conn.execute(
            select(OVERRIDES.c.kind, OVERRIDES.c.created_by, OVERRIDES.c.reason)
        ).all()
    assert ("must_link", "stella", "same person, new surname") in kinds
    assert (
        sum(k == ("cannot_link", "stella", "a different person") for k in kinds) == len(members) - 1
    )
    (merge,) = audit_rows(engine, "merge")
    assert merge.reason == "same person, new surname" and merge.details["golden_ids"] == [a, b]
    (split_row,) = audit_rows(engine, "split")
    assert (
        split_row.target == f"golden:{big}"
        and len(split_row.details["cannot_link"]) == len(members) - 1
    )


def test_the_overview_shows_stages_quarantine_backlog_and_subscribers(client):
    sign_in(client, "vera")
    assert client.get("/workbench").headers["location"] == "/workbench/overview"
    page = client.get("/workbench/overview")
    assert page.status_code == 200
    for part in ("Counts per stage", "golden records", "Quarantine reasons", "Subscribers"):
        assert part in page.text
    assert re.search(r'data-testid="backlog">\d+<', page.text)


def test_only_an_admin_reads_the_audit_trail(client):
    sign_in(client, "stella")
    assert client.get("/workbench/audit").status_code == 403
    sign_in(client, "ada")
    page = client.get("/workbench/audit")
    assert page.status_code == 200 and "sign_in" in page.text and "stella" in page.text


def test_a_disabled_user_is_signed_out_at_the_next_request(client, engine):
    create_user(engine, "dora", "steward", PASSWORD, "tests")
    sign_in(client, "dora")
    assert client.get("/workbench/review").status_code == 200
    disable_user(engine, "dora")
    assert client.get("/workbench/review").status_code == 303


def test_sign_out_ends_the_session(client):
    token = sign_in(client, "vera")
    answer = client.post("/workbench/logout", data={"csrf_token": token})
    assert answer.status_code == 303
    assert client.get("/workbench/review").status_code == 303


def test_repeated_failed_sign_ins_are_throttled(workbench_hub, tmp_path):
    app = workbench_app(workbench_hub, tmp_path / "workbench.key")
    with TestClient(app, follow_redirects=False) as c:
        form = c.get("/workbench/login")
        token = csrf_of(form.text)
        for _ in range(5):
            wrong = c.post(
                "/workbench/login",
                data={"username": "ada", "password": "wrong password!", "csrf_token": token},
            )
            assert wrong.status_code == 401
        locked = c.post(
            "/workbench/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token}
        )
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    engine = create_hub_engine(workbench_hub)
    try:
        failed = [r for r in audit_rows(engine, "sign_in_failed") if r.actor == "ada"]
    finally:
        engine.dispose()
    assert len(failed) >= 5
