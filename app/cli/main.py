"""The `alphafactory` command: the composition root that builds settings and wires edges.

Settings are built once here, validated, and passed down; each subcommand module
registers its own arguments and a handler ``run(args, settings) -> int``. A research
command that reads no settings (``factor eval``) says so with ``needs_settings=False`` and
gets ``None``: it starts without importing pydantic, as the subcommand modules import
their heavy parts only inside their handlers.
"""

from __future__ import annotations

import argparse
import sys

from app.cli import (
    dashboard_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    factor_cmd,
    generator_cmd,
    init_cmd,
    ml_cmd,
    ops_cmd,
    release_cmd,
    run_cmd,
    stack_cmd,
    strategy_cmd,
    walkforward_cmd,
)
from app.logs import configure_logging

SUBCOMMANDS = (
    stack_cmd,
    init_cmd,
    db_cmd,
    data_cmd,
    factor_cmd,
    ml_cmd,
    generator_cmd,
    demo_cmd,
    release_cmd,
    run_cmd,
    strategy_cmd,
    walkforward_cmd,
    ops_cmd,
    dashboard_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alphafactory",
        description="Continuous, point-in-time alpha production on Kafka, Celery, Triton "
        "and Postgres. Settings come from ALPHAFACTORY_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = None
    if getattr(args, "needs_settings", True):
        from alphafactory.settings import SettingsError, load_settings

        try:
            settings = load_settings()
        except SettingsError as error:
            print(f"alphafactory: {error}", file=sys.stderr)
            return 2
    configure_logging(
        settings.log_level if settings else "INFO",
        settings.log_format if settings else "text",
        service=_service_of(args),
    )
    return args.handler(args, settings)


def _service_of(args) -> str | None:
    """The service this process runs (``run NAME``, ``worker``...), named on JSON lines."""
    command = getattr(args, "command", None)
    return getattr(args, "component", None) or command


if __name__ == "__main__":
    sys.exit(main())
