"""Grammar state machine over prefix token sequences: the generator's action mask.

``GrammarState`` holds a partial formula as a stack of open operators, each with the kinds
its result may still take. At every step ``valid_mask()`` marks the tokens that keep the
partial formula completable into a well-typed formula within all budgets:

* kinds: a slot accepts only tokens whose subtree can end with a kind the parent needs
  (a cross-sectional operator needs a panel; ``x + y`` needs at least one non-constant...);
* ``max_tokens``: every open slot can always be closed by one leaf token, so an operator is
  offered only if ``used + 1 + open slots after it <= max_tokens`` -- once the budget is
  tight only leaves are offered and the formula is forced to complete;
* ``max_depth`` and ``max_nodes`` of the ``LanguageConfig`` the same way.

So no sequence of masked-valid tokens can dead-end, and the sequence is finished exactly
when no slot is open (``done``); ``formula()`` then returns the typed ``Node``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from itertools import product
from weakref import WeakKeyDictionary

import numpy as np

from alphafactory.formula.errors import FormulaError, FormulaSyntaxError, FormulaTypeError
from alphafactory.formula.nodes import (
    VALUE_KINDS,
    Constant,
    Kind,
    Node,
    Operand,
    Slot,
    format_number,
)
from alphafactory.formula.operators import OPERATORS
from alphafactory.formula.tokens import Vocabulary

_CHILD_SLOTS = (Slot.VALUE, Slot.GROUP)
# State features (``GrammarState.features``): slot codes 1.. in Slot order, 0 once done;
# required kinds as a bit set in Kind order.
SLOT_CODES = {slot: code for code, slot in enumerate(Slot, start=1)}
KIND_BITS = {kind: 1 << bit for bit, kind in enumerate(Kind)}
FEATURE_NAMES = ("slot", "kinds", "depth", "open_slots")
FEATURE_SIZES = (len(SLOT_CODES) + 1, 1 << len(KIND_BITS))  # depth, open slots: by limits


@dataclass
class _Frame:
    op: type[Node] | None  # None: the root, a single value slot
    required: frozenset[Kind]  # kinds this node's result may take
    depth: int  # depth of this node; its children sit at depth + 1
    args: list = field(default_factory=list)

    @property
    def signature(self) -> tuple[Slot, ...]:
        return (Slot.VALUE,) if self.op is None else self.op.signature

    def copy(self) -> _Frame:
        return _Frame(self.op, self.required, self.depth, list(self.args))


@cache
def _child_options(
    op: type[Node], required: frozenset[Kind], done: tuple[Kind, ...], available: frozenset[Kind]
) -> frozenset[Kind]:
    """Kinds the next child of ``op`` may take so that its result can still be in ``required``.

    Brute force over the (at most 2) child slots: ``result_kind`` stays the single source
    of the typing rules, shared with node construction.
    """
    slots = [s for s in op.signature if s in _CHILD_SLOTS][len(done) :]
    choices = [
        sorted(available & (VALUE_KINDS if s is Slot.VALUE else {Kind.GROUP})) for s in slots
    ]
    options = set()
    for combo in product(*choices):
        try:
            kind = op.result_kind(done + combo)
        except FormulaTypeError:
            continue
        if kind in required:
            options.add(combo[0])
    return frozenset(options)


class _Tables:
    """Per-vocabulary arrays so that a mask is a few vectorised operations."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.kinds = frozenset(vocab.operands.values()) | (
            {Kind.SCALAR} if vocab.config.constants else set()
        )
        self.constants = vocab.mask_of(_literal_tokens(vocab.config.constants))
        self.literal_masks = {
            Slot.WINDOW: vocab.mask_of(_literal_tokens(vocab.config.windows)),
            Slot.LAG: vocab.mask_of(_literal_tokens(vocab.config.lags)),
            Slot.K: vocab.mask_of(_literal_tokens(vocab.config.winsorize_ks)),
        }
        self.op_ids = np.array([vocab.index[name] for name in vocab.operators], dtype=np.int64)
        self.operator_mask = np.zeros(len(vocab), dtype=bool)
        self.operator_mask[self.op_ids] = True
        self.operator_mask.flags.writeable = False
        self.ops = [OPERATORS[name] for name in vocab.operators]
        self.op_slots = np.array([len(op.signature) for op in self.ops])
        self.op_children = np.array(
            [sum(s in _CHILD_SLOTS for s in op.signature) for op in self.ops]
        )
        self.operand_masks: dict[frozenset[Kind], np.ndarray] = {}
        self.op_masks: dict[frozenset[Kind], np.ndarray] = {}
        self._vocab = vocab

    def leaves(self, required: frozenset[Kind]) -> np.ndarray:
        mask = self.operand_masks.get(required)
        if mask is None:
            names = [n for n, k in self._vocab.operands.items() if k in required]
            mask = self._vocab.mask_of(names)
            if Kind.SCALAR in required:
                mask |= self.constants
            self.operand_masks[required] = mask
        return mask

    def typed_ops(self, required: frozenset[Kind]) -> np.ndarray:
        """Over ``ops``: True where the operator can produce a kind in ``required``."""
        mask = self.op_masks.get(required)
        if mask is None:
            mask = np.array(
                [
                    self._literals_exist(op) and bool(_child_options(op, required, (), self.kinds))
                    for op in self.ops
                ]
            )
            self.op_masks[required] = mask
        return mask

    def _literals_exist(self, op: type[Node]) -> bool:
        """An operator whose literal slot has no allowed value could never be completed."""
        return all(self.literal_masks[s].any() for s in op.signature if s in self.literal_masks)


