"""The Dagster UI over a consolidated demo hub, in Debian's headless Chromium: the asset graph
shows every stage, an asset's page shows its checks and its (count-only) metadata, and the
webserver listens on the loopback interface only. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import launch_run, start_webserver, stop_process_group

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "ui"
ASSETS = (
    "source_extracts",
    "cleansed_records",
    "training_labels",
    "match_model",
    "match_clusters",
    "golden_records",
    "golden_changes",
    "households",
    "subscriber_deliveries",
)


def _outside_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed (scripts/test.sh installs it as root "
            "with apt-get); the UI test never downloads a browser"
        )
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
        "concurrency:\n  pools:\n    default_limit: 1\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "MDM_HOME": str(root / "mdm")}
    env.pop("MDM_HUB_URL", None)
    mdm = Path(sys.executable).parent / "mdm"
    subprocess.run(
        [str(mdm), "demo", "--people", "300", "--home", str(root / "mdm")],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    env = {**env, "MDM_LANDING_DIR": str(root / "mdm" / "landing")}
    proc, port = start_webserver(env, root, "-h", "127.0.0.1")
    try:
        yield {"base": f"http://127.0.0.1:{port}", "port": port, "env": env, "root": root}
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="module")
def page(webserver):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def test_the_asset_graph_shows_every_stage_and_asset(webserver, page):
    page.goto(f"{webserver['base']}/asset-groups")
    page.get_by_text("syndication").first.wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "asset-graph.png"), full_page=True)
    html = page.content()
    for group in ("ingestion", "cleansing", "matching", "mastering", "syndication"):
        assert group in html
    # Open each group in the side tree (its caret sits left of the name): the assets show.
    for group in ("ingestion", "cleansing", "matching", "mastering", "syndication"):
        box = page.get_by_text(group, exact=True).first.bounding_box()
        page.mouse.click(box["x"] - 38, box["y"] + box["height"] / 2)
    page.get_by_text("subscriber_deliveries").first.wait_for(state="attached")
    html = page.content()
    missing = [name for name in ASSETS if name not in html]
    assert not missing, missing
    # One stage's graph, with its assets drawn.
    page.goto(
        f"{webserver['base']}/locations/mdm_orchestration.definitions:defs/asset-groups/mastering"
    )
    page.get_by_text("households").first.wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "mastering-graph.png"), full_page=True)
    assert "golden_changes" in page.content()


def test_an_asset_page_shows_its_checks_and_metadata(webserver, page):
    page.goto(f"{webserver['base']}/assets/golden_records?view=checks")
    page.get_by_text("lineage_complete").first.wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "golden-records-checks.png"), full_page=True)
    html = page.content()
    for check in (
        "every_source_record_has_one_golden_id",
        "no_golden_record_without_members",
        "golden_ids_unique",
        "lineage_complete",
    ):
        assert check in html
    page.goto(f"{webserver['base']}/assets/golden_records")
    page.get_by_text("contacts_linked_to_organisations").first.wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "golden-records.png"), full_page=True)
    text = page.inner_text("body")
    for key in ("persons", "organisations", "created", "unchanged", "this_run"):
        assert key in text, key


def test_the_webserver_listens_on_loopback_only(webserver):
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback to try")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((address, webserver["port"])) != 0


def test_a_read_only_webserver_refuses_to_launch_runs(webserver):
    """RELIABILITY.md row 26: the read-only profile rejects mutations."""
    proc, port = start_webserver(
        webserver["env"], webserver["root"], "-h", "127.0.0.1", "--read-only"
    )
    try:
        answer = launch_run(port, timeout=30)
    finally:
        stop_process_group(proc)
    assert answer["data"]["launchRun"]["__typename"] == "UnauthorizedError", answer
