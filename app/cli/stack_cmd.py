"""`alphafactory stack up | down | status [--json]`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("stack", help="start, stop or inspect the local stack")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start Kafka, Postgres, Redis and Triton; migrate")
    up.set_defaults(handler=run_up)
    down = actions.add_parser("down", help="stop every component the stack started")
    down.set_defaults(handler=run_down)
    restart = actions.add_parser(
        "restart", help="restart components, e.g. triton after `model export`"
    )
    restart.add_argument("components", nargs="+", metavar="COMPONENT")
    restart.set_defaults(handler=run_restart)
    status = actions.add_parser("status", help="probe every component's health")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=run_status)


def run_up(args, settings: Settings) -> int:
    from app import stack

    try:
        report = stack.up(settings)
    except stack.StackError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    for label, names in (
        ("started", report.started),
        ("already running", report.already_running),
        ("external", report.external),
    ):
        if names:
            print(f"{label}: {', '.join(names)}")
    applied = report.migrations_applied
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return print_status(stack.status(settings), as_json=False)


def run_down(args, settings: Settings) -> int:
    from app import stack

    stopped = stack.down(settings)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def run_restart(args, settings: Settings) -> int:
    from app import stack

    try:
        restarted = stack.restart(settings, args.components)
    except stack.StackError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    print(f"restarted: {', '.join(restarted) if restarted else 'nothing (external)'}")
    return 0


def run_status(args, settings: Settings) -> int:
    from app import stack

    return print_status(stack.status(settings), as_json=args.json)


def print_status(status: dict, *, as_json: bool) -> int:
    """Prints the status; the exit code is 0 only when every component is up."""
    if as_json:
        print(json.dumps(status, indent=2))
        return 0 if status["up"] else 1
    for name in ("kafka", "postgres", "redis", "triton"):
        entry = status[name]
        where = {
            k: v for k, v in entry.items() if k not in ("up", "embedded", "pid", "log", "error")
        }
        state = "up" if entry["up"] else f"DOWN ({entry.get('error', 'unknown')})"
        endpoint = "  ".join(f"{k}={v}" for k, v in where.items())
        print(f"{name:9s} {state:6s} {endpoint}")
    return 0 if status["up"] else 1
