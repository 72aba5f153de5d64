"""Strategy files: the bundled default loads; every bad key or value is named."""

from __future__ import annotations

import pytest

from alphafactory.metrics import parse_definition
from alphafactory.strategy import (
    BUNDLED_DIR,
    Strategy,
    StrategyError,
    load_strategies,
    load_strategy,
)


def test_the_bundled_strategy_is_a_monthly_macro_allocation_on_core_cpi():
    strategy, _ = load_strategies(BUNDLED_DIR)  # and the daily equity example, below
    assert strategy.id == "macro_allocation" and strategy.active
    assert strategy.formulas.root_kinds == ("macro",)
    assert strategy.triggered_by("us_core_cpi") and not strategy.triggered_by("us_aaa")
    assert strategy.portfolio.kind == "tilt"
    assert str(parse_definition(strategy.alpha.definition)) == "hac_tstat >= 2 or hac_tstat <= -2"


def test_defaults_fill_every_section_but_the_id(tmp_path):
    path = tmp_path / "minimal.toml"
    path.write_text('id = "minimal"\n')
    strategy = load_strategy(path)
    assert strategy.combination.method == "ic_weighted" and strategy.pool.size == 25
    assert strategy.triggers.series == () and not strategy.triggered_by("us_core_cpi")


@pytest.mark.parametrize(
    "text, message",
    [
        ('id = "a b"', "id: Value error, id must be 1-64 letters"),
        ("", "id: Field required"),
        ('id = "s"\n[pool]\nsize = 0', "pool.size: Input should be greater than or equal to 1"),
        ('id = "s"\n[pool]\nsise = 3', "pool.sise: Extra inputs are not permitted (got 3)"),
        (
            'id = "s"\n[combination]\nmethod = "best"',
            "combination.method: Value error, combination method 'best' is not one of equal,",
        ),
        ('id = "s"\n[alpha]\ndefinition = "sharpe >>"', "alpha.definition: Value error"),
        ('id = "s"\n[alpha]\ntarget = "hac_tstat"', "target must look like METRIC=NUMBER"),
        (
            'id = "s"\n[portfolio]\nkind = "short_only"',
            "portfolio.kind: Value error, portfolio kind 'short_only' is not one of long_short,",
        ),
        ('id = "s"\n[formulas]\nroot_kinds = ["bonds"]', "formulas.root_kinds.0: Input should"),
        ("id = ", "is not valid TOML"),
        ('id = "s"\n[ml]\nmodels = ["forest"]', "ml.models.0: Input should be 'ridge'"),
        ('id = "s"\n[ml]\nmodels = ["ridge"]\nlags = [-1]', "lags [-1]: expected distinct"),
        ('id = "s"\n[ml]\nhorizon = 0', "ml.horizon: Input should be greater than or equal"),
        (
            'id = "s"\n[variants]\nnames = ["lightgbm"]',
            "variants ['lightgbm'] need their models in [ml] models",
        ),
    ],
)
def test_a_bad_file_is_named_with_its_key_and_value(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StrategyError, match="bad.toml") as info:
        load_strategy(path)
    assert message in str(info.value)


def test_a_missing_file_and_a_duplicated_id_are_errors(tmp_path):
    with pytest.raises(StrategyError, match="does not exist"):
        load_strategy(tmp_path / "nope.toml")
    for name in ("one", "two"):
        (tmp_path / f"{name}.toml").write_text('id = "same"\n')
    with pytest.raises(StrategyError, match=r"strategy ids defined twice in .*\['same'\]"):
        load_strategies(tmp_path)


STOCHASTIC = "zscore((close - ts_min(low, 14)) / (ts_max(high, 14) - ts_min(low, 14)))"


def test_included_formulas_load_as_canonical_texts_once_each(tmp_path):
    path = tmp_path / "own.toml"
    path.write_text(
        'id = "own"\n[formulas]\nroot_kinds = ["panel"]\ninclude = [\n'
        f'  "{STOCHASTIC}",\n'
        '  "rank( -ts_mean(returns,5) )",\n'
        '  "rank(-ts_mean(returns, 5))",\n'  # the same formula spelled differently
        '  "ts_corr(volume, close, 300) * cpi",\n'
        "]\n"
    )
    strategy = load_strategy(path)
    assert strategy.formulas.include == (
        STOCHASTIC,
        "rank(-ts_mean(returns, 5))",
        "cpi * ts_corr(close, volume, 300)",
    )
    assert load_strategies(BUNDLED_DIR)[0].formulas.include == ()


