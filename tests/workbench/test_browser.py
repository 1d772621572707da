"""The workbench in Debian's Chromium (through Playwright; never a downloaded browser) against
a real uvicorn server on a free loopback port: sign in, open the review queue, press ``m`` on
an item, see the label recorded; pin an attribute on a golden record, see it pending, then
applied after the reconsolidation, and in the change event a subscriber receives. Screenshots
of each page go to test-artifacts/workbench/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import GOLDEN, LABELS, REVIEW, WORKBENCH_AUDIT
from tests.conftest import CONFIG_DIR, REPO
from tests.helpers import free_port
from tests.workbench.conftest import PASSWORD

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "workbench"
SERVER = """
import sys, uvicorn
from pathlib import Path
from mdm_orchestration.workbench import create_workbench_app
hub, config, key, port = sys.argv[1:]
uvicorn.run(create_workbench_app(hub, Path(config), key_file=Path(key)), host="127.0.0.1",
            port=int(port), access_log=False, log_level="warning")
"""


@pytest.fixture(scope="module")
def server(workbench_hub, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed; the browser test never downloads one")
    port = free_port()
    key = tmp_path_factory.mktemp("wb_browser") / "workbench.key"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, workbench_hub, str(CONFIG_DIR), str(key), str(port)],
        start_new_session=True,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/workbench/login", timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("the workbench server did not start") from None
            time.sleep(0.5)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"]
        )
        context = browser.new_context(viewport={"width": 1360, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.console_errors = errors  # type: ignore[attr-defined]
        yield pg
        browser.close()


def test_sign_in_review_and_decide_with_the_keyboard(server, page, workbench_hub):
    page.goto(f"{server}/workbench/review")
    assert "/workbench/login" in page.url  # signed out: sent to sign-in
    page.screenshot(path=str(ARTIFACTS / "login.png"))
    page.fill("#username", "stella")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/workbench/review")
    item = page.locator("[data-testid=item]")
    item_id = int(item.get_attribute("data-item"))
    assert page.locator("table[aria-label=explanation]").count() == 1
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

    page.keyboard.press("m")
    flash = page.locator("[data-testid=flash]")
    flash.wait_for()
    assert f"Item {item_id}: recorded as match" in flash.inner_text()
    assert "reconsolidation" in flash.inner_text()
    page.screenshot(path=str(ARTIFACTS / "review-decided.png"), full_page=True)
    # The next item is shown (or the queue is empty), and the decided one is gone.
    assert page.locator(f"[data-item='{item_id}']").count() == 0
    assert not page.console_errors, page.console_errors  # CSP blocked nothing of ours

    engine = create_hub_engine(workbench_hub)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(REVIEW).where(REVIEW.c.id == item_id)).first()
            label = conn.execute(
                select(LABELS.c.label, LABELS.c.labelled_by).where(
                    LABELS.c.left_record_id == row.left_record_id,
                    LABELS.c.right_record_id == row.right_record_id,
                )
            ).first()
            audited = (
                conn.execute(
                    select(WORKBENCH_AUDIT.c.actor).where(
                        WORKBENCH_AUDIT.c.target == f"review:{item_id}"
                    )
                )
                .scalars()
                .all()
            )
            gid = conn.execute(
                select(GOLDEN.c.golden_id).where(GOLDEN.c.status == "active").limit(1)
            ).scalar_one()
    finally:
        engine.dispose()
    assert row.status == "done" and tuple(label) == ("match", "stella")
    assert audited == ["stella"]

    page.goto(f"{server}/workbench/golden/{gid}")
    page.locator("[data-testid=golden-id]").wait_for()
    page.screenshot(path=str(ARTIFACTS / "golden.png"), full_page=True)
    page.goto(f"{server}/workbench/search")
    page.screenshot(path=str(ARTIFACTS / "search.png"))


PINNED = "pinned.in.the.browser@example.org"


def test_pin_an_attribute_and_see_it_applied_and_syndicated(server, page, workbench_hub, tmp_path):
    from mdm_orchestration.survivorship import consolidate
    from mdm_orchestration.syndication import syndicate

    # Signed in by the test above (same page, same session).
    engine = create_hub_engine(workbench_hub)
    try:
        with engine.connect() as conn:
            gid = conn.execute(
                select(GOLDEN.c.golden_id)
                .where(GOLDEN.c.status == "active", GOLDEN.c.party_type == "person")
                .order_by(GOLDEN.c.golden_id.desc())
                .limit(1)
            ).scalar_one()
        page.goto(f"{server}/workbench/golden/{gid}")
        if "/workbench/login" in page.url:  # run on its own: sign in first
            page.fill("#username", "stella")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{server}/workbench/golden/{gid}")
        page.click("details[data-group=email] summary")
        page.fill("#pin-email-email", PINNED)
        page.fill("#pin-reason-email", "the customer confirmed it on the phone")
        page.screenshot(path=str(ARTIFACTS / "golden-pin-form.png"), full_page=True)
        page.click("[data-testid=pin-email] button[type=submit]")
        page.locator("[data-testid=flash]").wait_for()
        assert "pinned" in page.locator("[data-testid=flash]").inner_text()
        row = page.locator("[data-testid=overrides] tr[data-override]").first
        assert row.get_attribute("data-state") == "pending"
        assert PINNED in row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "golden-pinned.png"), full_page=True)

        # A subscriber holds the hub as it was (its first delivery is a snapshot) ...
        config = load_hub_config(CONFIG_DIR)
        outbound = tmp_path / "outbound" / "warehouse"
        syndicate(engine, config, "warehouse", home=tmp_path)
        before = set(outbound.glob("*.jsonl"))
        # ... the next reconsolidation (its consolidation step) applies the pin ...
        consolidate(engine, config, "browser-test")
        page.reload()
        row = page.locator("[data-testid=overrides] tr[data-override]").first
        assert row.get_attribute("data-state") == "applied"
        attributes = page.locator("table[aria-label=attributes]").inner_text()
        assert PINNED in attributes and "override" in attributes
        page.screenshot(path=str(ARTIFACTS / "golden-pin-applied.png"), full_page=True)
        assert not page.console_errors, page.console_errors

        # ... and a subscriber hears of it in the change event.
        syndicate(engine, config, "warehouse", home=tmp_path)
        messages = [
            json.loads(line)
            for f in sorted(set(outbound.glob("*.jsonl")) - before)
            for line in f.read_text().splitlines()
        ]
        with engine.connect() as conn:
            attributes = conn.execute(
                select(GOLDEN.c.attributes).where(GOLDEN.c.golden_id == gid)
            ).scalar_one()
    finally:
        engine.dispose()
    assert attributes["email"] == PINNED
    (event,) = [m for m in messages if m["golden_id"] == gid and m["event_type"] == "updated"]
    assert event["attributes"]["email"] == PINNED and "email" in event["changed"]
