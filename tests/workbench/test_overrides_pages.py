"""Attribute overrides and undoing a split from the golden record 360 page (FastAPI's test
client, on a copy of the workbench hub so that reconsolidating here disturbs no other test):
pin, pending then applied, remove; undo a split; CSRF and the viewer's role refused; every
action audited."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import (
    ATTRIBUTE_OVERRIDES,
    GOLDEN,
    OVERRIDE_REMOVALS,
    OVERRIDES,
    WORKBENCH_AUDIT,
    XREF,
)
from mdm_orchestration.matching import needs_full_rematch
from tests.workbench.conftest import copy_hub, reconsolidate, workbench_app
from tests.workbench.test_pages import sign_in

PINNED = "pinned.in.the.workbench@example.org"


@pytest.fixture(scope="module")
def hub_url(workbench_hub, tmp_path_factory):
    url = copy_hub(workbench_hub, tmp_path_factory.mktemp("wb_overrides") / "hub.db")
    engine = create_hub_engine(url)
    reconsolidate(engine)  # settle what other tests decided on the shared hub
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def engine(hub_url):
    engine = create_hub_engine(hub_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def client(hub_url, tmp_path_factory):
    app = workbench_app(hub_url, tmp_path_factory.mktemp("wb_overrides_key") / "workbench.key")
    with TestClient(app, follow_redirects=False) as c:
        yield c


def person_with_members(engine, at_least: int = 2) -> str:
    with engine.connect() as conn:
        return conn.execute(
            select(GOLDEN.c.golden_id)
            .where(
                GOLDEN.c.status == "active",
                GOLDEN.c.party_type == "person",
                GOLDEN.c.member_count >= at_least,
            )
            .order_by(GOLDEN.c.golden_id)
        ).scalar()


def audit_rows(engine, action: str, gid: str) -> list:
    """This module's audit rows of ``action`` on golden record ``gid`` (the shared hub it
    copies holds other tests' actions too)."""
    with engine.connect() as conn:
        return conn.execute(
            select(WORKBENCH_AUDIT).where(
                WORKBENCH_AUDIT.c.action == action, WORKBENCH_AUDIT.c.target == f"golden:{gid}"
            )
        ).all()


def override_rows(engine, gid: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            select(ATTRIBUTE_OVERRIDES)
            .where(ATTRIBUTE_OVERRIDES.c.golden_id == gid)
            .order_by(ATTRIBUTE_OVERRIDES.c.id)
        ).all()


def pin_form(gid: str, token: str | None, **extra) -> dict:
    form = {
        "group": "email",
        "pin_to": "values",
        "value_email": PINNED,
        "reason": "the customer confirmed it",
        **extra,
    }
    if token is not None:
        form["csrf_token"] = token
    return form


