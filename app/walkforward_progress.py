"""Watching a walk-forward while it runs: rebalances decided and pool sizes (read from
Postgres), the tqdm bar that shows them with the phase and ETA, and the CPU seconds each
process of its stack has used (psutil), grouped by phase for the report."""

from __future__ import annotations

import logging
import sys
import threading
import time

from alphafactory.settings import Settings
from alphafactory.strategy import Strategy

log = logging.getLogger("alphafactory.walkforward")


def expected_rebalances(settings: Settings, plan, strategy: Strategy) -> int:
    """About how many decisions the window holds: its trigger releases (or, with market
    triggers, observation dates), less those the rebalance rule would skip."""
    from storage.db import connect

    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        if strategy.triggers.series:
            (count,) = conn.execute(
                "SELECT count(*) FROM core.macro_observations WHERE series_id = ANY(%s) "
                "AND released_at >= %s AND released_at < %s",
                (list(strategy.triggers.series), plan.first, plan.last),
            ).fetchone()
        else:
            (count,) = conn.execute(
                "SELECT count(DISTINCT date) FROM core.market_observations_all "
                "WHERE date >= %s AND date < %s",
                (plan.first.date(), plan.last.date()),
            ).fetchone()
    months = (plan.last.year - plan.first.year) * 12 + plan.last.month - plan.first.month
    spacing = strategy.rebalance.min_days_between
    return int(min(count, months * 31 // spacing)) if spacing else int(count)


def rebalances_done(settings: Settings, plan, strategy: Strategy) -> tuple[int, dict]:
    """(the strategy's allocations decided in the window, {pool variant: its latest
    pool's size})."""
    from storage.db import connect

    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        (done,) = conn.execute(
            "SELECT count(*) FROM core.allocations WHERE strategy_id = %s "
            "AND decision_time >= %s AND decision_time < %s",
            (strategy.id, plan.first, plan.last),
        ).fetchone()
        rows = conn.execute(
            """
            SELECT DISTINCT ON (strategy_id) strategy_id, count(*) OVER
                (PARTITION BY strategy_id, as_of)
            FROM core.alpha_pools WHERE strategy_id LIKE %s
            ORDER BY strategy_id, as_of DESC
            """,
            (strategy.id + "@%",),
        ).fetchall()
    pools = {sid.partition("@")[2]: int(n) for sid, n in rows}
    return int(done), pools


def stack_cpu_seconds(settings: Settings) -> dict[str, float]:
    """CPU seconds (user + system, its exited children's included) each component and
    service of the run's stack has used so far: on 2 shared cores, where the time goes."""
    import psutil

    from app import stack

    used: dict[str, float] = {}
    for name, entry in stack.status(settings).items():
        pid = entry.get("pid") if isinstance(entry, dict) else None
        if not pid:
            continue
        try:
            root = psutil.Process(pid)
            total = 0.0
            for process in (root, *root.children(recursive=True)):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user
                total += times.children_system
        except psutil.Error:
            continue  # it ended between the listing and the reading
        used[name] = total
    return used


# the stack's processes by the phase their CPU time belongs to
CPU_PHASES = {
    "generation": ("generator", "triton"),
    "evaluation": ("worker",),
    "allocation": ("allocator",),
    "training": ("trainer",),
}


def cpu_phases(cpu: dict[str, float]) -> dict[str, float]:
    """CPU seconds per phase; the rest (Postgres, Kafka, Redis, the handlers, relay,
    scheduler, reconciler) as transport and storage."""
    phases = {
        phase: round(sum(cpu.get(name, 0.0) for name in names), 1)
        for phase, names in CPU_PHASES.items()
    }
    grouped = {name for names in CPU_PHASES.values() for name in names}
    phases["transport_and_storage"] = round(sum(v for k, v in cpu.items() if k not in grouped), 1)
    return phases


class ProgressBar:
    """A tqdm bar of rebalances done (polled from Postgres), with the phase and the
    latest pool sizes; ETA from tqdm's rate."""

    def __init__(self, settings: Settings, plan, strategy, progress) -> None:
        self._settings, self._plan, self._strategy = settings, plan, strategy
        self._progress, self._stop = progress, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._bar = None
        # on a terminal the bar redraws in place; into a log file, a line a minute
        self._every_s = 0.0 if sys.stderr.isatty() else 60.0
        self._drawn = -float("inf")

    def __enter__(self) -> ProgressBar:
        from tqdm import tqdm

        self._bar = tqdm(
            total=self._expected(),
            unit="rebalance",
            dynamic_ncols=True,
            mininterval=self._every_s or 0.1,
        )
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._drawn = -float("inf")  # the final state, always
        self._update()
        self._bar.close()

    def changed(self, _progress) -> None:
        self._update()

    def _expected(self) -> int:
        return expected_rebalances(self._settings, self._plan, self._strategy)

    def _poll(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self._update()
            except Exception as error:  # a progress bar must never stop the run
                log.debug("progress poll failed: %s", error)

    def _update(self) -> None:
        done, pools = rebalances_done(self._settings, self._plan, self._strategy)
        progress = self._progress
        self._bar.n = min(done, self._bar.total or done)
        sizes = " ".join(f"{name}:{size}" for name, size in pools.items())
        if time.monotonic() - self._drawn < self._every_s:
            return
        self._drawn = time.monotonic()
        self._bar.set_postfix_str(
            f"period {progress.period}/{progress.periods} {progress.phase}; pools {sizes}",
            refresh=False,
        )
        self._bar.refresh()
