"""Files holding customer data are 0600 and the folders the hub creates for them 0700, whatever
the umask (issue 17, defect 10): the SQLite hub and its -wal/-shm, CLI exports, file-subscriber
batches and a SQLite SQL target."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdm_orchestration.config import FileTarget, SqlTarget, Subscriber
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.syndication.messages import Message
from mdm_orchestration.syndication.transports import FileTransport, SqlTransport


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual 022 umask, which leaves new files 0644 and folders 0755 by default."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _message() -> Message:
    return Message(
        event_id="00000000-0000-0000-0000-000000000001",
        event_type="created",
        golden_id="G0000000000001",
        version=1,
        seq=1,
        occurred_at="2026-12-01T00:00:00+00:00",
        party_type="person",
        lifecycle="customer",
        attributes={"given_name": "Ada", "email": "ada@example.invalid"},
        related=[],
    )


def test_a_new_sqlite_hub_and_its_wal_and_shm_are_private(tmp_path):
    home = tmp_path / "home" / "mdm"
    engine = create_hub_engine(f"sqlite:///{home / 'hub.db'}")
    try:
        with engine.connect() as conn:  # WAL and SHM exist while a connection is open
            conn.execute(sa.text("SELECT count(*) FROM golden_records")).scalar()
            files = [home / "hub.db", home / "hub.db-wal", home / "hub.db-shm"]
            for f in files:
                assert f.exists(), f
                assert mode(f) == 0o600, (f.name, oct(mode(f)))
    finally:
        engine.dispose()
    assert mode(home) == 0o700
    assert mode(home.parent) == 0o700


def test_an_existing_world_readable_hub_is_made_private(tmp_path):
    path = tmp_path / "hub.db"
    create_hub_engine(f"sqlite:///{path}").dispose()
    path.chmod(0o644)
    engine = create_hub_engine(f"sqlite:///{path}", auto_migrate=False)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            assert mode(path) == 0o600
            for suffix in ("-wal", "-shm"):
                extra = path.with_name(path.name + suffix)
                if extra.exists():
                    assert mode(extra) == 0o600
    finally:
        engine.dispose()


def test_file_subscriber_batches_and_their_folder_are_private(tmp_path):
    sub = Subscriber(transport="file", file={"folder": "outbound/warehouse"})
    transport = FileTransport("warehouse", sub, FileTarget(folder="outbound/warehouse"), tmp_path)
    transport.send([_message()], "000000000001-000000000001")
    folder = tmp_path / "outbound" / "warehouse"
    (batch,) = folder.iterdir()
    assert mode(batch) == 0o600
    assert mode(folder) == 0o700 and mode(folder.parent) == 0o700


def test_a_sqlite_sql_target_is_private(tmp_path):
    target = SqlTarget(url=f"sqlite:///{tmp_path / 'crm' / 'target.db'}", table="customers")
    sub = Subscriber(transport="sql", sql=target.model_dump())
    transport = SqlTransport(sub, target)
    try:
        transport.send([_message()], "batch")
    finally:
        transport.close()
    assert mode(tmp_path / "crm" / "target.db") == 0o600
    assert mode(tmp_path / "crm") == 0o700


def test_a_cli_export_and_its_new_folder_are_private(tmp_path):
    from mdm_orchestration.cli import main

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    create_hub_engine(url).dispose()
    out = tmp_path / "exports" / "golden.csv"
    assert main(["export", "golden", "--out", str(out), "--hub", url]) == 0
    assert mode(out) == 0o600
    assert mode(out.parent) == 0o700