def test_a_steward_pins_an_attribute_sees_it_pending_then_applied_and_removes_it(client, engine):
    gid = person_with_members(engine)
    token = sign_in(client, "stella")
    page = client.get(f"/workbench/golden/{gid}")
    assert "Pin an attribute" in page.text and 'data-testid="pin-email"' in page.text
    answer = client.post(f"/workbench/golden/{gid}/pin", data=pin_form(gid, token))
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=pin")
    page = client.get(answer.headers["location"])
    assert "The attribute was pinned" in page.text
    assert "pending: the next reconsolidation applies it" in page.text
    (row,) = override_rows(engine, gid)
    assert (row.attribute_group, row.pinned, row.created_by) == (
        "email",
        {"email": PINNED},
        "stella",
    )
    (entry,) = audit_rows(engine, "attribute_pin", gid)
    assert entry.target == f"golden:{gid}" and entry.reason == "the customer confirmed it"
    assert entry.details["override_id"] == row.id

    overview = client.get("/workbench/overview").text
    assert re.search(r"Attribute overrides: \d+ active \([1-9]\d* waiting", overview)
    reconsolidate(engine)
    page = client.get(f"/workbench/golden/{gid}").text
    version = re.search(r"version (\d+)</h1>", page).group(1)
    assert f"applied in version {version}" in page
    attribute = re.search(
        r"<tr><td>email</td><td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", page
    )
    assert attribute.group(1) == PINNED and attribute.group(3) == "override"

    answer = client.post(
        f"/workbench/golden/{gid}/overrides/{row.id}/remove",
        data={"reason": "pinned by mistake", "csrf_token": token},
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=unpin")
    page = client.get(f"/workbench/golden/{gid}").text
    assert "removed: the next reconsolidation gives the value back" in page
    assert audit_rows(engine, "attribute_unpin", gid)[0].details == {"override_id": row.id}
    again = client.post(
        f"/workbench/golden/{gid}/overrides/{row.id}/remove",
        data={"reason": "twice", "csrf_token": token},
    )
    assert again.status_code == 422 and "removed already" in again.json()["detail"]
    reconsolidate(engine)
    with engine.connect() as conn:
        email = (
            conn.execute(select(GOLDEN.c.attributes).where(GOLDEN.c.golden_id == gid))
            .scalar_one()
            .get("email")
        )
    assert email != PINNED


def test_a_pin_without_its_csrf_token_or_by_a_viewer_is_refused(client, engine):
    gid = person_with_members(engine)
    before = len(override_rows(engine, gid))
    token = sign_in(client, "stella")
    for data in (pin_form(gid, None), pin_form(gid, "not-the-token")):
        answer = client.post(f"/workbench/golden/{gid}/pin", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.json()["detail"]
    bad = client.post(f"/workbench/golden/{gid}/pin", data=pin_form(gid, token, group="shoe"))
    assert bad.status_code == 422
    no_reason = client.post(f"/workbench/golden/{gid}/pin", data=pin_form(gid, token, reason=" "))
    assert no_reason.status_code == 422
    viewer = sign_in(client, "vera")
    page = client.get(f"/workbench/golden/{gid}")
    assert page.status_code == 200 and "Pin an attribute" not in page.text
    answer = client.post(f"/workbench/golden/{gid}/pin", data=pin_form(gid, viewer))
    assert answer.status_code == 403 and "viewer" in answer.json()["detail"]
    assert len(override_rows(engine, gid)) == before
    client.cookies.clear()
    assert client.post(f"/workbench/golden/{gid}/pin", data=pin_form(gid, token)).status_code == 303


def test_a_split_is_undone_from_the_golden_record_page(client, engine):
    gid = person_with_members(engine, at_least=2)
    with engine.connect() as conn:
        members = conn.execute(
            select(XREF.c.record_id, XREF.c.source, XREF.c.source_key)
            .where(XREF.c.golden_id == gid)
            .order_by(XREF.c.record_id)
        ).all()
    rid, source, key = members[-1]
    token = sign_in(client, "stella")
    # A pin on the record about to be split out: it leaves, so the pin is retired for review.
    pinned = client.post(
        f"/workbench/golden/{gid}/pin",
        data={
            "group": "address",
            "pin_to": f"{source}:{key}",
            "reason": "this record's address is current",
            "csrf_token": token,
        },
    )
    assert pinned.status_code == 303, pinned.text
    split = client.post(
        f"/workbench/golden/{gid}/split",
        data={"record": f"{source}:{key}", "reason": "looked different", "csrf_token": token},
    )
    assert split.status_code == 303
    reconsolidate(engine)
    with engine.connect() as conn:
        assert conn.execute(select(XREF.c.golden_id).where(XREF.c.record_id == rid)).scalar() != gid
    page = client.get(f"/workbench/golden/{gid}").text
    (audit_id,) = re.findall(r'data-split="(\d+)"', page)
    assert "Undo split" in page and f"{source}:{key}" in page
    (oid,) = re.findall(r'data-override="(\d+)" data-state="retired"', page)
    assert "the pinned source record left this golden record" in page
    review = client.get("/workbench/review").text
    assert "Retired overrides to look at" in review and f"/workbench/golden/{gid}" in review
    looked = client.post(
        f"/workbench/golden/{gid}/overrides/{oid}/reviewed",
        data={"reason": "the split was right", "csrf_token": token},
    )
    assert looked.status_code == 303
    assert audit_rows(engine, "override_reviewed", gid)[0].details == {"override_id": int(oid)}
    assert 'data-testid="retired-overrides"' not in client.get("/workbench/review").text

    viewer = sign_in(client, "vera")
    refused = client.post(
        f"/workbench/golden/{gid}/splits/{audit_id}/undo",
        data={"reason": "x", "csrf_token": viewer},
    )
    assert refused.status_code == 403
    token = sign_in(client, "stella")
    no_token = client.post(f"/workbench/golden/{gid}/splits/{audit_id}/undo", data={"reason": "x"})
    assert no_token.status_code == 403
    undone = client.post(
        f"/workbench/golden/{gid}/splits/{audit_id}/undo",
        data={"reason": "it was the same person after all", "csrf_token": token},
    )
    assert undone.status_code == 303 and undone.headers["location"].endswith("done=undo-split")
    with engine.connect() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(OVERRIDES)
            .where(
                (OVERRIDES.c.left_record_id == rid) | (OVERRIDES.c.right_record_id == rid),
                OVERRIDES.c.kind == "cannot_link",
            )
        ).scalar_one()
        removed = conn.execute(
            select(OVERRIDE_REMOVALS.c.removed_by, OVERRIDE_REMOVALS.c.reason)
        ).all()
        assert needs_full_rematch(conn)
    assert left == 0 and removed and all(r == ("stella", "looked different") for r in removed)
    (entry,) = audit_rows(engine, "undo_split", gid)
    assert entry.details["split"] == int(audit_id) and entry.details["record_id"] == rid
    twice = client.post(
        f"/workbench/golden/{gid}/splits/{audit_id}/undo",
        data={"reason": "again", "csrf_token": token},
    )
    assert twice.status_code == 422
    reconsolidate(engine)  # the same model, no cannot-link: the record joins again
    with engine.connect() as conn:
        assert conn.execute(select(XREF.c.golden_id).where(XREF.c.record_id == rid)).scalar() == gid
    assert "undone" in client.get(f"/workbench/golden/{gid}").text
