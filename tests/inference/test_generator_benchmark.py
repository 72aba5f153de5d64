"""The generator benchmark script runs (its figures are recorded, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_generator_benchmark_runs_and_prints_its_figures():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "generator.py"), "--quick"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [1, 16, 64]
    assert all(float(row[-1].replace(",", "")) > 0 for row in rows)
    assert "formulas/s" in result.stdout.splitlines()[-1]
