"""The pipeline's generator from what is stored: train it on a strategy's point-in-time
data, export it to the Triton model repository and serve it.

``alphafactory model train --strategy ID [--until DATE]`` and ``alphafactory init`` (the
first run) use these, and the demo serves its generator the same way. The training panel
is the strategy's own (its universe, its macro operands) with every observation and
release available by ``until``; its last row, the one ``until`` falls on, is held out, so
the checkpoint's ``trained_until`` lies before ``until`` and the generation service
refuses to use it for any decision made earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from alphafactory.panel import Panel
from alphafactory.settings import Settings
from alphafactory.strategy import Strategy

NEW_YORK = ZoneInfo("America/New_York")
DEFAULT_FORMULAS = 3000  # random formulas in the training set (MCMC chains come on top)
DEFAULT_STEPS = 400
# a retraining that starts from the previous version's weights (app.trainer) fine-tunes
# on the new data for this many steps
DEFAULT_WARM_STEPS = 100


class GeneratorSetupError(RuntimeError):
    """The stored data cannot train a generator; the message says what is missing."""


@dataclass(frozen=True)
class TrainedGenerator:
    path: Path
    trajectories: int
    seconds: float
    first_date: str
    last_date: str  # the last panel date trained on
    until: datetime
    warm_start: bool = False  # from an earlier version's weights

    def describe(self) -> str:
        start = " (warm start)" if self.warm_start else ""
        return (
            f"trained{start} on {self.trajectories:,} trajectories over {self.first_date}.."
            f"{self.last_date} (data available before {self.until:%Y-%m-%d %H:%M %Z}) in "
            f"{self.seconds:.0f} s -> {self.path}"
        )


def checkpoint_path(settings: Settings, name: str = "") -> Path:
    """Where generator ``name`` is kept ("" the default: ``pipeline.generator_checkpoint``;
    a named one beside it as ``<stem>-<name>.pt``)."""
    default = Path(settings.pipeline.generator_checkpoint)
    return default if not name else default.with_name(f"{default.stem}-{name}{default.suffix}")


def served_name(settings: Settings, name: str = "") -> str:
    """Generator ``name``'s Triton model name (the default: ``triton.generator_model``)."""
    return settings.triton.generator_model + (f"_{name}" if name else "")


def start_of_day(day: date) -> datetime:
    """Midnight in New York at the start of ``day``: "before DATE" for the data's clock."""
    return datetime.combine(day, time(0), tzinfo=NEW_YORK)


def training_plan(strategy: Strategy, formulas: int = DEFAULT_FORMULAS, *, seed: int = 0):
    """The trajectory mix a pipeline generator is trained on for ``strategy``."""
    from inference.trajectories import BuildPlan

    return BuildPlan(
        random=formulas,
        mcmc_chains=16 if formulas >= 1000 else 4,
        mcmc_steps=60,
        max_tokens=strategy.formulas.max_tokens,
        root_kinds=strategy.formulas.root_kinds,
        seed=seed,
    )


def stored_training_panel(conn, strategy: Strategy, until: datetime) -> Panel:
    """Everything of ``strategy``'s data available by ``until``, as one panel."""
    from alphafactory.decision import DecisionError
    from consumers.market_data import NoMarketData, strategy_panel

    try:
        return strategy_panel(conn, strategy, until, history_rows=1_000_000, twin_rows=False)
    except (NoMarketData, DecisionError) as error:
        raise GeneratorSetupError(
            f"strategy {strategy.id!r} cannot train a generator on the data stored before "
            f"{until.isoformat()}: {error} (load data first: alphafactory data load)"
        ) from error


def train_from_store(
    settings: Settings,
    strategy: Strategy,
    *,
    until: datetime,
    steps: int = DEFAULT_STEPS,
    formulas: int = DEFAULT_FORMULAS,
    out: Path | None = None,
    warm_start=None,
) -> TrainedGenerator:
    """Train the generator on ``strategy``'s stored data available by ``until`` (from
    ``warm_start``'s weights, an earlier checkpoint, where it fits: ``train_on_panel``)."""
    from alphafactory.decision import scoring_options
    from inference.pipeline import train_on_panel
    from storage.db import connect

    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        panel = stored_training_panel(conn, strategy, until)
    rows = len(panel.dates) - 1  # the row ``until`` falls on is held out
    if rows < 24:
        raise GeneratorSetupError(
            f"strategy {strategy.id!r} has {rows} complete dates before {until.isoformat()}; "
            "a generator needs at least 24"
        )
    path = Path(out or checkpoint_path(settings, strategy.generation.generator))
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = train_on_panel(
        panel,
        rows,
        path,
        plan=training_plan(strategy, formulas),
        steps=steps,
        warm_start=warm_start,
        # rewarded on what its candidates are judged on: the strategy's execution lag,
        # macro forecasts and traded position (alphafactory.traded)
        options=scoring_options(strategy),
    )
    return TrainedGenerator(
        path=path,
        trajectories=int(summary["trajectories"]),
        seconds=float(summary["seconds"]),
        first_date=str(panel.dates[0])[:10],
        last_date=str(panel.dates[rows - 1])[:10],
        until=until,
        warm_start=bool(summary["warm_start"]),
    )


def export(settings: Settings, name: str = "", path: Path | None = None) -> str:
    """Write generator ``name``'s checkpoint (``path``, default where it is kept) to the
    Triton model repository; returns the served model's name."""
    from inference.export import export_repository
    from inference.repository import ServingOptions
    from inference.training import load_checkpoint

    checkpoint = load_checkpoint(Path(path or checkpoint_path(settings, name)))
    model = served_name(settings, name)
    export_repository(
        checkpoint, settings.triton.repository, ServingOptions(model, instances="cpu")
    )
    return model


def restart_serving(settings: Settings) -> str:
    """Restart Triton (which loads every model of the repository) and the generation
    service (which loads its checkpoints when it starts), as the local stack runs them;
    external ones are left to their operator."""
    from app import stack

    names = ["triton", "generator"] if settings.pipeline.services else ["triton"]
    restarted = stack.restart(settings, names)
    return ", ".join(restarted) if restarted else "nothing (external: restart them yourself)"


def serve(settings: Settings, path: Path | None = None, name: str = "") -> str:
    """Export generator ``name`` and restart what serves it."""
    model = export(settings, name, path)
    restarted = restart_serving(settings)
    return f"exported to {settings.triton.repository} as {model!r}; restarted {restarted}"
