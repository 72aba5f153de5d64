"""Strategy files: the bundled default loads; every bad key or value is named."""

from __future__ import annotations

import pytest

from alphafactory.metrics import parse_definition
from alphafactory.strategy import BUNDLED_DIR, StrategyError, load_strategies, load_strategy


def test_the_bundled_strategy_is_a_monthly_macro_allocation_on_core_cpi():
    (strategy,) = load_strategies(BUNDLED_DIR)
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
        ('id = "s"\n[combination]\nmethod = "best"', "combination.method: Input should be"),
        ('id = "s"\n[alpha]\ndefinition = "sharpe >>"', "alpha.definition: Value error"),
        ('id = "s"\n[alpha]\ntarget = "hac_tstat"', "target must look like METRIC=NUMBER"),
        ('id = "s"\n[portfolio]\nkind = "short_only"', "portfolio.kind: Input should be"),
        ('id = "s"\n[formulas]\nroot_kinds = ["bonds"]', "formulas.root_kinds.0: Input should"),
        ("id = ", "is not valid TOML"),
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
