"""RELIABILITY.md row 26 without a browser: ``dagster-webserver`` started from the shipped
``workspace.yaml`` with no ``-h`` listens on the loopback interface only, and its read-only
profile refuses a ``launchRun`` mutation (the browser tests of test_ui.py check the same with
``-h 127.0.0.1`` and skip where Chromium is missing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import launch_run, start_webserver, stop_process_group

pytestmark = pytest.mark.slow

LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def _listening(port: int) -> set[str]:
    """The local addresses (hex, as the kernel lists them) of the sockets listening on
    ``port``, over IPv4 and IPv6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module")
def read_only_webserver(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("webserver")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MDM_HOME": str(root / "mdm")}
    proc, port = start_webserver(env, root, "--read-only")  # no -h: the default bind is tested
    try:
        yield port
    finally:
        stop_process_group(proc)


def test_the_default_bind_is_loopback_only(read_only_webserver):
    addresses = _listening(read_only_webserver)
    if not addresses:
        pytest.skip("no /proc/net/tcp to read the listening sockets from")
    assert addresses == {LOOPBACK_HEX}, addresses


def test_the_read_only_profile_refuses_to_launch_a_run(read_only_webserver):
    answer = launch_run(read_only_webserver, timeout=60)
    assert answer["data"]["launchRun"]["__typename"] == "UnauthorizedError", answer
