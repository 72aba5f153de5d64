"""Keeps one service of the local stack running, as compose's ``restart: unless-stopped``.

    python -m deploy.local.supervise --name relay --status run/relay.supervisor.json \\
        -- python -m app.cli.main run relay

The service runs as a child in the supervisor's process group, so ``stack down``'s SIGTERM
to the group reaches both: the service finishes the record in hand, and the supervisor,
told to stop, waits for it and exits with its code. Any other exit (a crash, kill -9, an
error the service could not survive) is followed by a restart after a backoff that grows
while the service keeps dying quickly and resets once it has run ``--stable-s`` seconds.
The status file (JSON: child pid, restarts, last exit) is what ``stack status`` and the
start-up check read.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from alphafactory.retry import Backoff

RESTART_BACKOFF = Backoff(first_s=1.0, max_s=30.0, jitter=False)
FORWARD_AFTER_S = 2.0


class Supervisor:
    def __init__(self, name: str, command: list[str], status: Path, stable_s: float) -> None:
        self.name, self.command, self.status, self.stable_s = name, command, status, stable_s
        self.stopping = threading.Event()
        self.child: subprocess.Popen | None = None
        self.restarts, self.last_exit = 0, None

    def request_stop(self, signum: int, _frame) -> None:
        self.stopping.set()
        # `stack down` signals the whole group, so the service has it already; a signal
        # to the supervisor alone is passed on, after a moment, so the service never gets
        # two at once (a second SIGTERM mid-shutdown would kill it by default action)
        timer = threading.Timer(FORWARD_AFTER_S, self._forward, args=(signum,))
        timer.daemon = True
        timer.start()

    def _forward(self, signum: int) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> int:
        quick_failures = 0
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command)
            self._write_status()
            code = self.child.wait()
            if self.stopping.is_set():
                return code
            self.restarts += 1
            self.last_exit = _describe(code)
            ran = time.monotonic() - started
            quick_failures = 0 if ran >= self.stable_s else quick_failures + 1
            delay = RESTART_BACKOFF.delay(max(0, quick_failures - 1))
            _say(f"{self.name} {self.last_exit} after {ran:.1f} s; restart in {delay:.0f} s")
            self._write_status()
            if self.stopping.wait(delay):
                return code

    def _write_status(self) -> None:
        body = {
            "name": self.name,
            "supervisor_pid": os.getpid(),
            "child_pid": self.child.pid if self.child else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "updated_at": time.time(),
        }
        temp = self.status.with_suffix(".tmp")
        temp.write_text(json.dumps(body))
        os.replace(temp, self.status)


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} supervisor: {message}\n")  # into the service's own log
    sys.stderr.flush()


def read_status(path: Path) -> dict:
    """The supervisor's status (empty when there is none yet)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--status", type=Path, required=True, help="status file (JSON)")
    parser.add_argument("--stable-s", type=float, default=30.0)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the service's argv")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the service's command after --")
    supervisor = Supervisor(args.name, command, args.status, args.stable_s)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, supervisor.request_stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
