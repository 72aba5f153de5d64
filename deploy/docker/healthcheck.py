#!/usr/bin/env python3
"""Container healthchecks of the alphafactory services (installed as alphafactory-healthcheck).

    alphafactory-healthcheck process run generator
        Liveness only: a process running ``alphafactory run generator`` exists and is not
        stopped or a zombie. It cannot tell a hung consume loop from a working one.
    alphafactory-healthcheck celery
        This container's Celery node answers a broadcast ping through the broker, which
        needs the worker's main loop to be alive and connected to Redis.

Exit status 0 means healthy; otherwise one line on stderr says what was wrong.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

PROGRAM = "alphafactory"
# /proc/PID/stat states of a process that no longer runs: zombie, stopped, traced, dead.
DEAD_STATES = {"Z", "T", "t", "X", "x"}


def runs_command(argv: list[str], words: list[str]) -> bool:
    """Whether ``argv`` runs ``alphafactory WORDS...`` (directly or through its interpreter)."""
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == PROGRAM and argv[i + 1 : i + 1 + len(words)] == words:
            return True
    return False


def _state(pid_dir: Path) -> str:
    # The command name in field 2 may hold spaces and parentheses: split after the last ')'.
    return pid_dir.joinpath("stat").read_text().rpartition(")")[2].split()[0]


def check_process(words: list[str], proc: Path = Path("/proc")) -> str | None:
    """None when a live process runs ``alphafactory WORDS``; otherwise the problem."""
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            argv = pid_dir.joinpath("cmdline").read_bytes().decode(errors="replace")
            if runs_command(argv.split("\0"), words) and _state(pid_dir) not in DEAD_STATES:
                return None
        except OSError:  # the process ended while we looked
            continue
    return f"no live process runs {' '.join([PROGRAM, *words])!r}"


def check_celery(timeout_s: float) -> str | None:
    """None when this host's Celery node answers a ping; otherwise the problem."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    from alphafactory.settings import load_settings

    broker = load_settings().redis.url
    try:
        replies = Celery(broker=broker).control.ping(timeout=timeout_s)
    except OperationalError as error:
        return f"cannot reach the Celery broker: {error}"
    host = socket.gethostname()
    nodes = [name for reply in replies for name in reply]
    if any(name.rpartition("@")[2] == host for name in nodes):
        return None
    return f"no Celery node on host {host!r} answered a ping (answers: {sorted(nodes)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alphafactory-healthcheck", description=__doc__)
    checks = parser.add_subparsers(dest="check", required=True)
    process = checks.add_parser("process", help="the service process is alive")
    process.add_argument("words", nargs="+", help="arguments after `alphafactory`")
    celery = checks.add_parser("celery", help="this container's Celery node answers a ping")
    celery.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    args = parser.parse_args(argv)

    problem = check_process(args.words) if args.check == "process" else check_celery(args.timeout)
    if problem:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
