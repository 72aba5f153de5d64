"""The local stack's supervisor on real processes: a service that dies is restarted with
backoff, one killed with SIGKILL comes back, and SIGTERM to the group stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.local.process import group_members
from deploy.local.supervise import read_status


def supervise(tmp_path: Path, child: str, *, stable_s: float = 30.0) -> subprocess.Popen:
    status = tmp_path / "svc.supervisor.json"
    command = [sys.executable, "-m", "deploy.local.supervise", "--name", "svc"]
    command += ["--status", str(status), "--stable-s", str(stable_s), "--"]
    command += [sys.executable, "-c", child]
    return subprocess.Popen(
        command,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "svc.log", "ab"),
        start_new_session=True,
    )


def wait_for(condition, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s")


def test_a_service_that_keeps_dying_is_restarted_with_growing_pauses(tmp_path):
    runs = tmp_path / "runs"
    child = f"import time; open({str(runs)!r}, 'a').write(f'{{time.time()}}\\n'); exit(3)"
    supervisor = supervise(tmp_path, child)
    try:
        wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 3)
        starts = [float(t) for t in runs.read_text().split()]
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=10)
    pauses = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert pauses[0] >= 0.9 and pauses[1] >= 1.9  # 1 s, then 2 s (it never ran long)
    status = read_status(tmp_path / "svc.supervisor.json")
    assert status["restarts"] >= 2 and status["last_exit"] == "exited with code 3"
    assert "svc exited with code 3" in (tmp_path / "svc.log").read_text()


def test_a_killed_service_comes_back_and_sigterm_stops_both(tmp_path):
    ready = tmp_path / "ready"
    child = (
        "import os, signal, time; signal.signal(signal.SIGTERM, lambda *a: exit(0)); "
        f"open({str(ready)!r}, 'a').write(f'{{os.getpid()}} '); time.sleep(60)"
    )
    supervisor = supervise(tmp_path, child)

    def started() -> list[int]:  # pids of the children that are ready for SIGTERM
        return [int(p) for p in ready.read_text().split()] if ready.exists() else []

    (first,) = wait_for(started)
    os.kill(first, signal.SIGKILL)
    first_again, second = wait_for(lambda: len(started()) == 2 and started())
    assert first_again == first and second != first
    assert read_status(tmp_path / "svc.supervisor.json")["last_exit"] == "killed by SIGKILL"
    os.killpg(supervisor.pid, signal.SIGTERM)  # what `stack down` sends
    assert supervisor.wait(timeout=10) == 0  # the service's own exit code: no restart
    assert group_members(supervisor.pid) == []