@pytest.mark.parametrize(
    "formula, message",
    [
        ("ts_mean(close, 5000)", "the window must be an integer from 1 to 1000"),
        ("ts_mean(close, 0)", "got 0"),
        ("delay(close, 2.5)", "the lag must be an integer"),
        ("rank(close", "expected ')'"),
        ("rnak(close)", "unknown operator 'rnak'"),
        ("", "expected a number"),
        ("1 + 2", "two constants"),
    ],
)
def test_a_bad_included_formula_names_file_key_formula_and_reason(tmp_path, formula, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'id = "s"\n[formulas]\ninclude = ["rank(close)", "{formula}"]\n')
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    text = str(info.value)
    assert str(path) in text and "formulas.include.1: Value error, not a formula" in text
    assert message in text and f"(got {formula!r})" in text


def test_included_formulas_must_be_strings(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('id = "s"\n[formulas]\ninclude = [3]\n')
    with pytest.raises(StrategyError, match="formulas.include.0: Input should be a valid string"):
        load_strategy(path)


def test_a_trigger_series_the_bundled_data_lacks_fails_at_load(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('id = "typo"\n[triggers]\nseries = ["us_core_cpi", "us_cor_cpi"]\n')
    with pytest.raises(StrategyError) as raised:
        load_strategy(path)
    message = str(raised.value)
    assert "typo.toml" in message and "['us_cor_cpi']" in message
    assert "us_core_cpi" in message  # the known series are listed
    assert 'data = "store"' in message  # and what to do for series of one's own


def test_the_store_universe_triggers_on_any_loaded_series(tmp_path):
    path = tmp_path / "own.toml"
    path.write_text('id = "own"\n[universe]\ndata = "store"\n[triggers]\nseries = ["my_pmi"]\n')
    assert load_strategy(path).triggered_by("my_pmi")
    path.write_text('id = "own"\n[universe]\ndata = "somewhere"\n')
    with pytest.raises(StrategyError, match="universe.data"):
        load_strategy(path)


def test_a_universe_group_needs_its_codes(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('id = "g"\n[universe]\ndata = "store"\ngroup = "sector"\n')
    with pytest.raises(
        StrategyError, match=r"universe.group \('sector'\) and universe.group_codes"
    ):
        load_strategy(path)
    path.write_text('id = "g"\n[universe]\ndata = "store"\ngroup = "sector"\ngroup_codes = [2]\n')
    assert load_strategy(path).universe.group_codes == (2,)


def test_the_bundled_equity_example_has_a_generator_of_its_own(tmp_path):
    strategies = {s.id: s for s in load_strategies(BUNDLED_DIR)}
    daily = strategies["sp500_daily"]
    assert daily.generation.generator == "sp500_daily" and daily.triggers.market == "period_close"
    assert daily.formulas.root_kinds == ("panel",) and len(daily.universe.assets) == 20
    assert strategies["macro_allocation"].generation.generator == ""
    assert not set(daily.universe.assets) & set(strategies["macro_allocation"].universe.assets)
    path = tmp_path / "bad.toml"
    path.write_text('id = "x"\n[generation]\ngenerator = "Has Space"\n')
    with pytest.raises(StrategyError, match="generation.generator"):
        load_strategy(path)


def test_ml_models_become_one_candidate_text_each(tmp_path):
    path = tmp_path / "ml.toml"
    path.write_text(
        'id = "s"\n[ml]\nmodels = ["ridge", "lightgbm", "ridge"]\n'
        'features = ["library", "us_infl"]\nlags = [0, 1]\nretrain_every = 6\n'
    )
    ml = load_strategy(path).ml
    assert ml.candidates() == tuple(
        f"ml:{model}(features=[library, us_infl], lags=[0, 1], horizon=1, retrain=6, "
        "folds=3, seed=0)"
        for model in ("ridge", "lightgbm")
    )
    assert Strategy.model_validate({"id": "s"}).ml.candidates() == ()  # none by default
