"""The service commands: ``mdm serve`` runs the HTTP API; ``mdm api-key create|revoke|list``
manages the keys it accepts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the hub over HTTP (loopback by default) until interrupted."""
    from pydantic import ValidationError

    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.service import ServiceSettings, serve

    try:
        settings = ServiceSettings(
            hub_url=args.hub,
            config_dir=Path(args.config) if args.config else None,
            host=args.host,
            port=args.port,
            max_body_bytes=args.max_body_bytes,
            rate_per_second=args.rate,
            rate_burst=args.burst,
            workers=args.workers,
        )
    except ValidationError as exc:
        print(f"mdm serve: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    load_hub_config(settings.config_dir)  # a configuration error exits 2 before serving
    serve(settings)
    return 0


def _engine_and_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from mdm_orchestration.config import load_hub_config
    from mdm_orchestration.hub.store import create_hub_engine

    return create_hub_engine(args.hub), load_hub_config(getattr(args, "config", None))


def cmd_api_key_create(args: argparse.Namespace) -> int:
    """Create a key; it is printed once, alone on the last line."""
    from mdm_orchestration.service import ApiKeyError, create_api_key
    from mdm_orchestration.settings import settings

    engine, config = _engine_and_config(args)
    try:
        key_id, token = create_api_key(engine, args.name, args.scope, config, settings().steward)
    except ApiKeyError as exc:
        print(f"mdm api-key create: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(
        f"created API key {key_id} ({args.name}) with scopes {', '.join(sorted(set(args.scope)))}"
    )
    print("store it now: the hub keeps only its hash and cannot show it again")
    print(token)
    return 0


def cmd_api_key_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by its id (or every active key of a name)."""
    from mdm_orchestration.service import revoke_api_key

    engine, _config = _engine_and_config(args)
    try:
        ids = revoke_api_key(engine, args.key)
    finally:
        engine.dispose()
    if not ids:
        print(f"mdm api-key revoke: no active key {args.key!r}", file=sys.stderr)
        return 1
    print(f"revoked {', '.join(ids)}")
    return 0


def cmd_api_key_list(args: argparse.Namespace) -> int:
    """Every key with its scopes and state (never the key or its hash)."""
    from mdm_orchestration.service import list_api_keys

    engine, _config = _engine_and_config(args)
    try:
        keys = list_api_keys(engine)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    for k in keys:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        print(f"{k['id']}  {k['name']}  {','.join(k['scopes'])}  {state}")
    if not keys:
        print("no API keys (mdm api-key create --name NAME --scope read)")
    return 0


def add_service_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:  # noqa: ANN401
    """Register ``mdm serve`` and ``mdm api-key`` on the CLI's sub-parsers (``command`` adds
    the shared flags)."""
    from mdm_orchestration.service.state import DEFAULT_HOST, DEFAULT_PORT

    p = command(
        sub, "serve", cmd_serve, "serve the hub over HTTP (API keys needed)", "hub", "config"
    )
    p.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 1024,
        help="largest request body accepted (default: %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="requests per second per key (default: %(default)s)",
    )
    p.add_argument(
        "--burst", type=int, default=400, help="requests a key may burst (default: %(default)s)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port, e.g. one per core; the rate and burst are shared "
        "out among them (default: %(default)s)",
    )

    p = sub.add_parser(
        "api-key",
        help="the API keys mdm serve accepts (create, revoke, list)",
        description="the API keys mdm serve accepts (create, revoke, list)",
    )
    keys = p.add_subparsers(dest="api_key_command", required=True)
    p = command(
        keys,
        "create",
        cmd_api_key_create,
        "create a key; it is printed once, alone on the last line",
        "hub",
        "config",
    )
    p.add_argument("--name", required=True, help="who or what uses the key")
    p.add_argument(
        "--scope",
        action="append",
        required=True,
        help="read, match or write:<source> (repeat for several)",
    )
    p = command(keys, "revoke", cmd_api_key_revoke, "revoke a key (its id, or a name)", "hub")
    p.add_argument("key", help="the key's id (from mdm api-key list) or its name")
    command(
        keys, "list", cmd_api_key_list, "list the keys (never the keys themselves)", "hub", "json"
    )


__all__ = ["add_service_commands"]
