"""The generator benchmark script runs (its figures are recorded, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_generator_benchmark_runs_and_prints_its_figures():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "generator.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [1, 16, 64]
    assert all(float(row[-1].replace(",", "")) > 0 for row in rows)
    assert "formulas/s" in result.stdout.splitlines()[-1]


def test_the_gpu_benchmark_refuses_a_machine_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: test_the_gpu_benchmark_runs covers this machine")
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "generator_gpu.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode != 0
    assert "no CUDA device" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_benchmark_runs():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "generator_gpu.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "formulas/s" in result.stdout
