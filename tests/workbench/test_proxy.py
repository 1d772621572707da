"""The trusted-proxy sign-in (single sign-on in front of the workbench): off by default; when a
header is configured, a request from a trusted proxy address carrying it signs in as that
existing, enabled local user with the role of the user table; an unknown or disabled user is
refused; the header from any other address is ignored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import WORKBENCH_AUDIT
from mdm_orchestration.workbench import create_user, create_workbench_app, disable_user
from mdm_orchestration.workbench.proxy import parse_networks, trusted_proxy
from tests.conftest import CONFIG_DIR
from tests.workbench.conftest import PASSWORD
from tests.workbench.test_pages import csrf_of

HEADER = "X-Forwarded-User"


def client_for(app, address: str) -> TestClient:
    return TestClient(app, follow_redirects=False, client=(address, 40000))


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return tmp_path_factory.mktemp("wb_proxy") / "workbench.key"


def test_off_by_default_the_header_signs_no_one_in(workbench_hub, key, monkeypatch):
    monkeypatch.delenv("MDM_WORKBENCH_TRUSTED_PROXY_HEADER", raising=False)
    app = create_workbench_app(workbench_hub, CONFIG_DIR, key_file=key)
    with client_for(app, "127.0.0.1") as c:
        answer = c.get("/workbench/review", headers={HEADER: "stella"})
        assert answer.status_code == 303 and "/workbench/login" in answer.headers["location"]


def test_a_trusted_proxy_signs_in_an_enabled_local_user_with_its_own_role(workbench_hub, key):
    app = create_workbench_app(workbench_hub, CONFIG_DIR, key_file=key, trusted_proxy_header=HEADER)
    with client_for(app, "127.0.0.1") as c:
        page = c.get("/workbench/review", headers={HEADER: "vera"})
        assert page.status_code == 200 and "vera (viewer)" in page.text
        assert "may look, not decide" in page.text  # the user table's role, not the proxy's
        assert "httponly" in page.headers["set-cookie"].lower()
        # The session it started carries a CSRF token; a post without it is refused.
        token = csrf_of(page.text)
        assert c.post("/workbench/logout", headers={HEADER: "vera"}).status_code == 403
        out = c.post("/workbench/logout", data={"csrf_token": token}, headers={HEADER: "vera"})
        assert out.status_code == 303
        # The sign-in page sends a visitor the proxy vouches for straight on.
        login = c.get("/workbench/login?next=/workbench/search", headers={HEADER: "stella"})
        assert login.status_code == 303 and login.headers["location"] == "/workbench/search"
        assert "stella (steward)" in c.get("/workbench/search", headers={HEADER: "stella"}).text
        # A cookie of one user and a header of another: the proxy's word counts.
        assert "vera (viewer)" in c.get("/workbench/search", headers={HEADER: "vera"}).text
        refused = c.get("/workbench/review", headers={HEADER: "nobody"})
        assert refused.status_code == 403 and "not an enabled" in refused.json()["detail"]
    engine = create_hub_engine(workbench_hub)
    try:
        create_user(engine, "sso_dora", "steward", PASSWORD, "tests")
        disable_user(engine, "sso_dora")
        longest = "l" * 64  # the longest user name there can be
        create_user(engine, longest, "steward", PASSWORD, "tests")
        with client_for(app, "127.0.0.1") as c:
            assert c.get("/workbench/review", headers={HEADER: "sso_dora"}).status_code == 403
            assert c.get("/workbench/review", headers={HEADER: longest}).status_code == 200
            # A longer name is refused whole, never cut down to the user its start names.
            c.cookies.clear()
            tail = c.get("/workbench/review", headers={HEADER: longest + "-mallory"})
            assert tail.status_code == 403
        with engine.connect() as conn:
            vias = conn.execute(
                select(WORKBENCH_AUDIT.c.actor, WORKBENCH_AUDIT.c.action).where(
                    WORKBENCH_AUDIT.c.details["via"].as_string() == "proxy"
                )
            ).all()
    finally:
        engine.dispose()
    assert ("vera", "sign_in") in vias and ("nobody", "sign_in_failed") in vias


def test_the_header_from_an_address_not_trusted_is_ignored(workbench_hub, key, monkeypatch):
    monkeypatch.setenv("MDM_WORKBENCH_TRUSTED_PROXY_HEADER", HEADER)
    monkeypatch.setenv("MDM_WORKBENCH_TRUSTED_PROXIES", "10.1.2.3, 192.168.7.0/24")
    app = create_workbench_app(workbench_hub, CONFIG_DIR, key_file=key)  # from the environment
    for address, trusted in (
        ("127.0.0.1", False),  # loopback is the default only: this list replaces it
        ("203.0.113.9", False),
        ("10.1.2.3", True),
        ("192.168.7.44", True),
        ("testclient", False),
    ):
        with client_for(app, address) as c:
            answer = c.get("/workbench/review", headers={HEADER: "ada"})
            assert (answer.status_code == 200) is trusted, address
            if not trusted:
                assert answer.status_code == 303


def test_the_proxy_list_is_parsed_strictly():
    assert [str(n) for n in parse_networks(None)] == ["127.0.0.1/32", "::1/128"]
    proxy = trusted_proxy(HEADER, "10.0.0.0/8,::1")
    assert proxy.trusts("10.9.9.9") and proxy.trusts("::1") and proxy.trusts("::ffff:10.0.0.1")
    assert not proxy.trusts("11.0.0.1") and not proxy.trusts(None) and not proxy.trusts("x")
    assert not trusted_proxy("", "10.0.0.0/8").enabled
    with pytest.raises(ValueError):
        parse_networks("10.0.0.300")
