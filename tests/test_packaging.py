"""Every listed package imports from this repository, and the layers import only what their
allow-list names (no exemptions): the domain core no I/O at all, each edge its own client
libraries and the layers below it, and nothing imports the composition root ``app``."""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]

CORE = "alphafactory"
FIRST_PARTY = {"alphafactory", "app", "messaging", "producers", "consumers", "inference"}
FIRST_PARTY |= {"storage", "deploy"}
# Standard-library modules that reach the network, other processes or the terminal: the
# core may not use them (the edges may, where their allow-list says so).
STDLIB_IO = {"socket", "ssl", "http", "subprocess", "asyncio", "multiprocessing", "signal"}
STDLIB_IO |= {"urllib.request", "smtplib", "ftplib", "sqlite3", "select", "selectors"}
STDLIB_IO |= {"argparse"}
DATA = {"numpy", "pandas", "pyarrow"}
# What each top-level package may import besides the standard library: first-party layers
# and third-party roots. A new client library (confluent_kafka, aiokafka, httpx) fails here
# until someone decides which layer owns it.
ALLOWED: dict[str, set[str]] = {
    # the bundled dataset is built from data arch, linearmodels, statsmodels ship (offline)
    CORE: DATA
    | {"numba", "pydantic", "pydantic_settings", "arch", "linearmodels", "statsmodels"}
    # admission's p-values (alphafactory.admission)
    | {"scipy"}
    # the metrics' declarations (alphafactory.telemetry): in-memory values; the HTTP
    # endpoint that serves them is the composition root's
    | {"prometheus_client"}
    # the ML alphas' models (alphafactory.ml.models): numerical libraries, no I/O, imported
    # inside the fits
    | {"sklearn", "lightgbm", "torch"}
    # the risk-budgeted tilt's optimisation (alphafactory.optimiser): a solver, no I/O
    | {"cvxpy"},
    "storage": {CORE, "psycopg", "psycopg_pool"} | DATA,
    "messaging": {CORE, "kafka"},
    "producers": {CORE, "messaging", "storage", "kafka", "psycopg", "psycopg_pool", "pydantic"}
    | DATA,
    # the Triton client, and the local PyTriton server reading Triton's protobuf config
    "inference": {CORE, "numba", "torch", "onnx", "onnxscript", "onnxruntime"}
    | {"tritonclient", "pytriton", "google"}
    | DATA,
    # Celery and its transport's errors (kombu, redis) are classified by consumers.failures
    "consumers": {CORE, "messaging", "storage", "inference", "kafka", "celery", "kombu", "redis"}
    | {"psycopg", "psycopg_pool"}
    | DATA,
    "deploy": {CORE, "messaging", "storage", "inference", "psycopg", "redis"},
    # the reports' plots and pages, the walk-forward's strategy file and progress bar
    "app": FIRST_PARTY
    | DATA
    | {"psycopg", "matplotlib", "torch", "celery"}
    | {"jinja2", "tomli_w", "tqdm", "psutil"}
    # the metrics endpoints; the dashboard's web stack and plots
    | {"prometheus_client", "fastapi", "starlette", "uvicorn", "plotly", "pythonjsonlogger"},
}
# Standard-library I/O each edge may use beyond the core's share.
STDLIB_ALLOWED: dict[str, set[str]] = {
    CORE: set(),
    "storage": set(),
    "messaging": set(),
    "producers": {"signal"},
    "inference": {"multiprocessing", "signal", "argparse"},
    "consumers": {"signal"},
    "deploy": {"socket", "subprocess", "asyncio", "signal", "urllib.request", "argparse"},
    "app": {"signal", "argparse", "subprocess"},
}


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
        # hidden folders hold environments (.venv, a benchmark's own .venv-qlib), not code
        if init.parts[len(REPO.parts)] not in {"tests", "benchmarks"}
        and not init.parts[len(REPO.parts)].startswith(".")
    }
    assert on_disk <= set(PACKAGES), f"not listed in pyproject: {sorted(on_disk - set(PACKAGES))}"


def test_every_top_level_package_has_an_allow_list():
    tops = {package.split(".")[0] for package in PACKAGES}
    assert tops == set(ALLOWED) == FIRST_PARTY


def imported_modules(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (lazy imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def package_modules() -> list[tuple[str, Path]]:
    """(top-level package, file) for every module of a listed package (not sub-folders
    that are not packages, such as deploy/docker's scripts)."""
    found = []
    for package in PACKAGES:
        folder = REPO / package.replace(".", "/")
        found += [(package.split(".")[0], path) for path in sorted(folder.glob("*.py"))]
    return found


def disallowed(top: str, modules: set[str]) -> list[str]:
    bad = []
    for name in sorted(modules):
        root = name.split(".")[0]
        if root == top or root == "__future__":
            continue
        if root in sys.stdlib_module_names:
            io = {n for n in STDLIB_IO if name == n or name.startswith(f"{n}.") or root == n}
            if io - STDLIB_ALLOWED[top]:
                bad.append(name)
        elif root not in ALLOWED[top]:
            bad.append(name)
    return bad


@pytest.mark.parametrize(
    ("top", "path"), package_modules(), ids=[str(p.relative_to(REPO)) for _, p in package_modules()]
)
def test_layer_imports_only_its_allow_list(top, path):
    bad = disallowed(top, imported_modules(path))
    assert not bad, (
        f"{path.relative_to(REPO)} ({top}) imports {bad}, outside its allow-list "
        "(tests/test_packaging.py ALLOWED): move the code to the layer that owns it"
    )


def test_nothing_imports_the_composition_root():
    importers = [
        str(path.relative_to(REPO))
        for top, path in package_modules()
        if top != "app" and any(m.split(".")[0] == "app" for m in imported_modules(path))
    ]
    assert not importers, f"only the composition root may import itself: {importers}"


def test_the_allow_list_catches_a_new_client_library():
    assert disallowed(CORE, {"confluent_kafka", "socket", "numpy"}) == ["confluent_kafka", "socket"]
    assert disallowed("consumers", {"aiokafka", "kafka.errors"}) == ["aiokafka"]
    assert disallowed("storage", {"httpx", "psycopg.sql"}) == ["httpx"]
