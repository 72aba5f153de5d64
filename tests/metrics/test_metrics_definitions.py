"""Alpha definitions: the grammar, canonical form, evaluation, errors and fuzzing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphafactory.metrics import KNOWN_METRICS, DefinitionError, factor_metrics, parse_definition
from alphafactory.metrics.definitions import MAX_DEPTH, And, Compare, Metric, Not, Number, Or

GOOD = {
    "ls_sharpe": 0.9,
    "ls_max_drawdown": 0.08,
    "ls_annual_return": 0.25,
    "hac_tstat": 3.0,
    "turnover": 0.3,
    "ic": 0.02,
    "n_periods": 120,
}


@pytest.mark.parametrize(
    ("text", "canonical", "expected"),
    [
        (
            "ls_sharpe > 0.7 and ls_max_drawdown < 0.10",
            "ls_sharpe > 0.7 and ls_max_drawdown < 0.1",
            True,
        ),
        ("ls_annual_return > 0.2", "ls_annual_return > 0.2", True),
        ("hac_tstat >= 3", "hac_tstat >= 3", True),
        ("hac_tstat > 3", "hac_tstat > 3", False),
        ("CAGR > 20%", "ls_annual_return > 0.2", True),
        ("Sharpe > 0.7 AND max_drawdown < 10%", "ls_sharpe > 0.7 and ls_max_drawdown < 0.1", True),
        (
            "(ls_sharpe > 1 or hac_tstat >= 3) and not turnover > 0.5",
            "(ls_sharpe > 1 or hac_tstat >= 3) and not (turnover > 0.5)",
            True,
        ),
        ("0.1 < turnover <= 0.5", "0.1 < turnover and turnover <= 0.5", True),
        ("ic != 0 and n_periods == 120", "ic != 0 and n_periods == 120", True),
        ("ls_max_drawdown < -0.1 or ic > +.01", "ls_max_drawdown < -0.1 or ic > 0.01", True),
        ("((ls_sharpe > 1e-3))", "ls_sharpe > 0.001", True),
        ("ls_sharpe > ls_max_drawdown", "ls_sharpe > ls_max_drawdown", True),
        ("not not ic < 0", "not (not (ic < 0))", False),
    ],
)
def test_valid_definitions(text, canonical, expected):
    definition = parse_definition(text)
    assert str(definition) == canonical
    assert parse_definition(canonical) == definition
    assert definition.evaluate(GOOD) is expected


def test_metrics_names_the_canonical_metrics_used():
    definition = parse_definition("sharpe > 1 and (cagr > 0.1 or tstat > 2)")
    assert definition.metrics == {"ls_sharpe", "ls_annual_return", "hac_tstat"}


def test_nan_metric_never_qualifies():
    metrics = dict(GOOD, ls_sharpe=float("nan"))
    assert not parse_definition("ls_sharpe > 0.7").evaluate(metrics)
    assert not parse_definition("not ls_sharpe > 0.7").evaluate(metrics)
    assert not parse_definition("ls_sharpe > 0.7 or hac_tstat > 2").evaluate(metrics)
    assert parse_definition("hac_tstat > 2").evaluate(metrics)  # an unused NaN is harmless


def test_evaluates_factor_metrics_and_arrays():
    rng = np.random.default_rng(0)
    metrics = factor_metrics(
        rng.normal(size=(40, 6)), rng.normal(0, 0.05, (40, 6)), periods_per_year=12
    )
    definition = parse_definition("n_periods >= 39 and periods_per_year == 12")
    assert definition.evaluate(metrics) and definition.evaluate(metrics.to_dict())
    table = {"ls_sharpe": np.array([0.5, 1.0, np.nan]), "hac_tstat": np.array([4.0, 1.0, 9.0])}
    got = parse_definition("ls_sharpe > 0.7 or hac_tstat > 3").evaluate_batch(table)
    assert got.tolist() == [True, True, False]


def test_missing_or_non_numeric_metric_is_a_definition_error():
    with pytest.raises(DefinitionError, match="'hac_tstat' is not among the metrics given"):
        parse_definition("hac_tstat > 3").evaluate({"ls_sharpe": 1.0})
    with pytest.raises(DefinitionError, match="not a number"):
        parse_definition("hac_tstat > 3").evaluate({"hac_tstat": "high"})


def test_unknown_metric_names_it_and_lists_the_known_ones():
    with pytest.raises(DefinitionError) as caught:
        parse_definition("ls_sharpe > 1 and sortino > 2")
    message = str(caught.value)
    assert "unknown metric 'sortino'" in message
    assert all(name in message for name in KNOWN_METRICS)
    assert caught.value.column == 19


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("ls_sharpe >", 12, "expected a metric name or a number, found the end"),
        ("ls_sharpe > 0.7 and", 20, "expected a metric name or a number"),
        ("(ls_sharpe > 1", 15, "expected ')'"),
        ("ls_sharpe > 1)", 14, "expected 'and', 'or' or the end"),
        ("ls_sharpe = 1", 11, "unexpected character '=' (use '==')"),
        ("ls_sharpe", 10, "expected a comparison operator"),
        ("1 < 2", 1, "a comparison must name a metric"),
        ("ls_sharpe > 1e999", 13, "not finite"),
        ("ls_sharpe > 1 && ic > 0", 15, "unexpected character '&'"),
        ("__import__('os')", 12, 'unexpected character "\'"'),
        ("__import__ > 0", 1, "unknown metric '__import__'"),
        ("().__class__", 3, "unexpected character '.'"),
        ("() > 0", 2, "expected a metric name or a number, found ')'"),
        ("ls_sharpe > and", 13, "found 'and'"),
        ("", 1, "found the end"),
    ],
)
def test_syntax_errors_say_where(text, column, fragment):
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    assert caught.value.column == column
    assert fragment in str(caught.value)
    assert f"column {column}" in str(caught.value)


def test_oversized_input_is_rejected_by_its_length_before_it_is_read():
    with pytest.raises(DefinitionError, match="10000001 characters; the limit is") as caught:
        parse_definition("x" * 10_000_001)
    assert caught.value.column is None  # refused before tokenizing: no position inside it


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("(" * 4_000 + "ic > 0" + ")" * 4_000, MAX_DEPTH + 1),
        ("not " * 2_000 + "ic > 0", 4 * MAX_DEPTH + 1),
    ],
    ids=["4k parentheses", "2k nots"],
)
def test_deep_nesting_stops_at_the_depth_limit_not_at_the_bottom(text, column):
    # The error points at the first level past the limit: the parser gave up there instead of
    # descending thousands of levels (which would cost time and Python's stack).
    with pytest.raises(DefinitionError, match=f"deeper than {MAX_DEPTH} levels") as caught:
        parse_definition(text)
    assert caught.value.column == column


def test_non_text_is_rejected():
    with pytest.raises(DefinitionError, match="a definition is text"):
        parse_definition(b"ic > 0")  # type: ignore[arg-type]


_ALPHABET = "abcdeiklnoprstuvwx_ ()<>=!.%+-0123456789&|'\"\\\n\t"
_WORDS = [
    "and",
    "or",
    "not",
    "(",
    ")",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "-",
    "1",
    "0.5",
    "10%",
    "1e3",
    "ls_sharpe",
    "ic",
    "turnover",
    "sharpe",
    "bogus",
    "=",
    "%",
    ".",
]


@settings(max_examples=400, deadline=None, database=None)
@given(
    st.one_of(
        st.text(_ALPHABET, max_size=60),
        st.text(max_size=30),
        st.lists(st.sampled_from(_WORDS), max_size=15).map(" ".join),
    )
)
def test_fuzz_only_definition_errors_escape_and_valid_ones_round_trip(text):
    try:
        definition = parse_definition(text)
    except DefinitionError:
        return
    assert parse_definition(str(definition)) == definition
    assert str(parse_definition(str(definition))) == str(definition)
    definition.evaluate(dict.fromkeys(KNOWN_METRICS, 0.5))


_operand = st.one_of(
    st.sampled_from(KNOWN_METRICS).map(Metric),
    st.floats(-1e6, 1e6, allow_nan=False).map(Number),
)
_compare = st.builds(
    Compare,
    st.sampled_from(KNOWN_METRICS).map(Metric),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    _operand,
)
_trees = st.recursive(
    _compare,
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda t: And(tuple(t))),
        st.lists(inner, min_size=2, max_size=3).map(lambda t: Or(tuple(t))),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, database=None)
@given(_trees)
def test_canonical_form_round_trips(tree):
    text = str(tree)
    definition = parse_definition(text)
    assert str(definition) == str(parse_definition(str(definition)))
    values = dict.fromkeys(KNOWN_METRICS, 0.25)
    assert definition.evaluate(values) == parse_definition(text).evaluate(values)
