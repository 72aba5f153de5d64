"""Whole-process benchmark (issue 11 (d)): ``alphafactory factor eval`` timed as a user times
it, against a per-asset pandas script and Microsoft Qlib's expression engine.

The panel is generated (1,000 assets x 1,260 days by default, fields open, high, low,
close, volume, returns) and written as Parquet, with ``six.txt`` (six Alpha101-style
formulas with ranks, correlations and windows) and the same data in Qlib's layout. Each
command runs once to warm the page cache and numba's kernel cache, then ``--repeats``
times, the three interleaved so that other load on the machine hits them alike, each with
this environment less PYTHONDONTWRITEBYTECODE (see ``user_environment``). Printed:
the median wall time of each process, the ratios, the CPU and its load, and each tool's
mean IC per formula (they must agree: the references check what we compute).

    .venv/bin/python benchmarks/factor_eval_cli.py [--repeats 5] [--no-qlib]

The references: ``reference_pandas_eval.py`` (run with this interpreter) and
``reference_qlib_eval.py`` (run in ``.venv-qlib``, created on first use with pyqlib 0.9.7;
pyqlib is not a project dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("open", "high", "low", "close", "volume", "returns")
SIX = (
    "-ts_corr(rank(open), rank(volume), 10)",
    "-ts_rank(rank(low), 10)",
    "-ts_cov(rank(close), rank(volume), 5)",
    "rank(open / close - 1)",
    "-rank(delta(returns, 3)) * ts_corr(open, volume, 10)",
    "-ts_corr(rank(delta(log(volume), 2)), rank((close - open) / open), 5)",
)
QLIB_REQUIREMENTS = ("pyqlib==0.9.7", "numpy==1.26.4", "pandas==2.3.3", "pyarrow==22.0.0")


def write_inputs(workdir: Path, assets: int, dates: int) -> dict[str, Path]:
    """The panel file, six.txt and the Qlib data directory, generated once per size."""
    from alphafactory.data.panel_files import save_panel
    from alphafactory.data.synthetic import synthetic_market
    from alphafactory.panel import Panel

    workdir.mkdir(parents=True, exist_ok=True)
    paths = {
        "panel": workdir / f"panel-{assets}x{dates}.parquet",
        "six": workdir / "six.txt",
        "qlib": workdir / f"qlib-{assets}x{dates}",
    }
    paths["six"].write_text("\n".join(SIX) + "\n")
    if not paths["panel"].exists() or not paths["qlib"].exists():
        market = synthetic_market(n_assets=assets, n_dates=dates, seed=11)
        fields = {name: market.panel.fields[name] for name in FIELDS}
        panel = Panel(dates=market.panel.dates, assets=market.panel.assets, fields=fields)
        save_panel(panel, paths["panel"])
        write_qlib_data(panel, paths["qlib"])
    return paths


def write_qlib_data(panel, root: Path) -> None:
    """Qlib's layout: calendars/day.txt, instruments/all.txt and one little-endian float32
    file per (instrument, field) whose first value is its start index in the calendar."""
    days = [str(d) for d in np.datetime_as_string(panel.dates, unit="D")]
    (root / "calendars").mkdir(parents=True, exist_ok=True)
    (root / "instruments").mkdir(exist_ok=True)
    (root / "calendars" / "day.txt").write_text("\n".join(days) + "\n")
    rows = [f"{asset}\t{days[0]}\t{days[-1]}" for asset in panel.assets]
    (root / "instruments" / "all.txt").write_text("\n".join(rows) + "\n")
    for i, asset in enumerate(panel.assets):
        folder = root / "features" / str(asset).lower()
        folder.mkdir(parents=True, exist_ok=True)
        for name in FIELDS:
            values = np.concatenate([[0.0], panel.fields[name][:, i]]).astype("<f4")
            values.tofile(folder / f"{name}.day.bin")


def qlib_python(path: Path) -> Path:
    """The interpreter of the Qlib environment, created (pip) if it is not there yet."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} with {' '.join(QLIB_REQUIREMENTS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *QLIB_REQUIREMENTS], check=True)
    return python


def commands(paths: dict[str, Path], qlib: Path | None) -> dict[str, list[str]]:
    bench = ROOT / "benchmarks"
    out = {
        "alphafactory": [
            str(Path(sys.executable).parent / "alphafactory"),
            *("factor", "eval", "--formulas", str(paths["six"])),
            *("--data", str(paths["panel"]), "--json"),
        ],
        "pandas": [sys.executable, str(bench / "reference_pandas_eval.py"), str(paths["panel"])],
    }
    if qlib is not None:
        out["qlib"] = [str(qlib), str(bench / "reference_qlib_eval.py"), str(paths["qlib"])]
    return out


def user_environment() -> dict[str, str]:
    """This environment as a user's shell has it: Python writes bytecode caches (this
    sandbox sets PYTHONDONTWRITEBYTECODE, which makes every run compile the project's
    modules again). The same for all three commands."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=user_environment()
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[1]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def time_all(runs: dict[str, list[str]], repeats: int) -> tuple[dict, dict]:
    """Median seconds per command over ``repeats`` interleaved rounds (after a warm-up
    round, whose output is kept to compare the ICs)."""
    outputs = {name: run_once(command)[1] for name, command in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, command in runs.items():
            times[name].append(run_once(command)[0])
    return {name: statistics.median(t) for name, t in times.items()}, outputs | {"_all": times}


def ic_table(outputs: dict[str, str]) -> list[str]:
    """Each tool's mean IC and rank IC per formula (in six.txt's order: ours prints the
    canonical text, which may order a commutative operator's arguments differently)."""
    parsed = {
        name: [json.loads(line) for line in text.splitlines()]
        for name, text in outputs.items()
        if not name.startswith("_")
    }
    lines = ["  mean IC / rank IC per formula: " + " | ".join(parsed)]
    for k, formula in enumerate(SIX):
        cells = [f"{rows[k]['ic']:+.6e} / {rows[k]['rank_ic']:+.6e}" for rows in parsed.values()]
        lines.append(f"    {formula}\n      " + " | ".join(cells))
    return lines


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--dates", type=int, default=1260)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".alphafactory" / "bench-cli")
    parser.add_argument("--qlib-env", type=Path, default=ROOT / ".venv-qlib")
    parser.add_argument("--no-qlib", action="store_true", help="skip the Qlib reference")
    args = parser.parse_args(argv)
    paths = write_inputs(args.workdir, args.assets, args.dates)
    runs = commands(paths, None if args.no_qlib else qlib_python(args.qlib_env))
    load_before = os.getloadavg()
    medians, outputs = time_all(runs, args.repeats)
    load_after = os.getloadavg()
    print(
        f"CPU {cpu_model()}, {os.cpu_count()} cores; load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after; {args.dates} dates x {args.assets} assets, "
        f"six formulas; median of {args.repeats} runs after a warm-up run"
    )
    ours = medians["alphafactory"]
    for name, seconds in medians.items():
        runs_text = ", ".join(f"{t:.2f}" for t in outputs["_all"][name])
        ratio = "" if name == "alphafactory" else f"  {seconds / ours:5.1f}x ours"
        print(f"  {name:13s} {seconds:7.2f} s{ratio}   (runs: {runs_text})")
    print("\n".join(ic_table(outputs)))
    print("  commands (run with PYTHONDONTWRITEBYTECODE unset, as a user's shell has it):")
    for name, command in runs.items():
        print(f"    {name}: {' '.join(command)}")


if __name__ == "__main__":
    main()
