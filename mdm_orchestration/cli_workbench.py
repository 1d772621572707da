"""The workbench's commands: ``mdm user create|disable|enable|list`` manages the local users who
sign in to the steward workbench (``mdm serve``, pages under ``/workbench``).

``mdm user create NAME --role viewer|steward|admin`` reads the password from standard input
(the first line; from a terminal it asks twice without echoing), never from an argument: an
argument would sit in the shell history and in every process listing.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

#: The workbench's roles (``workbench.ROLES``; named here so that building the parser does not
#: import the web application).
ROLES = ("viewer", "steward", "admin")


def _engine(args: argparse.Namespace) -> Any:  # noqa: ANN401
    from mdm_orchestration.hub.store import create_hub_engine

    return create_hub_engine(args.hub)


def _by() -> str:
    from mdm_orchestration.settings import settings

    return settings().steward


def read_password(stream: Any = None) -> str:  # noqa: ANN401
    """The password: asked twice on a terminal, else the first line of standard input."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return stream.readline().rstrip("\r\n")


def cmd_user_create(args: argparse.Namespace) -> int:
    """Create a user; the password comes from standard input."""
    from mdm_orchestration.workbench import USER_CREATED, UserError, audit, create_user

    try:
        password = read_password()
    except ValueError as exc:
        print(f"mdm user create: {exc}", file=sys.stderr)
        return 2
    engine = _engine(args)
    try:
        user = create_user(engine, args.name, args.role, password, _by())
        audit(engine, f"cli:{_by()}", USER_CREATED, args.name, None, role=user.role)
    except UserError as exc:
        print(f"mdm user create: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"created user {user.name} ({user.role})")
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    from mdm_orchestration.workbench import (
        USER_DISABLED,
        USER_ENABLED,
        UserError,
        audit,
        disable_user,
        enable_user,
    )

    engine = _engine(args)
    verb = "enabled" if enabled else "disabled"
    try:
        (enable_user if enabled else disable_user)(engine, args.name)
        audit(engine, f"cli:{_by()}", USER_ENABLED if enabled else USER_DISABLED, args.name)
    except UserError as exc:
        print(f"mdm user {verb[:-1]}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"user {args.name} {verb}")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    """The user can no longer sign in; an open session ends at its next request."""
    return _set_enabled(args, False)


def cmd_user_enable(args: argparse.Namespace) -> int:
    return _set_enabled(args, True)


def cmd_user_list(args: argparse.Namespace) -> int:
    """Every user with role and state (never a password hash)."""
    from mdm_orchestration.workbench import list_users

    engine = _engine(args)
    try:
        users = list_users(engine)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(users, indent=2))
        return 0
    for u in users:
        state = "enabled" if u["enabled"] else "disabled"
        print(f"{u['name']}  {u['role']}  {state}  last sign-in {u['last_login_at'] or 'never'}")
    if not users:
        print("no workbench users (mdm user create NAME --role steward < password-file)")
    return 0


def add_user_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:  # noqa: ANN401
    """Register ``mdm user`` on the CLI's sub-parsers (``command`` adds the shared flags)."""
    p = sub.add_parser(
        "user",
        help="the steward workbench's users (create, disable, enable, list)",
        description="The local users who sign in to the steward workbench (/workbench).",
    )
    users = p.add_subparsers(dest="user_command", required=True)
    p = command(
        users,
        "create",
        cmd_user_create,
        "create a user; the password is read from standard input",
        "hub",
    )
    p.add_argument("name", help="the user name to sign in with")
    p.add_argument("--role", required=True, choices=ROLES, help="what the user may do")
    p = command(users, "disable", cmd_user_disable, "stop a user from signing in", "hub")
    p.add_argument("name", help="the user name")
    p = command(users, "enable", cmd_user_enable, "let a disabled user sign in again", "hub")
    p.add_argument("name", help="the user name")
    command(users, "list", cmd_user_list, "list the users (never their passwords)", "hub", "json")


__all__ = ["add_user_commands"]
