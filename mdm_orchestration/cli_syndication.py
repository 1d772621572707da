"""The syndication commands: ``mdm syndicate`` delivers pending changes to the subscribers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from mdm_orchestration.cli_output import print_hub
from mdm_orchestration.inprocess import Target


def cmd_syndicate(args: argparse.Namespace) -> int:
    """Deliver pending changes to the subscribers (or one) through syndicate_job."""
    from mdm_orchestration.inprocess import dagster_instance, run_syndication

    target = Target(hub=args.hub, config=args.config)
    engine = target.engine()
    try:
        ok = run_syndication(
            dagster_instance(), target, engine, quiet=args.json, only=args.subscriber
        )
    except ValueError as exc:
        print(f"mdm syndicate: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print_hub(args, target)
    return 0 if ok else 1


def add_syndicate_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:  # noqa: ANN401
    """Register ``mdm syndicate`` on the CLI's sub-parsers (``command`` adds the shared flags)."""
    p = command(
        sub,
        "syndicate",
        cmd_syndicate,
        "deliver pending golden-record changes (syndicate_job)",
        "hub",
        "config",
        "json",
    )
    p.add_argument("--subscriber", help="only this subscriber")


__all__ = ["add_syndicate_commands", "cmd_syndicate"]
