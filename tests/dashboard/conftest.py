"""Fixtures for the dashboard tests: the pipeline tests' database, market, strategy and
generator (tests/pipeline/conftest.py), seeded as tests/pipeline/test_ops_commands.py
does (a request decided through generation, evaluation and allocation, one waiting),
plus a failed request, a dead letter, a reconciler action and a walk-forward report.

No ``__init__.py``: these test modules are not importable packages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pytest

from tests.pipeline import conftest as pipeline

# the pipeline tests' fixtures, for this folder too
market, pipeline_db, strategy, generator = (
    pipeline.market, pipeline.pipeline_db, pipeline.strategy, pipeline.generator
)  # fmt: skip
strategies_dir, pipeline_settings = pipeline.strategies_dir, pipeline.pipeline_settings

# markup in stored text: a page must show it as text (autoescaping), never run it
HOSTILE = "<script>alert('dead letter')</script>"


@dataclass(frozen=True)
class Seeded:
    request_id: str
    trigger: str
    allocation_id: str
    waiting_id: str
    failed_id: str
    failure: str
    weights: dict[str, float]
    formulas: list[str]  # the decided request's pool


@pytest.fixture(scope="module")
def seeded(pipeline_db, market, strategy, generator) -> Seeded:
    from app.walkforward_html import store_report
    from storage.dead_letters import record_dead_letter
    from storage.reconcile import record_action
    from storage.requests import RequestRecord, record_failure, register_request
    from tests.pipeline.test_pipeline_core import decide_directly, make_request

    token = uuid.uuid4().hex[:8]
    # the pages must show a pool: every scored candidate meets this definition, whatever
    # the random trigger makes the untrained generator write
    admits_all = strategy.model_copy(
        update={"alpha": strategy.alpha.model_copy(update={"definition": "hac_tstat > -1000"})}
    )
    with psycopg.connect(pipeline_db.dsn("app"), autocommit=True) as conn:
        request, _, allocation_id = decide_directly(
            conn, market, admits_all, generator, 100, f"dash-{token}"
        )
        waiting = make_request(market, strategy, 101, f"dash-waiting-{token}")
        register_request(conn, RequestRecord.of(waiting))
        failed = make_request(market, strategy, 102, f"dash-failed-{token}")
        register_request(conn, RequestRecord.of(failed))
        failure = f"no market data at its decision time ({token})"
        record_failure(conn, failed.request_id, failure)
        record_dead_letter(
            conn, topic="macro.releases", partition=0, offset=7, key="M0000",
            payload=b"{not json", error=f"{HOSTILE} not UTF-8 JSON",
        )  # fmt: skip
        record_action(conn, action="republish_release", subject=f"release-{token}", detail="lost")
        weights = dict(
            conn.execute(
                "SELECT asset, weight FROM core.positions WHERE allocation_id = %s",
                (allocation_id,),
            ).fetchall()
        )
        formulas = [
            f
            for (f,) in conn.execute(
                "SELECT f.formula FROM core.alpha_pools AS p JOIN core.factors AS f "
                "USING (formula_hash) WHERE p.strategy_id = %s",
                (strategy.id,),
            ).fetchall()
        ]
    assert store_report(pipeline_db, *walkforward_report(strategy.id))
    return Seeded(
        request.request_id, request.trigger_event_id, allocation_id, waiting.request_id,
        failed.request_id, failure, weights, formulas,
    )  # fmt: skip


def walkforward_report(strategy_id: str) -> tuple[dict, dict[str, pd.Series]]:
    """A small report in the shape ``alphafactory walkforward`` writes, and its series."""
    dates = pd.date_range("2015-01-31", periods=24, freq="ME")
    rng = np.random.default_rng(3)
    series = {
        name: pd.Series(rng.normal(0.005, 0.03, len(dates)), index=dates)
        for name in ("pool10", "equal_weight", "benchmark (risk parity)")
    }
    record = {
        "kind": "pool", "n_rebalances": 24, "cumulative_return": 0.1, "cagr": 0.05,
        "volatility": 0.1, "sharpe": 0.5, "max_drawdown": 0.12, "turnover": 0.3,
        "excess_return": 0.01, "information_ratio": 0.2, "excess_hac_tstat": 1.1,
        "in_sample_sharpe": float("nan"), "mean_pool_size": 10.0, "alpha_survival": None,
    }  # fmt: skip
    model = {
        "version": 1, "cutoff": "2015-01-01T00:00:00+00:00",
        "trained_until": "2014-12-31T00:00:00+00:00",
        "first_decision": "2015-01-15T14:00:00+00:00", "requests": 24, "candidates": 240,
        "alphas": 30, "hit_rate": 0.125,
        "ic_decay": {"alphas": 30, "in_sample": 0.05, "months": [0.03, 0.01]},
    }  # fmt: skip
    report = {
        "strategy": strategy_id,
        "from": "2015-01",
        "to": "2016-12",
        "variants": {"pool10": record, "equal_weight": dict(record, sharpe=0.4, kind="benchmark")},
        "models": [model],
        "pool_sizes": {"rows": []},
        "settings": {
            "candidates": 10,
            "retrain_every_months": 12,
            "alpha_definition": "hac_tstat >= 2",
            "benchmark": "the strategy's risk-parity mix at the same decisions",
        },
    }
    return report, series


@pytest.fixture(scope="module")
def dashboard_settings(pipeline_settings):
    """The pipeline settings (the dashboard on the session stack's free port, where no
    service runs) without a metrics endpoint: the test's process needs none."""
    metrics = pipeline_settings.metrics.model_copy(update={"enabled": False})
    return pipeline_settings.model_copy(update={"metrics": metrics})
