"""Supervised alphas through the pipeline on the real Postgres: an ``[ml]`` strategy's
model is a candidate of its request, evaluated by a worker, qualified by the alpha
definition and allocated, under the strategy, its ``ridge`` variant and a pool
combined by LightGBM (``combo_lightgbm``)."""

from __future__ import annotations

import numpy as np

from alphafactory.ml.candidate import candidate_hash
from storage.factors import evaluations
from tests.pipeline.test_pipeline_core import decide_directly


def ml_strategy(strategy, trigger: str):
    return strategy.model_validate(
        strategy.model_dump()
        | {
            "id": f"ml-{trigger}",
            # every finite t-statistic qualifies: the pool is every valid candidate
            "alpha": strategy.alpha.model_dump() | {"definition": "hac_tstat > -1000"},
            "ml": {"models": ["ridge"], "features": ["operands"], "folds": 2},
            "variants": {"names": ["ridge", "combo_lightgbm"]},
        }
    )


def test_an_ml_strategy_gets_positions_after_a_release(conn, market, strategy, generator):
    trigger = "ml-release"
    mine = ml_strategy(strategy, trigger)
    (ridge,) = mine.ml.candidates()
    request, hashes, allocation_id = decide_directly(conn, market, mine, generator, 100, trigger)
    assert candidate_hash(ridge) in hashes and len(hashes) == mine.generation.candidates + 1
    assert conn.execute(
        "SELECT formula, origin FROM core.factors WHERE formula_hash = %s",
        (candidate_hash(ridge),),
    ).fetchone() == (ridge, "ml")
    stored = evaluations(conn, strategy_id=mine.id, decision_time=request.decision_time)
    row = stored.set_index("formula").loc[ridge]
    assert row["is_alpha"] and np.isfinite(row["hac_tstat"]) and np.isfinite(row["ic"])
    assert allocation_id is not None
    positions = dict(
        conn.execute(
            "SELECT strategy_id, sum(weight) FROM trading.latest_target_positions "
            "WHERE strategy_id LIKE %s GROUP BY strategy_id",
            (f"{mine.id}%",),
        ).fetchall()
    )
    expected = {mine.id, f"{mine.id}@ridge", f"{mine.id}@combo_lightgbm"}
    assert set(positions) == expected and all(np.isclose(w, 1.0) for w in positions.values())
    pools = conn.execute(
        "SELECT p.strategy_id, f.formula, p.weight FROM core.alpha_pools AS p "
        "JOIN core.factors AS f USING (formula_hash) WHERE p.strategy_id LIKE %s",
        (f"{mine.id}%",),
    ).fetchall()
    # the variant's pool is the model's alpha alone (its sign the IC's)
    assert [(f, abs(w)) for s, f, w in pools if s.endswith("@ridge")] == [(ridge, 1.0)]
    learned = [w for s, _, w in pools if s.endswith("@combo_lightgbm")]
    assert 1 <= len(learned) <= mine.pool.size and np.isclose(sum(learned), 1.0)
