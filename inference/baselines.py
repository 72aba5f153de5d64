"""The generator baselines a walk-forward compares the trained model with, at equal
candidates: formulas drawn at random from the grammar, and the known-factor library.

Both write formulas in the decision panel's own vocabulary, so they read what the model
reads and nothing else; both are seeded by the request, so a request generated again
writes the same formulas.

- ``random``: walks over the grammar's valid tokens (``formula.random_formula``, the
  same walk the generator's random trajectories take), distinct formulas only.
- ``library``: the known factors valid in the vocabulary (``alphafactory.library``), then,
  to reach the same number of candidates, their variations (a window, an operator or an
  operand changed: ``formula.mutation.mutate``), breadth first: one move from each known
  factor in turn, then the variations of those variations beside them, so every known
  factor is explored about equally and a factor's few one-move neighbours, once found,
  stop costing draws that only repeat them (one-move variations alone drew 4.6 per
  distinct formula at 2,000 candidates). A vocabulary with no known factor gives
  the random walk's formulas instead, reported by ``source``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from alphafactory.formula import Kind, Node, Vocabulary, formula_hash, random_formula
from alphafactory.formula.mutation import mutate
from alphafactory.library import known_factors

SOURCES = ("random", "library")


def random_candidates(
    vocab: Vocabulary,
    n: int,
    rng: np.random.Generator,
    *,
    max_tokens: int,
    root_kinds: Iterable[Kind],
    exclude: Iterable[str] = (),
) -> list[Node]:
    """Up to ``n`` distinct random formulas (hashes in ``exclude`` count as seen)."""
    roots = frozenset(root_kinds)
    seen, found = set(exclude), []
    for _ in range(20 * n + 100):  # the grammar may hold fewer than n distinct formulas
        if len(found) >= n:
            break
        formula = random_formula(vocab, rng, max_tokens=max_tokens, root_kinds=roots)
        if (key := formula_hash(formula)) not in seen:
            seen.add(key)
            found.append(formula)
    return found


def library_candidates(
    vocab: Vocabulary,
    n: int,
    rng: np.random.Generator,
    *,
    max_tokens: int,
    root_kinds: Iterable[Kind],
    exclude: Iterable[str] = (),
) -> list[Node]:
    """The known factors of ``root_kinds``, then their variations, up to ``n`` distinct."""
    roots = frozenset(root_kinds)
    seeds = [node for _, node in known_factors(vocab, max_tokens=max_tokens) if node.kind in roots]
    if not seeds:
        return random_candidates(
            vocab, n, rng, max_tokens=max_tokens, root_kinds=roots, exclude=exclude
        )
    seen, found = set(exclude), []

    def add(formula: Node) -> bool:
        if len(found) < n and (key := formula_hash(formula)) not in seen:
            seen.add(key)
            found.append(formula)
            return True
        return False

    for node in seeds:
        add(node)
    # a breadth-first walk out from the library: each round varies every formula in the
    # queue once and queues each new variation behind them
    queue = deque(seeds)
    for _ in range(20 * n):
        if len(found) >= n:
            break
        parent = queue.popleft()
        child = mutate(parent, vocab, rng, max_tokens=max_tokens)
        if add(child):
            queue.append(child)
        queue.append(parent)
    return found
