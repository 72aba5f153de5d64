"""Vectorised, point-in-time evaluation of formulas on a ``Panel``.

Every kernel is vectorised over dates x assets, and the value at row t only ever reads rows
<= t (time-series kernels look back, cross-sectional kernels stay within row t), so a
formula's history never depends on data after t.

Batches share work: within a chunk of formulas, each distinct sub-expression (keyed by its
canonical text) is computed once and kept while other formulas of the chunk still need it,
in a cache bounded by ``cache_bytes`` (least recently used entries are dropped first and
recomputed if needed). Peak memory is about ``cache_bytes`` plus the temporaries of one
formula (a few arrays per tree level), whatever the batch size; results are yielded one at
a time in input order so the caller decides what to keep.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator

import numpy as np

from alphafactory.evaluate.kernels import KERNELS
from alphafactory.formula import DEFAULT_CONFIG, LanguageConfig, check, parse
from alphafactory.formula.nodes import Constant, Kind, Node, Operand
from alphafactory.panel import Panel

DEFAULT_CACHE_BYTES = 1 << 30


class _Cache:
    """Arrays by canonical key, least recently used first, within a byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        if value.nbytes > self.budget or key in self._items:
            return
        while self.used + value.nbytes > self.budget:
            self.discard(next(iter(self._items)))
        value.flags.writeable = False  # shared between formulas: nobody may modify it
        self._items[key] = value
        self.used += value.nbytes

    def discard(self, key: str) -> None:
        value = self._items.pop(key, None)
        if value is not None:
            self.used -= value.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.used = 0


def _count_uses(roots: Iterable[Node]) -> Counter[str]:
    """How often each sub-expression is needed when repeats are served from the cache.

    The subtree of a repeated sub-expression is counted once: its second occurrence is a
    cache hit that never visits the children.
    """
    uses: Counter[str] = Counter()
    for root in roots:
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, Operand | Constant):
                continue
            uses[node.canonical] += 1
            if uses[node.canonical] == 1:
                stack.extend(node.children)
    return uses


class Evaluator:
    """Evaluates formulas on one panel; reuse it across calls to keep operand conversions."""

    def __init__(
        self,
        panel: Panel,
        *,
        dtype: type | np.dtype = np.float64,
        config: LanguageConfig = DEFAULT_CONFIG,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.panel = panel
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype}")
        self.config = config
        self.operand_kinds = panel.operand_kinds
        self._cache = _Cache(cache_bytes)
        self._leaves: dict[str, np.ndarray] = {}

    def prepare(self, formula: Node | str) -> Node:
        """Parse (text) or check (node) the formula against this panel's operands."""
        if isinstance(formula, str):
            return parse(formula, self.operand_kinds, self.config)
        return check(formula, self.operand_kinds, self.config)

    def evaluate(self, formula: Node | str) -> np.ndarray:
        """(T, N) for a per-asset formula, (T,) for a macro formula; a new writable array."""
        return next(self.evaluate_many([formula]))

    def evaluate_many(
        self, formulas: Iterable[Node | str], *, chunk_size: int = 64
    ) -> Iterator[np.ndarray]:
        """Evaluate in chunks sharing sub-expressions; yields results in input order."""
        return self.evaluate_prepared(map(self.prepare, formulas), chunk_size=chunk_size)

    def evaluate_prepared(
        self, roots: Iterable[Node], *, chunk_size: int = 64
    ) -> Iterator[np.ndarray]:
        """:meth:`evaluate_many` for formulas this evaluator's :meth:`prepare` returned:
        they are not checked again (a check walks the whole tree: a third of the cost of
        scoring a small macro formula)."""
        pending: list[Node] = []
        for root in roots:
            pending.append(root)
            if len(pending) == chunk_size:
                yield from self._chunk(pending)
                pending = []
        if pending:
            yield from self._chunk(pending)

    def _chunk(self, roots: list[Node]) -> Iterator[np.ndarray]:
        uses = _count_uses(roots)
        try:
            for root in roots:
                with np.errstate(all="ignore"):
                    value = self._finish(root, self._value(root, uses))
                yield value
        finally:
            self._cache.clear()

    def _value(self, node: Node, uses: Counter[str]) -> np.ndarray:
        if isinstance(node, Operand):
            return self._leaf(node)
        if isinstance(node, Constant):
            return self.dtype.type(node.value)
        key = node.canonical
        value = self._cache.get(key)
        if value is None:
            args = [self._value(a, uses) if isinstance(a, Node) else a for a in node.arguments]
            value = KERNELS[type(node)](*args)
            if uses[key] > 1:
                self._cache.put(key, value)
        uses[key] -= 1
        if uses[key] <= 0:
            self._cache.discard(key)
        return value

    def _leaf(self, operand: Operand) -> np.ndarray:
        value = self._leaves.get(operand.name)
        if value is None:
            panel, name = self.panel, operand.name
            if name in panel.fields:
                value = np.ascontiguousarray(panel.fields[name], dtype=self.dtype)
            elif name in panel.macro:
                value = np.ascontiguousarray(panel.macro[name], dtype=self.dtype).reshape(-1, 1)
            else:
                value = np.ascontiguousarray(panel.groups[name], dtype=np.int64)
            value = value.view()
            value.flags.writeable = False  # a view of the panel's own data
            self._leaves[name] = value
        return value

    def _finish(self, root: Node, value: np.ndarray) -> np.ndarray:
        if not value.flags.writeable:  # an operand or a cached array: hand out a copy
            value = value.copy()
        infinite = np.isinf(value)
        if infinite.any():  # overflow is missing data, not a signal
            np.copyto(value, np.nan, where=infinite)
        if root.kind is Kind.MACRO:
            return value.reshape(-1)
        return value


def evaluate(
    formula: Node | str,
    panel: Panel,
    *,
    dtype: type | np.dtype = np.float64,
    config: LanguageConfig = DEFAULT_CONFIG,
) -> np.ndarray:
    """Evaluate one formula: (T, N) for a per-asset formula, (T,) for a macro formula."""
    return Evaluator(panel, dtype=dtype, config=config).evaluate(formula)


def evaluate_batch(
    formulas: Iterable[Node | str],
    panel: Panel,
    *,
    dtype: type | np.dtype = np.float64,
    config: LanguageConfig = DEFAULT_CONFIG,
    chunk_size: int = 64,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> Iterator[np.ndarray]:
    """Evaluate many formulas sharing sub-expressions; yields results in input order."""
    evaluator = Evaluator(panel, dtype=dtype, config=config, cache_bytes=cache_bytes)
    return evaluator.evaluate_many(formulas, chunk_size=chunk_size)
