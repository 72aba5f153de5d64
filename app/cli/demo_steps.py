"""The steps of `alphafactory demo` (see demo_cmd): data, generator, replay, report."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from alphafactory.clock import known_dates
from alphafactory.settings import Settings
from storage.macro import count_releases

TRIGGER_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp  # the first replayed release time
    end: pd.Timestamp
    releases: pd.DataFrame  # release-time order


def replay_window(releases: pd.DataFrame, trigger: str, months: int, first: str) -> Window:
    """``months`` releases of ``trigger`` from the first in or after month ``first``
    (YYYY-MM), with every other series' releases from just after the trigger before."""
    triggers = releases[releases["series_id"] == trigger].sort_values("released_at")
    times = triggers["released_at"].reset_index(drop=True)
    begin = pd.Timestamp(first, tz="UTC")
    k = int(times.searchsorted(begin))
    if k == 0 or k + months > len(times):
        last = times.iloc[-1].strftime("%Y-%m") if len(times) else "none"
        raise SystemExit(
            f"{months} {trigger} releases from {first} do not fit the data: it has "
            f"releases from {times.iloc[0]:%Y-%m} to {last} (and one before the window)"
        )
    # start just after the previous trigger: the other series' releases in between replay too
    start = times.iloc[k - 1] + pd.Timedelta(seconds=1)
    end = times.iloc[k + months - 1]
    chosen = releases[(releases["released_at"] >= start) & (releases["released_at"] <= end)]
    chosen = chosen.sort_values(["released_at", "series_id"], kind="stable")
    return Window(start, end, chosen.reset_index(drop=True))


def store_history(settings: Settings, market, start: pd.Timestamp) -> int:
    from storage.loading import load_panel, load_releases

    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        load_panel(conn, market.panel)
        history = market.releases[market.releases["released_at"] < start]
        load_releases(conn, history)
        return count_releases(conn)


def ensure_generator(settings: Settings, strategy, panel, start: pd.Timestamp, args) -> str:
    """Train (or reuse) the generator on the rows before the window; export to Triton."""
    from alphafactory.decision import scoring_options
    from app.generator_setup import serve, training_plan
    from inference.pipeline import panel_vocabulary, scoring_provenance, train_on_panel
    from inference.training import CheckpointError, load_checkpoint

    path = Path(settings.pipeline.generator_checkpoint)
    row = int(np.searchsorted(panel.dates, start.tz_localize(None).to_datetime64()))
    split = str(panel.dates[row])[:10]
    options = scoring_options(strategy)  # rewarded on what its candidates are judged on
    cached = None
    if path.exists() and not args.retrain:
        try:
            checkpoint = load_checkpoint(path)
            same = checkpoint.vocab.fingerprint == panel_vocabulary(panel).fingerprint
            same &= checkpoint.reward.get("scoring") == scoring_provenance(options)
            cached = checkpoint if same and checkpoint.reward.get("split") == split else None
        except CheckpointError:
            cached = None
    if cached is None:
        plan = training_plan(strategy)
        summary = train_on_panel(
            panel, row, path, plan=plan, steps=args.train_steps, options=options
        )
        text = (
            f"trained on {summary['trajectories']:,} trajectories before {split} in "
            f"{summary['seconds']:.0f} s -> {path}"
        )
    else:
        text = f"reusing {path} (trained on data before {split})"
    if args.no_triton:
        return text + "; generating in process"
    return f"{text}; {serve(settings, path)}"


@dataclass(frozen=True)
class Outcome:
    event_id: str
    decision_time: pd.Timestamp
    generated: int
    evaluated: int
    qualified: int
    admitted: int
    pool: int
    allocation_id: str | None
    weights: dict[str, float]
    seconds: float
    noise_admitted: int | None = None  # the same rule on the noise twin


def replay(settings: Settings, strategy, releases: pd.DataFrame, trigger: str) -> list[Outcome]:
    from messaging.publisher import KafkaPublisher
    from producers.releases import publish_release, release_events
    from producers.replay import triggers_last_in_each_instant

    outcomes: list[Outcome] = []
    published: list[str] = []
    with (
        KafkaPublisher.open(settings.kafka) as publisher,
        psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn,
    ):
        events = triggers_last_in_each_instant(
            release_events(releases), lambda release: release.series_id == trigger
        )
        for event in events:
            if event.series_id == trigger:
                # every earlier release stored first, so the decision sees all of them
                _wait_stored(conn, published)
                publish_release(publisher, event)
                outcomes.append(_follow(conn, strategy.id, event))
                published = []
            else:
                publish_release(publisher, event)
                published.append(event.event_id)
    return outcomes


def _wait_stored(conn, event_ids: list[str]) -> None:
    deadline = time.monotonic() + TRIGGER_TIMEOUT_S
    while event_ids and time.monotonic() < deadline:
        if count_releases(conn, event_ids=event_ids) == len(event_ids):
            return
        time.sleep(0.2)
    if event_ids:
        raise SystemExit(
            "the release handler stored nothing for minutes: see its log "
            "(.alphafactory/logs/release-handler.log)"
        )


