"""Windows and lags: text accepts any integer up to max_window, tokens only the action space."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.formula import (
    OPERATORS,
    FormulaError,
    FormulaSyntaxError,
    GrammarState,
    LanguageConfig,
    Operand,
    Slot,
    Vocabulary,
    WindowError,
    check,
    from_tokens,
    parse,
    random_formula,
    to_tokens,
)
from alphafactory.formula import operators as op
from tests.formula.strategies import OPERANDS, SMALL, vocabulary

STOCHASTIC = "zscore((close - ts_min(low, 14)) / (ts_max(high, 14) - ts_min(low, 14)))"
WINDOWED = [name for name, cls in OPERATORS.items() if {Slot.WINDOW, Slot.LAG} & set(cls.signature)]


def _text(name: str, value: int | str) -> str:
    if OPERATORS[name].signature.count(Slot.VALUE) == 2:
        return f"{name}(close, volume, {value})"
    return f"{name}(close, {value})"


def test_the_14_day_stochastic_parses_as_written():
    formula = parse(STOCHASTIC)
    assert str(formula) == STOCHASTIC
    assert formula.lookback == 13
    assert check(formula, {"close": "panel", "low": "panel", "high": "panel"}) == formula


@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("value", [1, 7, 14, 21, 252, 999, 1000])
def test_every_window_and_lag_from_1_to_max_window_is_accepted(name, value):
    formula = parse(_text(name, value), OPERANDS)
    assert formula.arguments[-1] == value and str(formula) == _text(name, value)
    assert parse(_text(name, f"0{value}"), OPERANDS) == formula  # leading zero: same integer
    assert check(formula, OPERANDS) == formula


@pytest.mark.parametrize("name", WINDOWED)
@pytest.mark.parametrize("value", ["0", "1001", "20.0", "2e1", "99999999999999999999"])
def test_a_window_outside_the_range_names_the_value_and_the_range(name, value):
    slot = "lag" if Slot.LAG in OPERATORS[name].signature else "window"
    text = _text(name, value)
    with pytest.raises(WindowError) as caught:
        parse(text, OPERANDS)
    message = str(caught.value)
    assert f"{name}: the {slot} must be an integer from 1 to 1000" in message
    assert f"got {value}" in message and "max_window" in message
    assert caught.value.column == text.rindex(value) + 1


def test_check_applies_the_same_range_to_built_nodes():
    x = Operand("close")
    assert check(op.TsMax(x, 14), OPERANDS).window == 14
    assert check(op.Delay(x, 1000), OPERANDS).lag == 1000
    for node in (op.TsMax(x, 1001), op.Delta(x, 5000), op.TsCorr(x, Operand("volume"), 2000)):
        with pytest.raises(WindowError, match=r"from 1 to 1000 .*got \d+"):
            check(node, OPERANDS)


def test_max_window_is_configurable_and_holds_the_action_space():
    small = LanguageConfig(windows=(2, 5), lags=(1, 2), max_window=30)
    assert parse("ts_mean(close, 30)", OPERANDS, small).window == 30
    with pytest.raises(WindowError, match="from 1 to 30"):
        parse("ts_mean(close, 31)", OPERANDS, small)
    with pytest.raises(FormulaError, match=r"max_window=100 is below .*\(250\)"):
        LanguageConfig(max_window=100)  # the generator must never write what text refuses
    with pytest.raises(FormulaError, match="max_window must be an int"):
        LanguageConfig(max_window=True)
    assert LanguageConfig().max_window == 1000 == LanguageConfig.monthly().max_window


def test_to_tokens_with_a_vocabulary_refuses_windows_outside_the_action_space():
    vocab = Vocabulary({"close": "panel", "low": "panel", "high": "panel"})
    formula = parse(STOCHASTIC)
    assert "14" in to_tokens(formula)  # the plain spelling still works (lengths, display)
    with pytest.raises(WindowError) as caught:
        to_tokens(formula, vocab)
    message = str(caught.value)
    assert "ts_min: the generator's tokens have no window 14" in message
    assert "2, 3, 5, 10, 20, 40, 60, 120, 250" in message
    in_space = parse("ts_mean(close, 20) - delay(low, 1)")
    assert to_tokens(in_space, vocab) == to_tokens(in_space)
    with pytest.raises(WindowError, match="no lag 4; its lags are 1, 2, 3, 5"):
        to_tokens(parse("delta(close, 4)"), vocab)
    with pytest.raises(FormulaSyntaxError, match="'0.7' is not in the vocabulary"):
        to_tokens(parse("0.7 * close"), vocab)


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        (["ts_mean", "close", "1"], "no window 1"),  # "1" is a lag token, never a window
        (["delay", "close", "3"], "no lag 3"),  # "3" is a window token, not a SMALL lag
        (["ts_corr", "close", "volume", "0.5"], "no window 0.5"),
    ],
)
def test_from_tokens_keeps_to_the_action_space(tokens, fragment):
    with pytest.raises(WindowError, match=fragment) as caught:
        from_tokens(tokens, vocabulary())
    assert caught.value.column == len(tokens)


def test_the_generator_writes_only_windows_of_its_sets():
    vocab = vocabulary()
    rng = np.random.default_rng(7)
    for _ in range(200):
        formula = random_formula(vocab, rng, max_tokens=16)
        for node in formula.walk():
            for slot, value in zip(node.signature, node.arguments, strict=True):
                assert slot is not Slot.WINDOW or value in SMALL.windows
                assert slot is not Slot.LAG or value in SMALL.lags
        assert to_tokens(formula, vocab) == to_tokens(formula)
    state = GrammarState(vocab)
    for token in ["delay", "close"]:
        state.step(token)
    assert state.valid_tokens() == ["1", "2", "5"]


def test_max_window_is_not_part_of_the_fingerprint():
    """Raising the text limit must not orphan a trained generator; the tokens stay put."""
    default = Vocabulary(OPERANDS, specials=("<pad>",))
    monthly = Vocabulary(OPERANDS, LanguageConfig.monthly(), specials=("<pad>",))
    # pinned: a change here means every trained generator must be retrained
    assert default.fingerprint == "58839bf9eb86408e" and len(default) == 56
    assert monthly.fingerprint == "1cb37e73fdac7042" and len(monthly) == 55
    wider = Vocabulary(OPERANDS, LanguageConfig(max_window=5000), specials=("<pad>",))
    assert wider.fingerprint == default.fingerprint and wider.tokens == default.tokens
    described = default.to_dict()
    assert described["config"]["max_window"] == 1000
    del described["config"]["max_window"]  # a description written before max_window existed
    assert Vocabulary.from_dict(described).fingerprint == default.fingerprint
