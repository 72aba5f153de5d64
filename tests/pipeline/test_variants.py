"""A strategy's variants on the real Postgres: the pool sizes and the plain benchmarks
allocated from the strategy's own request, the generator baselines with requests of
their own, each written under ``<id>@<variant>`` where a trading system reads it.
(Celery and Kafka are direct calls here; the walk-forward test runs them for real.)"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from alphafactory.formula import formula_hash
from alphafactory.library import TIME_SERIES_MOMENTUM
from alphafactory.variants import generator_variants
from consumers.allocation import AllocationContext, allocate_request
from consumers.evaluation import EvaluationContext, evaluate_chunk
from consumers.generation import GenerationContext, handle_request
from tests.pipeline.test_pipeline_core import make_request

VARIANTS = (
    "pool1",
    "pool3",
    "combo_equal",
    "long_short",
    "random",
    "library",
    "tsmom",
    "classic",
    "risk_parity",
    "equal_weight",
)


@pytest.fixture
def strategy_with_variants(strategy):
    update = {
        "variants": strategy.variants.model_copy(update={"names": VARIANTS}),
        "generation": strategy.generation.model_copy(update={"candidates": 16}),
        "alpha": strategy.alpha.model_copy(update={"definition": "hac_tstat > -100"}),
    }
    return strategy.model_copy(update=update)


def _run(conn, strategy, generation, evaluation, allocation, sent, request) -> str:
    sent.clear()
    handle_request(conn, generation, request)
    for request_id, chunk in sent:
        evaluate_chunk(conn, evaluation, request_id, chunk)
    return allocate_request(conn, allocation, request.request_id)


def test_variants_are_allocated_under_their_own_ids(
    conn, market, strategy_with_variants, generator, unique_trigger
):
    base = strategy_with_variants
    strategies = {s.id: s for s in (base, *generator_variants(base))}
    assert set(strategies) == {base.id, f"{base.id}@random", f"{base.id}@library"}
    sent: list = []

    def dispatch(request_id, hashes, size):
        sent.extend((request_id, hashes[k : k + size]) for k in range(0, len(hashes), size))
        return len(hashes)

    policy, vocab = generator
    allocation = AllocationContext(strategies)
    generation = GenerationContext(
        strategies, policy, vocab, 1.0, dispatch, allocation, threading.Event()
    )
    evaluation = EvaluationContext(strategies)
    for strategy in strategies.values():
        request = make_request(market, strategy, 100, unique_trigger)
        assert _run(conn, strategy, generation, evaluation, allocation, sent, request)

    rows = conn.execute(
        "SELECT strategy_id, asset, weight FROM trading.latest_target_positions "
        "WHERE trigger_event_id = %s",
        (unique_trigger,),
    ).fetchall()
    weights: dict[str, dict[str, float]] = {}
    for strategy_id, asset, weight in rows:
        weights.setdefault(strategy_id, {})[asset] = weight
    expected = {base.id, *(f"{base.id}@{name}" for name in VARIANTS)}
    assert set(weights) == expected
    for strategy_id, mix in weights.items():  # long-only: each a full book
        if strategy_id.endswith("@long_short"):  # dollar-neutral within the strategy's gross
            assert np.isclose(sum(mix.values()), 0.0, atol=1e-9)
            gross = sum(abs(w) for w in mix.values())
            assert 0.5 * base.portfolio.gross < gross <= base.portfolio.gross + 1e-6
        else:
            assert np.isclose(sum(mix.values()), 1.0), strategy_id
    equal = weights[f"{base.id}@equal_weight"]
    assert np.allclose(list(equal.values()), 1.0 / len(market.panel.assets))
    assert weights[f"{base.id}@risk_parity"] != equal  # inverse volatility

    pools = dict(
        conn.execute(
            "SELECT strategy_id, count(*) FROM core.alpha_pools WHERE strategy_id LIKE %s "
            "AND decision_time = (SELECT decision_time FROM core.allocations "
            "WHERE strategy_id = %s AND trigger_event_id = %s) GROUP BY strategy_id",
            (base.id + "%", base.id, unique_trigger),
        ).fetchall()
    )
    assert pools[f"{base.id}@pool1"] == 1 and 1 < pools[f"{base.id}@pool3"] <= 3
    # the baselines trade the classic signals this market can compute (its series are
    # not the bundled ones: time-series and cross-asset momentum), stored as factors
    assert pools[f"{base.id}@tsmom"] == 1 and pools[f"{base.id}@classic"] == 2
    origin = conn.execute(
        "SELECT origin FROM core.factors WHERE formula_hash = %s",
        (formula_hash(TIME_SERIES_MOMENTUM),),
    ).fetchone()
    assert origin == ("library",)
    assert pools[base.id] <= base.pool.size
    combined = conn.execute(
        "SELECT weight FROM core.alpha_pools WHERE strategy_id = %s AND decision_time = "
        "(SELECT decision_time FROM core.allocations WHERE strategy_id = %s "
        "AND trigger_event_id = %s)",
        (f"{base.id}@combo_equal", base.id, unique_trigger),
    ).fetchall()
    assert len(combined) > 1 and len({abs(float(w)) for (w,) in combined}) == 1  # equal
    # the baselines wrote their own candidates, with their source recorded
    sources = dict(
        conn.execute(
            "SELECT strategy_id, model_generator FROM core.generation_requests "
            "WHERE trigger_event_id = %s",
            (unique_trigger,),
        ).fetchall()
    )
    assert sources == {base.id: "", f"{base.id}@random": "random", f"{base.id}@library": "library"}

    # asked again (a redelivered result): every allocation is there once
    before = conn.execute(
        "SELECT count(*) FROM core.allocations WHERE trigger_event_id = %s", (unique_trigger,)
    ).fetchone()[0]
    request = make_request(market, base, 100, unique_trigger)
    allocate_request(conn, allocation, request.request_id)
    after = conn.execute(
        "SELECT count(*) FROM core.allocations WHERE trigger_event_id = %s", (unique_trigger,)
    ).fetchone()[0]
    assert before == after == len(expected)
