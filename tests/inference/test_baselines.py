"""The generator baselines: distinct, valid, reproducible formulas of the asked kinds."""

from __future__ import annotations

import numpy as np

from alphafactory.data import synthetic_market
from alphafactory.formula import Kind, canonical, formula_hash
from alphafactory.formula.mutation import mutate
from alphafactory.library import known_factors
from inference.baselines import library_candidates, random_candidates
from inference.pipeline import panel_vocabulary

MARKET = synthetic_market(n_assets=5, n_dates=40, n_macro=3, seed=2, frequency="M")
VOCAB = panel_vocabulary(MARKET.panel)
PANEL = frozenset({Kind("panel")})


def test_random_candidates_are_distinct_valid_reproducible_and_respect_exclude():
    first = random_candidates(VOCAB, 50, np.random.default_rng(1), max_tokens=10, root_kinds=PANEL)
    again = random_candidates(VOCAB, 50, np.random.default_rng(1), max_tokens=10, root_kinds=PANEL)
    assert [str(f) for f in first] == [str(f) for f in again]
    hashes = [formula_hash(f) for f in first]
    assert len(first) == 50 and len(set(hashes)) == 50
    assert all(f.kind == Kind("panel") and canonical(str(f)) == str(f) for f in first)
    excluded = random_candidates(
        VOCAB, 50, np.random.default_rng(1), max_tokens=10, root_kinds=PANEL, exclude=hashes[:5]
    )
    assert not set(hashes[:5]) & {formula_hash(f) for f in excluded}


def test_library_candidates_start_with_every_known_factor_then_vary_them():
    known = [str(node) for _, node in known_factors(VOCAB, max_tokens=12) if node.kind in PANEL]
    assert len(known) >= 5
    found = library_candidates(VOCAB, 80, np.random.default_rng(0), max_tokens=12, root_kinds=PANEL)
    texts = [str(f) for f in found]
    assert texts[: len(known)] == known
    assert len(set(texts)) == 80 and all(f.kind == Kind("panel") for f in found)
    few = library_candidates(VOCAB, 3, np.random.default_rng(0), max_tokens=12, root_kinds=PANEL)
    assert [str(f) for f in few] == known[:3]


def test_the_library_walk_goes_on_past_the_one_move_neighbours(monkeypatch):
    # one-move variations of a few known factors run out: drawn round-robin, 1,000 of them
    # took 3,373 draws; walking on from the variations found keeps almost every draw new
    import inference.baselines as baselines

    draws = []

    def counted(formula, *args, **kwargs):
        draws.append(formula)
        return mutate(formula, *args, **kwargs)

    monkeypatch.setattr(baselines, "mutate", counted)
    found = library_candidates(
        VOCAB, 1000, np.random.default_rng(0), max_tokens=12, root_kinds=PANEL
    )
    assert len({formula_hash(f) for f in found}) == 1000
    assert len(draws) < 1.5 * 1000
    known = {str(node) for _, node in known_factors(VOCAB, max_tokens=12)}
    varied = {str(parent) for parent in draws}
    assert known & {str(f) for f in found} <= varied  # every known factor was varied
    assert varied - known  # and so were variations of them
