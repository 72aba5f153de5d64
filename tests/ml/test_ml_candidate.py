"""An ML alpha's candidate text: its grammar, canonical form and identity."""

from __future__ import annotations

import hashlib

import pytest

from alphafactory.formula import formula_hash
from alphafactory.ml.candidate import (
    MLCandidate,
    MLCandidateError,
    candidate_hash,
    canonical_candidate,
    is_ml,
    parse_candidate,
)

FULL = (
    "ml:lightgbm(features=[library, operands], lags=[0, 1], horizon=2, retrain=6, folds=4, seed=7)"
)


def test_the_canonical_text_names_every_key_in_order_and_parses_back():
    candidate = parse_candidate(FULL)
    assert candidate == MLCandidate("lightgbm", ("library", "operands"), (0, 1), 2, 6, 4, 7)
    assert candidate.text == FULL
    assert parse_candidate(candidate.text) == candidate
    # spacing and omitted keys do not change the identity: defaults are written out
    assert parse_candidate("ml:ridge").text == parse_candidate(" ml:ridge( lags = [0] ) ").text
    assert parse_candidate("ml:ridge").text == (
        "ml:ridge(features=[library], lags=[0], horizon=1, retrain=12, folds=3, seed=0)"
    )


def test_the_hash_is_the_formulas_scheme_on_the_canonical_text():
    text = "ml:ridge(horizon=1)"
    canonical = canonical_candidate(text)
    assert candidate_hash(text) == hashlib.sha256(canonical.encode()).hexdigest()
    assert candidate_hash(text) != candidate_hash("ml:ridge(horizon=2)")
    assert candidate_hash("rank(close)") == formula_hash("rank(close)")
    assert canonical_candidate("rank( close )") == "rank(close)"
    assert is_ml(FULL) and not is_ml("rank(close)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ml:forest()", "unknown model 'forest'; expected one of ridge, lasso"),
        ("ml:ridge(depth=3)", "unknown key 'depth'"),
        ("ml:ridge(horizon=0)", "horizon must be >= 1, got 0"),
        ("ml:ridge(lags=[0, -1])", r"lags \[0, -1\]: expected distinct rows >= 0"),
        ("ml:ridge(features=[close, close])", "expected distinct names"),
        ("ml:ridge(horizon=1, horizon=2)", "key 'horizon' given twice"),
        ("ml:ridge(horizon=[1, 2])", r"horizon takes one integer, got \['1', '2'\]"),
        ("ml:ridge(folds=three)", r"folds takes integers, got \['three'\]"),
        ("ml:ridge(features=[library)", "a list is not closed"),
        ("ml:ridge(horizon=1", r"expected ml:MODEL\(key=value, ...\)"),
        ("ml:ridge(seed=__import__)", r"seed takes integers, got \['__import__'\]"),
        ("ml:ridge(features=[os.system])", "unexpected '.'"),
        ("ridge(horizon=1)", "an ML alpha starts with 'ml:'"),
    ],
)
def test_a_bad_text_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(MLCandidateError, match=message):
        parse_candidate(text)


def test_the_spec_carries_the_model_and_its_cross_validation():
    spec = parse_candidate(FULL).spec()
    assert (spec.model, spec.horizon, spec.folds, spec.seed) == ("lightgbm", 2, 4, 7)
