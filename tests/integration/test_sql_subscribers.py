"""SQL subscribers on the three databases a CRM may keep: SQLite, PostgreSQL and MariaDB (the
local server at 127.0.0.1:3306, a database of the test's own, dropped afterwards)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdm_orchestration.config import SqlTarget, Subscriber
from mdm_orchestration.syndication.messages import Message
from mdm_orchestration.syndication.transports import SqlTransport

MARIADB_ADMIN_URL = os.environ.get("MDM_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")


def _unavailable(message: str) -> None:
    """Skip here; fail under CI (``.ci/run`` starts MariaDB, so a skip there is a bug)."""
    if os.environ.get("CI") or os.environ.get("MDM_REQUIRE_SERVICES"):
        pytest.fail(message + " (CI requires MariaDB)")
    pytest.skip(message)


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=2).close()
    except OSError:
        _unavailable("MariaDB is not running on 127.0.0.1:3306")
    name = f"mdm_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        yield f"{MARIADB_ADMIN_URL}{name}?charset=utf8mb4"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return request.getfixturevalue("mariadb_url")


def _message(golden: str, version: int, city: str, event_type: str = "updated") -> Message:
    return Message(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{golden}/{version}/{event_type}")),
        event_type=event_type,
        golden_id=golden,
        version=version,
        seq=version,
        occurred_at=f"2026-12-02T10:00:0{version}+00:00",
        party_type="person",
        lifecycle="customer",
        attributes={"full_name": "Zoë Ångström-O'Brien", "city": city},
    )


def _rows(url: str) -> dict[str, tuple[int, str | None, str | None]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                r.golden_id: (r.version, r.city, r.full_name)
                for r in conn.execute(
                    sa.text("SELECT golden_id, version, city, full_name FROM crm")
                )
            }
    finally:
        engine.dispose()


def test_upserts_keep_the_newest_version_and_a_stale_replay_changes_nothing(
    target_url: str,
) -> None:
    sub = Subscriber(
        transport="sql", sql={"url": target_url, "table": "crm"}, attributes=["full_name", "city"]
    )
    assert isinstance(sub.target(), SqlTarget)
    transport = SqlTransport(sub, sub.target())
    try:
        transport.send([_message("g1", 1, "Leeds"), _message("g2", 1, "York")], "1-2")
        transport.send([_message("g1", 3, "Hull")], "3-3")
        # Out of order and duplicated (row 15): an older version after a newer one, and the
        # same event twice. The table keeps the newest.
        transport.send([_message("g1", 2, "Bath"), _message("g1", 3, "Hull")], "2-3")
        assert _rows(target_url) == {
            "g1": (3, "Hull", "Zoë Ångström-O'Brien"),  # stored byte-exact, quote and all
            "g2": (1, "York", "Zoë Ångström-O'Brien"),
        }
        # A removal of an older version than the one held does not delete the newer one; a
        # removal of the current version does.
        transport.send([_message("g1", 2, "", "removed")], "4-4")
        transport.send([_message("g2", 1, "", "removed")], "5-5")
        assert set(_rows(target_url)) == {"g1"}
    finally:
        transport.close()
