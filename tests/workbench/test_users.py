"""Workbench users (argon2 hashes, roles, enabled flag), `mdm user`, and the audit trail."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from mdm_orchestration.cli_workbench import ROLES as CLI_ROLES
from mdm_orchestration.cli_workbench import read_password
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.hub.tables import WORKBENCH_AUDIT, WORKBENCH_USERS
from mdm_orchestration.workbench import (
    ROLES,
    UserError,
    audit,
    audit_trail,
    authenticate,
    create_user,
    disable_user,
    enable_user,
    list_users,
)

PASSWORD = "correct horse battery staple"
MDM = Path(sys.executable).with_name("mdm")


@pytest.fixture
def engine(tmp_path):
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    yield engine
    engine.dispose()


def test_a_user_has_an_argon2_hash_and_a_role(engine):
    user = create_user(engine, "ann", "steward", PASSWORD, "test")
    assert (user.name, user.role, user.enabled) == ("ann", "steward", True)
    with engine.connect() as conn:
        stored = conn.execute(select(WORKBENCH_USERS.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert authenticate(engine, "ann", PASSWORD) == user
    assert authenticate(engine, "ann", PASSWORD + "x") is None
    assert authenticate(engine, "nobody", PASSWORD) is None
    assert [u["name"] for u in list_users(engine)] == ["ann"]
    assert "password_hash" not in list_users(engine)[0]
    assert list_users(engine)[0]["last_login_at"] is not None


def test_a_disabled_user_cannot_sign_in_until_enabled(engine):
    create_user(engine, "bob", "viewer", PASSWORD, "test")
    disable_user(engine, "bob")
    assert authenticate(engine, "bob", PASSWORD) is None
    enable_user(engine, "bob")
    assert authenticate(engine, "bob", PASSWORD) is not None


@pytest.mark.parametrize(
    ("name", "role", "password"),
    [
        ("ann", "root", PASSWORD),  # no such role
        ("ann", "viewer", "short"),  # too short
        ("", "viewer", PASSWORD),
        ("a b", "viewer", PASSWORD),
    ],
)
def test_bad_users_are_refused(engine, name, role, password):
    with pytest.raises(UserError):
        create_user(engine, name, role, password, "test")


def test_a_name_is_taken_once(engine):
    create_user(engine, "ann", "viewer", PASSWORD, "test")
    with pytest.raises(UserError, match="exists"):
        create_user(engine, "ann", "admin", PASSWORD, "test")


def test_roles_rank(engine):
    viewer = create_user(engine, "v", "viewer", PASSWORD, "t")
    admin = create_user(engine, "a", "admin", PASSWORD, "t")
    assert viewer.may("viewer") and not viewer.may("steward") and not viewer.may_see_values
    assert admin.may("steward") and admin.may("admin") and admin.may_see_values
    assert CLI_ROLES == ROLES


def test_the_audit_trail_keeps_who_when_what_why(engine):
    audit(engine, "ann", "merge", "golden:G1", "same person", golden_ids=["G1", "G2"])
    with engine.connect() as conn:
        (entry,) = audit_trail(conn)
        assert conn.execute(select(WORKBENCH_AUDIT.c.actor)).scalar_one() == "ann"
    assert (entry.actor, entry.action, entry.target, entry.reason) == (
        "ann",
        "merge",
        "golden:G1",
        "same person",
    )
    assert entry.details == {"golden_ids": ["G1", "G2"]} and entry.at.tzinfo is not None


def test_the_password_is_the_first_line_of_standard_input():
    assert read_password(io.StringIO(PASSWORD + "\nignored\n")) == PASSWORD


def test_mdm_user_create_disable_list(tmp_path, monkeypatch, capsys):
    from mdm_orchestration.cli import main

    hub = f"sqlite:///{tmp_path / 'hub.db'}"

    def mdm(*args: str, stdin: str = "") -> int:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return main(["user", *args, "--hub", hub])

    assert mdm("create", "ann", "--role", "steward", stdin=PASSWORD + "\n") == 0
    assert mdm("create", "ann", "--role", "viewer", stdin=PASSWORD + "\n") == 2
    assert mdm("create", "bob", "--role", "viewer", stdin="short\n") == 2
    assert mdm("disable", "ann") == 0
    assert mdm("disable", "nobody") == 1
    capsys.readouterr()
    assert mdm("list") == 0
    out = capsys.readouterr()
    assert "ann  steward  disabled" in out.out and PASSWORD not in out.out + out.err
    engine = create_hub_engine(hub)
    try:
        assert authenticate(engine, "ann", PASSWORD) is None
        with engine.connect() as conn:
            actions = [e.action for e in audit_trail(conn)]
    finally:
        engine.dispose()
    assert actions == ["user_disabled", "user_created"]


def test_mdm_user_create_reads_standard_input_in_a_real_process(tmp_path):
    """The contract scripts rely on: the password piped in, nothing asked."""
    hub = f"sqlite:///{tmp_path / 'hub.db'}"
    done = subprocess.run(
        [str(MDM), "user", "create", "ann", "--role", "admin", "--hub", hub],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "created user ann (admin)" in done.stdout
    engine = create_hub_engine(hub)
    try:
        assert authenticate(engine, "ann", PASSWORD) is not None
    finally:
        engine.dispose()
