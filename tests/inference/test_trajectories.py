"""Trajectory rewards, returns-to-go, sources, storage and the grammar replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.formula import (
    LanguageConfig,
    Vocabulary,
    from_tokens,
    parse,
    random_formula,
    to_tokens,
)
from alphafactory.library import LIBRARY, known_factors
from alphafactory.scoring import FormulaScorer, ScoringOptions, metric_values
from inference.encoding import encode, returns_to_go
from inference.trajectories import (
    BuildPlan,
    RewardSpec,
    TrajectoryError,
    _Chain,
    _mcmc_chains,
    _Scoring,
    build_trajectories,
    load_trajectories,
    save_trajectories,
)


def test_returns_to_go_discount_the_terminal_reward():
    np.testing.assert_allclose(returns_to_go(2.0, 4, 0.5), [0.25, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(returns_to_go(3.0, 5, 1.0), np.full(5, 3.0))


def test_reward_spec_clips_fills_and_rejects_unknown_metrics():
    spec = RewardSpec("ls_sharpe", clip=2.0, nan_reward=-1.0)
    np.testing.assert_array_equal(spec.rewards(np.array([5.0, -0.5, np.nan])), [2.0, -0.5, -1.0])
    with pytest.raises(TrajectoryError, match="'sharp'.*expected one of"):
        RewardSpec("sharp")
    with pytest.raises(TrajectoryError, match="gamma"):
        RewardSpec(gamma=0.0)


def test_the_library_parses_where_its_operands_exist():
    vocab = Vocabulary(
        {"close": "panel", "returns": "panel", "volume": "panel", "high": "panel", "low": "panel"},
        LanguageConfig.daily(),
    )
    found = known_factors(vocab, max_tokens=32)
    families = {entry.family for entry, _ in found}
    assert {"momentum", "reversal", "volatility", "liquidity"} <= families
    assert "value_quality" not in families and "macro_rates" not in families
    for _, node in found:
        assert from_tokens(to_tokens(node), vocab) == node
    assert len(LIBRARY) > len(found)


def test_built_trajectories_are_scored_formulas_with_provenance(panel, vocab, tmp_path):
    plan = BuildPlan(
        random=60, mcmc_chains=2, mcmc_steps=10, max_tokens=12, root_kinds=("macro",), seed=7
    )
    built = build_trajectories(panel, vocab, RewardSpec("ic"), plan)
    frame = built.frame
    assert frame["source"].value_counts().to_dict() == {"random": 60, "mcmc": 20}
    sample = frame.sample(10, random_state=0)
    expected = RewardSpec("ic").rewards(
        metric_values(FormulaScorer(panel, config=vocab.config).score(list(sample.formula)), "ic")
    )
    np.testing.assert_array_equal(sample["reward"].to_numpy(), expected)
    for text, tokens in zip(frame.formula, frame.tokens, strict=True):
        assert str(from_tokens(tokens, vocab)) == text and len(tokens) <= 12
        assert parse(text, vocab.operands, vocab.config).kind.value == "macro"
    assert built.provenance["vocabulary"] == vocab.fingerprint
    assert built.provenance["data_end"] == str(panel.dates[-1])[:10]
    path = tmp_path / "t.parquet"
    save_trajectories(built, path)
    loaded = load_trajectories(path)
    assert loaded.provenance == {
        **built.provenance,
        "plan": {**built.provenance["plan"], "root_kinds": ["macro"]},
    }
    assert loaded.frame.drop(columns="tokens").equals(frame.drop(columns="tokens"))
    assert loaded.token_lists() == built.token_lists()
    again = build_trajectories(panel, vocab, RewardSpec("ic"), plan)
    assert again.frame.equals(frame)  # the seed reproduces the dataset


def test_chains_run_side_by_side_write_the_rows_each_writes_alone(panel, vocab):
    context = _Scoring(panel, vocab, RewardSpec("ic"), ScoringOptions())
    rng = np.random.default_rng(3)
    starts = [(str(random_formula(vocab, rng, max_tokens=10)), 0.0) for _ in range(3)]

    def chains(seed: int) -> list[_Chain]:
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
        return [_Chain.start(context, t, r, g) for (t, r), g in zip(starts, rngs, strict=True)]

    together = _mcmc_chains(context, chains(5), 8, 0.5, 10)
    alone = [row for chain in chains(5) for row in _mcmc_chains(context, [chain], 8, 0.5, 10)]
    assert len(together) == 24  # NaN metric values compare equal in frames, not in dicts
    assert pd.DataFrame(together).equals(pd.DataFrame(alone))
    assert len({row["formula"] for row in together}) > 3  # the chains moved


@pytest.mark.slow
def test_worker_processes_build_the_same_dataset(panel, vocab):
    plan = BuildPlan(
        random=40,
        mcmc_chains=3,  # side by side in one process; split 2 + 1 over two
        mcmc_steps=5,
        max_tokens=10,
        task_size=20,
        root_kinds=("macro",),
        seed=1,
    )
    serial = build_trajectories(panel, vocab, RewardSpec("ic"), plan, workers=1)
    parallel = build_trajectories(panel, vocab, RewardSpec("ic"), plan, workers=2)
    assert parallel.frame.equals(serial.frame)


def test_a_missing_or_foreign_file_is_named(tmp_path):
    with pytest.raises(TrajectoryError, match="cannot read"):
        load_trajectories(tmp_path / "none.parquet")
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(TrajectoryError, match="lacks trajectory columns"):
        load_trajectories(tmp_path / "other.parquet")


def test_encoding_replays_the_grammar(vocab):
    formula = parse("ts_mean(M0001 - M0002, 12)", vocab.operands, vocab.config)
    tokens = to_tokens(formula)
    encoded = encode([tokens], [1.5], vocab, context=8, gamma=0.5)
    assert encoded.valid[0].tolist() == [True] * 5 + [False] * 3
    assert encoded.actions[0, :5].tolist() == vocab.encode(tokens)
    assert (encoded.actions[0, 5:] == len(vocab)).all()
    np.testing.assert_allclose(encoded.rtg[0, :5], returns_to_go(1.5, 5, 0.5))
    masks = encoded.masks(np.array([0]))[0]
    assert all(masks[step, token] for step, token in enumerate(encoded.actions[0, :5]))
    assert encoded.features[0, 0].tolist()[0] == 1  # a value slot first
    assert encoded.features[0, 4, 0] == 2  # the window literal last
    with pytest.raises(ValueError, match="context is 4"):
        encode([tokens], [1.0], vocab, context=4, gamma=1.0)


def test_library_entries_are_ones_the_grammar_can_write():
    vocab = Vocabulary(
        {"us_aaa": "macro", "ff_rf": "macro", "us_baa": "macro"}, LanguageConfig.monthly()
    )
    texts = {str(node) for _, node in known_factors(vocab, max_tokens=16)}
    assert "us_baa - us_aaa" in texts
    # text may use any number; the token grammar offers only the configured constants
    assert not any("12" in text and "ff_rf" in text for text in texts)
    encode(
        [to_tokens(node) for _, node in known_factors(vocab)],
        [0.0] * len(texts),
        vocab,
        context=16,
        gamma=1.0,
    )


def test_a_strategys_generator_is_rewarded_on_what_its_candidates_are_judged_on(
    panel, vocab, tmp_path
):
    """``train_on_panel`` with a tilt strategy's scoring: the trajectories' rewards are the
    strategy's own ``hac_tstat`` (execution lag, traded position), not contract 5's, and
    the checkpoint records how they were measured."""
    from alphafactory.decision import scoring_options
    from alphafactory.strategy import Strategy
    from inference.pipeline import scoring_provenance, train_on_panel
    from inference.training import load_checkpoint

    strategy = Strategy.model_validate({"id": "tilted", "portfolio": {"kind": "tilt"}})
    options = scoring_options(strategy)
    plan = BuildPlan(random=40, mcmc_chains=0, max_tokens=8, root_kinds=("macro",), seed=3)
    path = tmp_path / "g.pt"
    train_on_panel(panel, 100, path, plan=plan, steps=2, options=options)
    checkpoint = load_checkpoint(path)
    assert checkpoint.reward["scoring"] == scoring_provenance(options)
    assert checkpoint.reward["scoring"]["position"] == "tilt"
    assert checkpoint.reward["scoring"]["execution_lag"] == 1
    built = build_trajectories(panel.head(100), vocab, RewardSpec(), plan, options=options)
    judged = FormulaScorer(panel.head(100), config=vocab.config, options=options)
    contract = FormulaScorer(panel.head(100), config=vocab.config)
    formulas = list(built.frame.formula)
    expected = RewardSpec().rewards(metric_values(judged.score(formulas), "hac_tstat"))
    np.testing.assert_array_equal(built.frame["reward"].to_numpy(), expected)
    other = RewardSpec().rewards(metric_values(contract.score(formulas), "hac_tstat"))
    assert not np.allclose(expected, other)  # a different statistic: the choice matters
