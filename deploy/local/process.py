"""Background processes with pid files: start detached, find again, stop with no orphans.

Each process runs in a new session (its own process group), so stopping it signals the
whole group: children it spawned (PyTriton's tritonserver and its python-backend stubs)
go with it. The pid file records the pid and a marker from the command line so that a
stale file whose pid the kernel has given to another program is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ProcessError(RuntimeError):
    """A managed process could not be started or stopped."""


@dataclass(frozen=True)
class PidRecord:
    pid: int
    marker: str  # a string that must appear in /proc/<pid>/cmdline


def read_pid_record(pid_file: Path) -> PidRecord | None:
    try:
        data = json.loads(pid_file.read_text())
        return PidRecord(pid=int(data["pid"]), marker=str(data["marker"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def process_matches(record: PidRecord) -> bool:
    """True when ``record.pid`` is alive and is still the program we started."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
        status = Path(f"/proc/{record.pid}/stat").read_text()
    except OSError:
        return False
    # A zombie has exited already; it only waits for its parent to reap it.
    state = status.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and record.marker.encode() in cmdline


def running_pid(pid_file: Path) -> int | None:
    record = read_pid_record(pid_file)
    return record.pid if record and process_matches(record) else None


def spawn(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    marker: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached, output appended to ``log_file``; returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        log.write(f"\n--- start {stamp}: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as error:
            raise ProcessError(f"cannot run {argv[0]!r}: {error}") from error
    pid_file.write_text(json.dumps({"pid": proc.pid, "marker": marker}))
    return proc.pid


def exited_early(pid: int) -> bool:
    """Reap ``pid`` if it is our child and has exited; True when it is gone."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return not process_matches(PidRecord(pid, ""))


def gone(pid_file: Path) -> bool:
    """True when the process recorded in ``pid_file`` has ended (reaped if our child).

    Decided by the pid alone, not the command-line marker: right after a start the kernel
    has been seen to show a new process's /proc entry without its command line for an
    instant, which a marker check would take for an exit."""
    record = read_pid_record(pid_file)
    return record is None or exited_early(record.pid)


def exit_status(pid_file: Path) -> str:
    """How the process in ``pid_file`` ended, when it was our child: for error messages."""
    record = read_pid_record(pid_file)
    if record is None:
        return "no pid file"
    try:
        done, status = os.waitpid(record.pid, os.WNOHANG)
    except ChildProcessError:
        return f"pid {record.pid} is not a child of this process"
    if not done:
        return f"pid {record.pid} is still running"
    if os.WIFSIGNALED(status):
        return f"pid {record.pid} killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"pid {record.pid} exit code {os.WEXITSTATUS(status)}"


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (live ones, zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def stop_group(pid: int, *, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after the timeout."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not group_members(pid):
            return
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while group_members(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if group_members(pid):
        raise ProcessError(f"process group {pid} survived SIGKILL: {group_members(pid)}")


def stop_pid_file(pid_file: Path, *, timeout_s: float = 15.0) -> bool:
    """Stop the process recorded in ``pid_file`` (if still ours); True if one was stopped."""
    record = read_pid_record(pid_file)
    stopped = False
    if record and process_matches(record):
        stop_group(record.pid, timeout_s=timeout_s)
        stopped = True
    elif record and group_members(record.pid):
        # The leader is gone but children it spawned in its group are not.
        stop_group(record.pid, timeout_s=timeout_s)
        stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
