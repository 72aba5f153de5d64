"""A Postgres cluster in the stack's state directory, driven by initdb and pg_ctl."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.local import process
from deploy.local.binaries import (
    POSTGRES_SYSTEM_USER,
    postgres_bin_dir,
    postgres_run_prefix,
    running_as_root,
)


class PostgresServerError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output."""


@dataclass(frozen=True)
class PostgresServer:
    data_dir: Path
    log_file: Path
    host: str
    port: int
    admin_user: str
    admin_password: str

    def _run(self, program: str, *args: str, timeout_s: float = 120) -> str:
        argv = [*postgres_run_prefix(), str(postgres_bin_dir() / program), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresServerError(f"{program} failed (exit {result.returncode}): {output}")
        return result.stdout

    def _own(self, path: Path) -> None:
        if running_as_root():
            entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def initialise(self) -> None:
        """initdb once; a non-empty directory that is not a cluster is reported as corrupt."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise PostgresServerError(
                f"data directory {self.data_dir} is not empty but holds no Postgres cluster "
                "(PG_VERSION missing): it is corrupt or foreign; move it away or delete it"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._own(self.data_dir)
        # The password file must be readable by the postgres user and gone afterwards.
        with tempfile.NamedTemporaryFile("w", prefix="af-pw-", delete=False) as pw_file:
            pw_file.write(self.admin_password + "\n")
        try:
            self._own(Path(pw_file.name))
            self._run(
                "initdb",
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.admin_user,
                "--pwfile",
                pw_file.name,
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
            )
        finally:
            os.unlink(pw_file.name)

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._own(self.log_file)
        # TCP on loopback only; no Unix socket, so no socket-path length limits.
        options = f"-h {self.host} -p {self.port} -k ''"
        try:
            self._run(
                "pg_ctl",
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
        except PostgresServerError as error:
            tail = _tail(self.log_file)
            raise PostgresServerError(f"{error}; server log ends: {tail}") from error

    def running_pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        record = process.PidRecord(pid=pid, marker="postgres")
        return pid if process.process_matches(record) else None

    def stop(self) -> bool:
        pid = self.running_pid()
        if pid is None:
            return False
        try:
            self._run(
                "pg_ctl", "--pgdata", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"
            )
        except PostgresServerError:
            process.stop_group(pid, timeout_s=5)
        return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
