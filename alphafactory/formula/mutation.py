"""Local moves on expression trees: the proposals of Metropolis-Hastings formula search.

``mutate(formula, vocab, rng)`` returns a different, valid formula one step away:

* ``subtree``: a random node is replaced by a fresh random subtree of the same kind;
* ``operator``: an operator is swapped for another with the same signature and typing
  (``ts_mean`` <-> ``ts_std``, ``+`` <-> ``-``, ``rank`` <-> ``zscore``...);
* ``literal``: a window, lag, threshold or constant takes another allowed value.

Every result passes ``check`` against the vocabulary's operands and language limits, so a
chain never leaves the language. The moves are close to symmetric (each picks uniformly
among its candidates), which is what the Metropolis acceptance ratio assumes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from alphafactory.formula.check import check
from alphafactory.formula.errors import FormulaError
from alphafactory.formula.grammar import random_formula
from alphafactory.formula.nodes import Constant, Kind, Node, Operand, Slot
from alphafactory.formula.operators import OPERATORS
from alphafactory.formula.tokens import Vocabulary, to_tokens

MOVES = ("subtree", "operator", "literal")
_LITERAL_SLOTS = (Slot.WINDOW, Slot.LAG, Slot.K)

Path = tuple[int, ...]  # argument positions from the root down to a node


def nodes_with_paths(node: Node, path: Path = ()) -> Iterator[tuple[Path, Node]]:
    """Every node of the tree in prefix order, with its path."""
    yield path, node
    for position, argument in enumerate(node.arguments):
        if isinstance(argument, Node) and not isinstance(node, Operand | Constant):
            yield from nodes_with_paths(argument, (*path, position))


def replace_argument(node: Node, path: Path, position: int | None, new) -> Node:
    """A copy of ``node`` with the node at ``path`` replaced by ``new`` (``position`` None)
    or with that node's argument ``position`` replaced by ``new``. Raises
    ``FormulaError`` if the result is ill-typed."""
    if not path:
        if position is None:
            return new
        arguments = list(node.arguments)
        arguments[position] = new
        return type(node)(*arguments)
    arguments = list(node.arguments)
    arguments[path[0]] = replace_argument(arguments[path[0]], path[1:], position, new)
    return type(node)(*arguments)


def mutate(
    formula: Node,
    vocab: Vocabulary,
    rng: np.random.Generator,
    *,
    max_tokens: int = 24,
    attempts: int = 32,
) -> Node:
    """A valid formula one move away from ``formula`` (see the module doc). Falls back to a
    fresh random formula of the same kind if no move succeeds in ``attempts`` tries."""
    for _ in range(attempts):
        move = MOVES[rng.integers(len(MOVES))]
        try:
            candidate = _MOVE_FUNCTIONS[move](formula, vocab, rng, max_tokens)
        except FormulaError:
            continue
        if candidate is None or candidate.canonical == formula.canonical:
            continue
        try:
            candidate = check(candidate, vocab.operands, vocab.config)
        except FormulaError:
            continue
        if len(to_tokens(candidate)) <= max_tokens:
            return candidate
    return random_formula(vocab, rng, max_tokens=max_tokens, root_kinds={formula.kind})


def _subtree_move(formula, vocab, rng, max_tokens) -> Node | None:
    places = list(nodes_with_paths(formula))
    path, old = places[rng.integers(len(places))]
    if old.kind is Kind.GROUP:
        return None
    if old.kind is Kind.SCALAR:
        choices = [c for c in vocab.config.constants if not _same_constant(old, c)]
        return replace_argument(formula, path, None, Constant(float(rng.choice(choices))))
    budget = max_tokens - len(to_tokens(formula)) + len(to_tokens(old))
    if budget < 1:
        return None
    new = random_formula(vocab, rng, max_tokens=min(budget, max_tokens), root_kinds={old.kind})
    return replace_argument(formula, path, None, new)


def _operator_move(formula, vocab, rng, max_tokens) -> Node | None:
    places = [(p, n) for p, n in nodes_with_paths(formula) if n.name in vocab.operators]
    if not places:
        return None
    path, old = places[rng.integers(len(places))]
    peers = [
        OPERATORS[name]
        for name in vocab.operators
        if name != old.name and OPERATORS[name].signature == old.signature
    ]
    if not peers:
        return None
    peer = peers[rng.integers(len(peers))]
    return replace_argument(formula, path, None, peer(*old.arguments))


def _literal_move(formula, vocab, rng, max_tokens) -> Node | None:
    config = vocab.config
    allowed = {Slot.WINDOW: config.windows, Slot.LAG: config.lags, Slot.K: config.winsorize_ks}
    places = [
        (path, node, position, slot)
        for path, node in nodes_with_paths(formula)
        for position, slot in enumerate(node.signature)
        if slot in _LITERAL_SLOTS
    ]
    if not places:
        return None
    path, node, position, slot = places[rng.integers(len(places))]
    current = node.arguments[position]
    choices = [v for v in allowed[slot] if v != current]
    if not choices:
        return None
    value = choices[rng.integers(len(choices))]
    return replace_argument(formula, path, position, value)


def _same_constant(node: Node, value: float) -> bool:
    return isinstance(node, Constant) and node.value == value


_MOVE_FUNCTIONS = {
    "subtree": _subtree_move,
    "operator": _operator_move,
    "literal": _literal_move,
}
