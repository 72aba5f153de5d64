"""Parser: precise errors, canonical form and hash, limits, and hostile input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphafactory.formula import (
    Constant,
    FormulaError,
    FormulaLimitError,
    FormulaSyntaxError,
    FormulaTypeError,
    LanguageConfig,
    Operand,
    UnknownOperandError,
    UnknownOperatorError,
    WindowError,
    canonical,
    check,
    formula_hash,
    parse,
)
from alphafactory.formula import operators as op
from tests.formula.strategies import OPERANDS, formulas, vocabulary


def p(text: str, **config):
    return parse(text, OPERANDS, LanguageConfig(**config) if config else LanguageConfig())


@pytest.mark.parametrize(
    ("text", "error", "column", "fragment"),
    [
        ("close +", FormulaSyntaxError, 8, "expected a number"),
        ("(close", FormulaSyntaxError, 7, "')'"),
        ("close )", FormulaSyntaxError, 7, "end of formula"),
        ("ts_mean(close)", FormulaSyntaxError, 14, "',' before argument 2"),
        ("ts_mean(close, 20, 3)", FormulaSyntaxError, 18, "')' closing ts_mean"),
        ("ts_mean(close, volume)", FormulaSyntaxError, 16, "integer window literal"),
        ("ts_mean(close, 1001)", WindowError, 16, "integer from 1 to 1000"),
        ("ts_mean(close, 20.0)", WindowError, 16, "window"),
        ("delay(close, 0)", WindowError, 14, "lag must be an integer from 1 to 1000"),
        ("rank(cpi)", FormulaTypeError, 1, "macro series"),
        ("zscore(cpi + 1)", FormulaTypeError, 1, "per-asset panel"),
        ("close + sector", FormulaTypeError, 7, "group field"),
        ("group_demean(close, volume)", FormulaTypeError, 1, "group field"),
        ("group_demean(close, 1)", FormulaSyntaxError, 21, "group field name"),
        ("abs(2)", FormulaTypeError, 1, "constant"),
        ("1 + 2", FormulaTypeError, 3, "two constants"),
        ("3", FormulaTypeError, 1, "scalar"),
        ("clsoe * 2", UnknownOperandError, 1, "did you mean close"),
        ("rank + 1", UnknownOperandError, 1, "call it as rank(...)"),
        ("rnak(close)", UnknownOperatorError, 1, "rank"),
        ("add(close, volume)", UnknownOperatorError, 1, "unknown operator"),
        ("close $ 2", FormulaSyntaxError, 7, "unexpected character '$'"),
        ("close.shift", FormulaSyntaxError, 6, "'.'"),
        ("2close", FormulaSyntaxError, 1, "malformed number"),
        ("1e999 * close", FormulaSyntaxError, 1, "out of range"),
        ("winsorize(close, -1)", FormulaSyntaxError, 18, "a number k"),
        ("winsorize(close, 0)", FormulaTypeError, 1, "positive"),
        ("", FormulaSyntaxError, 1, "expected a number"),
    ],
)
def test_errors_say_where_and_what(text, error, column, fragment):
    with pytest.raises(error) as caught:
        p(text)
    assert caught.value.column == column, str(caught.value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, FormulaError)


def test_syntax_error_lists_what_was_expected():
    with pytest.raises(FormulaSyntaxError) as caught:
        p("close * (volume")
    assert caught.value.expected == ("')'",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("volume+close", "close + volume"),
        ("close - (volume - returns)", "close - (volume - returns)"),
        ("(close - volume) - returns", "close - volume - returns"),
        ("close / (volume * returns)", "close / (returns * volume)"),
        ("-3*-close", "-3 * -close"),
        ("-(close + volume)", "-(close + volume)"),
        ("- (3) * close", "-3 * close"),
        ("1e-5 + close * 0.5", "0.5 * close + 1e-05"),
        ("max(volume, close) - min(close, volume)", "max(close, volume) - min(close, volume)"),
        ("ts_corr(volume, close, 10)", "ts_corr(close, volume, 10)"),
        ("ts_cov(volume,close,10)", "ts_cov(close, volume, 10)"),
        ("cpi * close", "close * cpi"),
        ("winsorize(zscore(close), 2.50)", "winsorize(zscore(close), 2.5)"),
        ("group_demean( close ,sector )", "group_demean(close, sector)"),
    ],
)
def test_canonical_text(text, expected):
    formula = p(text)
    assert str(formula) == expected
    assert p(expected) == formula


def test_commuted_forms_are_equal_with_equal_hash():
    a = p("rank(ts_corr(close, volume, 10)) * (returns + cpi)")
    b = p("(cpi + returns) * rank(ts_corr(volume, close, 10))")
    assert a == b
    assert hash(a) == hash(b)
    assert formula_hash(a) == formula_hash(b)
    assert p("close - volume") != p("volume - close")


def test_hash_is_sha256_of_canonical_text():
    text = "rank(close - ts_mean(close, 20))"
    assert formula_hash(p(text)) == hashlib.sha256(text.encode()).hexdigest()
    assert formula_hash(text) == "68dce9612132d1a12001d3773ec253ac2ad8c3129e683e6d1383491ac187ba58"
    assert canonical("ts_mean( close,20 )") == "ts_mean(close, 20)"


def test_types_and_lookback():
    assert p("close * cpi").kind == "panel"
    assert p("ts_mean(cpi, 20) - cpi").kind == "macro"
    assert p("delay(close, 5)").lookback == 5
    assert p("ts_mean(close, 20)").lookback == 19
    assert p("ts_mean(delay(close, 5), 20)").lookback == 24
    assert p("ts_corr(delay(close, 5), ts_mean(volume, 10), 20)").lookback == max(5, 9) + 19
    assert p("rank(close) + ts_max(close, 3)").lookback == 2


def test_operands_without_schema_default_to_panel_and_group_slot():
    formula = parse("group_demean(a + b, g)")
    assert formula.group == Operand("g")
    assert formula.group.kind == "group"
    assert formula.kind == "panel"


def test_check_applies_the_parser_rules_to_built_nodes():
    x = Operand("close")
    assert check(op.TsMean(x, 20), OPERANDS) == p("ts_mean(close, 20)")
    with pytest.raises(WindowError):
        check(op.TsMean(x, 1001), OPERANDS)
    with pytest.raises(UnknownOperandError):
        check(op.TsMean(Operand("nope"), 20), OPERANDS)
    with pytest.raises(FormulaTypeError):
        check(op.Rank(Operand("cpi")), OPERANDS)  # built as a panel, bound as a macro series
    with pytest.raises(FormulaTypeError):
        check(Constant(1.0), OPERANDS)
    with pytest.raises(UnknownOperatorError):
        check(op.Rank(x), OPERANDS, LanguageConfig(operators=("abs",)))
    with pytest.raises(FormulaSyntaxError):
        check("close", OPERANDS)  # type: ignore[arg-type]


def test_limits_name_the_limit_and_the_value():
    with pytest.raises(FormulaLimitError) as caught:
        p("close + volume", max_length=10)
    assert (caught.value.limit, caught.value.value, caught.value.maximum) == ("max_length", 14, 10)
    assert "max_length=10" in str(caught.value) and "14" in str(caught.value)
    with pytest.raises(FormulaLimitError) as caught:
        p("abs(abs(abs(close)))", max_depth=3)
    assert caught.value.limit == "max_depth"
    with pytest.raises(FormulaLimitError) as caught:
        p(" + ".join(["close"] * 10), max_nodes=15, max_depth=16)
    assert (caught.value.limit, caught.value.value) == ("max_nodes", 16)
    assert p("abs(abs(close))", max_depth=3).depth == 3


def test_operator_subset_is_enforced():
    with pytest.raises(UnknownOperatorError):
        p("close / volume", operators=("add", "rank"))
    assert p("rank(close + volume)", operators=("add", "rank")).depth == 3


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "().__class__",
        "close.__class__.__bases__",
        "eval('1')",
        "lambda: 1",
        "close; import os",
        "[c for c in ()]",
        "close if 1 else volume",
        "close ** 2",
        "\x00",
        "ｃｌｏｓｅ",
    ],
)
def test_python_is_not_spoken_here(text):
    with pytest.raises(FormulaError):
        p(text)


def _refusal(call) -> FormulaError:
    with pytest.raises(FormulaError) as caught:
        call()
    return caught.value


def test_huge_and_deep_inputs_are_stopped_by_a_limit():
    # Each is refused by a named limit checked before the work it guards (tokenizing 10 MB,
    # recursing 10k levels), so the refusal is cheap by construction: no timing needed.
    error = _refusal(lambda: p("close + " * 1_250_000 + "close"))  # 10 MB
    assert error.limit == "max_length"
    error = _refusal(lambda: p("(" * 10_000 + "close" + ")" * 10_000))
    assert error.limit == "max_length"
    # with the length limit out of the way, depth stops it (no recursion blow-up)
    error = _refusal(lambda: p("(" * 10_000 + "close" + ")" * 10_000, max_length=10**6))
    assert error.limit == "max_depth"
    assert error.value == error.maximum + 1  # it stopped one level past the limit
    error = _refusal(lambda: p("-" * 100_000 + "close", max_length=10**6))
    assert error.limit == "max_depth"
    assert error.value == error.maximum + 1  # it stopped one level past the limit
    error = _refusal(lambda: p("abs(" * 10_000 + "close" + ")" * 10_000, max_length=10**6))
    assert error.limit == "max_depth"
    assert error.value == error.maximum + 1  # it stopped one level past the limit
    error = _refusal(lambda: p("close+" * 100_000 + "close", max_length=10**6, max_nodes=10**6))
    assert error.limit == "max_depth"
    assert error.value == error.maximum + 1
    # a 5-million-digit number is refused by its length, never converted (that is quadratic)
    error = _refusal(lambda: p("9" * 5_000_000, max_length=10**7))
    assert isinstance(error, FormulaSyntaxError)
    assert "number literal longer than" in str(error) and error.column == 1


VOCAB = vocabulary()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas(VOCAB, max_tokens=24))
def test_round_trip_through_text(formula):
    text = str(formula)
    again = parse(text, OPERANDS, VOCAB.config)
    assert again == formula
    assert str(again) == text
    assert formula_hash(again) == formula_hash(formula)


ALPHABET = st.sampled_from(
    ["close", "volume", "cpi", "sector", "rank", "ts_mean", "ts_corr", "winsorize", "group_demean"]
    + ["(", ")", ",", "+", "-", "*", "/", " ", "2", "20", "0.5", "1e3", ".", "e", "'", "_", "é"]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(ALPHABET, max_size=30).map("".join)))
def test_fuzz_only_formula_errors_escape(text):
    try:
        formula = parse(text, OPERANDS)
    except FormulaError:
        return
    assert parse(str(formula), OPERANDS) == formula


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_non_text_is_a_formula_error(value):
    with pytest.raises(FormulaError):
        parse(value, OPERANDS)  # type: ignore[arg-type]
