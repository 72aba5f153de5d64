"""Every listed package imports from this repository, and the domain core stays pure."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]

# The domain core may not reach the I/O edges: no brokers, databases, queues or servers.
FORBIDDEN_IN_CORE = {
    "kafka",
    "psycopg",
    "psycopg_pool",
    "celery",
    "kombu",
    "redis",
    "tritonclient",
    "pytriton",
    "requests",
    "urllib3",
    "socket",
    "subprocess",
    "producers",
    "consumers",
    "inference",
    "storage",
    "deploy",
}
# The CLI is the composition root: it wires the edges together, so it is exempt.
CORE_EXEMPT = {REPO / "alphafactory" / "cli"}


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_from_this_repository(package):
    module = importlib.import_module(package)
    assert Path(module.__file__).resolve().is_relative_to(REPO), (
        f"{package} resolved to {module.__file__}, outside {REPO}: a PyPI package of the "
        "same name shadows ours"
    )


def test_every_python_folder_is_a_listed_package():
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in REPO.glob("*/**/__init__.py")
        if init.parts[len(REPO.parts)] not in {"tests", "benchmarks", ".venv"}
    }
    assert on_disk <= set(PACKAGES), f"not listed in pyproject: {sorted(on_disk - set(PACKAGES))}"


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def core_modules() -> list[Path]:
    return [
        path
        for path in sorted((REPO / "alphafactory").rglob("*.py"))
        if not any(path.is_relative_to(exempt) for exempt in CORE_EXEMPT)
    ]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_domain_core_imports_no_io(path):
    bad = _imported_roots(path) & FORBIDDEN_IN_CORE
    assert not bad, f"{path.relative_to(REPO)} imports I/O modules {sorted(bad)}"