def _follow(conn, strategy_id: str, event) -> Outcome:
    from storage.progress import trigger_status

    started, tty = time.monotonic(), sys.stdout.isatty()
    while True:
        status = trigger_status(conn, strategy_id, event.event_id)
        elapsed = time.monotonic() - started
        line = (
            f"  {event.released_at:%Y-%m-%d} {event.series_id} {event.period:%Y-%m}: "
            f"generated {status.generated if status.generated is not None else '...':>4}, "
            f"evaluated {status.evaluated:>4}, qualified {status.qualified:>3}"
        )
        if status.allocation_id or elapsed > TRIGGER_TIMEOUT_S:
            break
        if tty:
            print(f"\r{line}  ({elapsed:.0f} s)", end="", flush=True)
        time.sleep(0.3)
    top = sorted(status.weights.items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{a} {w:.1%}" for a, w in top) if top else "no allocation (timed out)"
    admitted = status.admitted or 0
    print(
        f"\r{line}, admitted {admitted:>2}, pool {status.pool:>2} -> {shown}  ({elapsed:.1f} s)",
        flush=True,
    )
    return Outcome(
        event.event_id,
        pd.Timestamp(event.released_at),
        status.generated or 0,
        status.evaluated,
        status.qualified,
        admitted,
        status.pool,
        status.allocation_id,
        status.weights,
        elapsed,
        status.noise_admitted,
    )


def report(settings: Settings, strategy, panel, outcomes: list[Outcome], plot: Path) -> None:
    from alphafactory.costs import describe_costs
    from alphafactory.decision_inputs import benchmark_weights, trading_costs
    from alphafactory.metrics import infer_periods_per_year
    from alphafactory.performance import held_returns, summarize

    done = [o for o in outcomes if o.allocation_id]
    if not done:
        print("    no allocation was made: nothing to report")
        return
    decisions = pd.DatetimeIndex([o.decision_time for o in done]).tz_convert("UTC")
    benchmarks = []
    for when in decisions:
        rows = int(known_dates(panel.dates, when).sum())
        weights = benchmark_weights(panel, strategy, rows)
        benchmarks.append(dict(zip(panel.assets, weights, strict=True)))
    rates = trading_costs(panel, strategy)
    held = [o.weights for o in done]
    series = {}
    for label, costs in (("", None), (" net", rates)):
        # the last allocation is held one period: until the first release after the window
        for name, weights in (("strategy", held), ("benchmark (risk parity)", benchmarks)):
            series[name + label] = held_returns(
                panel.dates,
                panel.assets,
                panel.returns,
                decisions,
                weights,
                hold_last=1,
                costs=costs,
            )
    print(f"    costs: {describe_costs(strategy.costs)} (net: after them)")
    for caveat in strategy.universe.caveats:
        print(f"    caveat: {caveat}")
    periods_per_year = infer_periods_per_year(panel.dates)
    columns = ("periods", "total", "annual", "vol", "sharpe", "maxDD")
    print(f"    {'':24s} " + " ".join(f"{c:>8}" for c in columns))
    for name, values in series.items():
        p = summarize(values, periods_per_year)
        print(
            f"    {name:24s} {p.periods:8d} {p.total_return:8.2%} {p.annual_return:8.2%} "
            f"{p.annual_volatility:8.2%} {p.sharpe:8.2f} {p.max_drawdown:8.2%}"
        )
    _plot(series, plot)
    print(f"    plot: {plot}")
    mean_s = np.mean([o.seconds for o in done])
    generated, qualified = sum(o.generated for o in done), sum(o.qualified for o in done)
    admitted = sum(o.admitted for o in done)
    twinned = [o.noise_admitted for o in done if o.noise_admitted is not None]
    noise = (
        f" (on the decisions' noise twins the same rule admitted {sum(twinned):,})"
        if twinned
        else ""
    )
    print(
        f"    {len(done)} rebalances, {generated:,} formulas generated and evaluated (the "
        f"trials), {qualified:,} met the alpha definition, {admitted:,} admitted by the "
        f"multiple-testing control{noise}; {mean_s:.1f} s per release"
    )


def _plot(series: dict[str, pd.Series], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    for name, values in series.items():
        axis.plot(values.index, np.cumprod(1 + values.to_numpy()), label=name)
    axis.set_title("Out of sample: rebalanced on each core CPI release")
    axis.set_ylabel("growth of 1")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def psql_command(settings: Settings) -> str:
    dsn = settings.postgres.dsn("trading")
    return (
        f'psql "{dsn}" -c "SELECT strategy_id, as_of, asset, round(weight::numeric, 4) '
        f'AS weight, trigger_event_id FROM trading.latest_target_positions ORDER BY weight DESC"'
    )