def _literal_tokens(values) -> list[str]:
    return [format_number(float(v)) for v in values]


# Tables live as long as their vocabulary; keyed weakly so vocabularies can be dropped.
_TABLES: WeakKeyDictionary[Vocabulary, _Tables] = WeakKeyDictionary()


def _tables(vocab: Vocabulary) -> _Tables:
    tables = _TABLES.get(vocab)
    if tables is None:
        tables = _TABLES[vocab] = _Tables(vocab)
    return tables


class GrammarState:
    """A partial formula in prefix order; ``step`` tokens chosen from ``valid_mask()``."""

    def __init__(
        self,
        vocab: Vocabulary,
        *,
        max_tokens: int = 32,
        root_kinds: frozenset[Kind] | set[Kind] | None = None,
    ) -> None:
        self.vocab = vocab
        self._tables = _tables(vocab)
        roots = frozenset(root_kinds or {Kind.PANEL, Kind.MACRO}) & self._tables.kinds
        roots -= {Kind.SCALAR, Kind.GROUP}
        if not roots:
            raise FormulaTypeError(
                f"no operand of the vocabulary can make a formula of kind {set(root_kinds or ())}"
            )
        if max_tokens < 1:
            raise FormulaError(f"max_tokens must be positive, got {max_tokens}")
        self.max_tokens = max_tokens
        self._frames = [_Frame(None, roots, 0)]
        self._tokens: list[str] = []
        self._pending = 1  # open slots (one token each at least)
        self._pending_children = 1  # open slots that will become nodes
        self._nodes = 0
        self._result: Node | None = None

    # -- reading the state ---------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self._tokens)

    @property
    def remaining_tokens(self) -> int:
        return self.max_tokens - len(self._tokens)

    @property
    def open_slots(self) -> int:
        """Slots still to fill: the fewest tokens that can finish the formula."""
        return 0 if self.done else self._pending

    def formula(self) -> Node:
        if self._result is None:
            raise FormulaSyntaxError(
                f"incomplete formula: {self._pending} more argument(s) needed",
                column=len(self._tokens) + 1,
            )
        return self._result

    def _slot(self) -> tuple[Slot, frozenset[Kind], int]:
        frame = self._frames[-1]
        slot = frame.signature[len(frame.args)]
        required = frame.required
        if frame.op is not None and slot is Slot.VALUE:
            done = tuple(a.kind for a in frame.args if isinstance(a, Node))
            required = _child_options(frame.op, frame.required, done, self._tables.kinds)
        return slot, required, frame.depth + 1

    def features(self) -> tuple[int, int, int, int]:
        """What the next token must be, as small integers (``FEATURE_NAMES``): the slot
        type, the kinds it accepts as a bit set, its depth and the open slots. This is the
        state the generator sees at each step, besides the tokens so far."""
        if self.done:
            return (0, 0, 0, 0)
        slot, required, depth = self._slot()
        kinds = sum(KIND_BITS[kind] for kind in required)
        return (SLOT_CODES[slot], kinds, depth, self._pending)

    def valid_mask(self) -> np.ndarray:
        """Boolean mask over the vocabulary: the tokens allowed next (none once done)."""
        tables = self._tables
        if self.done:
            return np.zeros(len(self.vocab), dtype=bool)
        slot, required, depth = self._slot()
        if slot in tables.literal_masks:
            return tables.literal_masks[slot].copy()
        if slot is Slot.GROUP:
            return tables.leaves(frozenset({Kind.GROUP})).copy()
        mask = tables.leaves(required).copy()
        if depth < self.vocab.config.max_depth:
            token_slack = self.max_tokens - len(self._tokens) - self._pending
            node_slack = self.vocab.config.max_nodes - self._nodes - self._pending_children
            fits = (tables.op_slots <= token_slack) & (tables.op_children <= node_slack)
            mask[tables.op_ids[tables.typed_ops(required) & fits]] = True
        return mask

    def valid_tokens(self) -> list[str]:
        return [self.vocab.tokens[i] for i in np.flatnonzero(self.valid_mask())]

    # -- advancing -------------------------------------------------------------------------
    def step(self, token: str | int) -> None:
        """Append one token; raises ``FormulaSyntaxError`` if the mask does not allow it."""
        word = self.vocab.words([token])[0]
        if not self.valid_mask()[self.vocab.index[word]]:
            raise FormulaSyntaxError(
                f"token {word!r} is not valid here",
                column=len(self._tokens) + 1,
                expected=self.valid_tokens()[:12] or ["nothing: the formula is complete"],
            )
        self._advance(word)

    def step_from_mask(self, index: int) -> None:
        """Append the token at vocabulary ``index``, drawn from this state's
        ``valid_mask()``: ``step`` without its check, which would only recompute the mask
        (samplers compute it anyway to draw from it)."""
        self._advance(self.vocab.tokens[index])

    def _advance(self, word: str) -> None:
        slot, required, depth = self._slot()
        self._tokens.append(word)
        if slot in self._tables.literal_masks:
            value = self.vocab.literals[word]
            self._fill(value if slot is Slot.K else int(value))
        elif word in self.vocab.operands:
            self._fill(Operand(word, self.vocab.operands[word]), child=True)
        elif word in self.vocab.literals:
            self._fill(Constant(self.vocab.literals[word]), child=True)
        else:
            op = OPERATORS[word]
            children = sum(s in _CHILD_SLOTS for s in op.signature)
            self._nodes += 1
            self._pending += len(op.signature) - 1
            self._pending_children += children - 1
            self._frames.append(_Frame(op, required, depth))

    def _fill(self, argument, *, child: bool = False) -> None:
        self._pending -= 1
        if child:
            self._nodes += 1
            self._pending_children -= 1
        frame = self._frames[-1]
        frame.args.append(argument)
        while len(frame.args) == len(frame.signature):
            self._frames.pop()
            if frame.op is None:
                self._result = frame.args[0]
                return
            node = frame.op(*frame.args)  # cannot fail: the mask only offered fitting kinds
            frame = self._frames[-1]
            frame.args.append(node)

    def copy(self) -> GrammarState:
        other = object.__new__(GrammarState)
        other.__dict__.update(self.__dict__)
        other._frames = [frame.copy() for frame in self._frames]
        other._tokens = list(self._tokens)
        return other


def batch_masks(states: list[GrammarState]) -> np.ndarray:
    """(B, V) action masks for a batch of partial formulas."""
    return np.stack([state.valid_mask() for state in states])


def random_formula(
    vocab: Vocabulary,
    rng: np.random.Generator,
    *,
    max_tokens: int = 24,
    root_kinds: frozenset[Kind] | set[Kind] | None = None,
    p_operator: float = 0.5,
) -> Node:
    """A random valid formula: a walk over masked-valid tokens (operators with p_operator)."""
    state = GrammarState(vocab, max_tokens=max_tokens, root_kinds=root_kinds)
    operators = state._tables.operator_mask
    while not state.done:
        mask = state.valid_mask()
        ops, leaves = mask & operators, mask & ~operators
        pool = ops if ops.any() and (not leaves.any() or rng.random() < p_operator) else leaves
        choices = np.flatnonzero(pool)
        # the draw rng.choice(choices) makes, without its argument handling (a quarter of
        # a baseline's walk): the same stream, so the same formulas
        state.step_from_mask(int(choices[rng.integers(len(choices))]))
    return state.formula()
