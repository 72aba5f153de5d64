"""Generation: many formulas written in lockstep, one batched next-action call per step.

Every active episode's partial formula (its steps so far: the model is causal) goes into
one call of a ``NextActionPolicy``: the in-process model here, or Triton through
``inference.triton_client``. The policy returns logits over the vocabulary with invalid
tokens already masked; sampling applies temperature and top-k, and the grammar state
machine advances each episode. Since only grammar-valid tokens can be drawn and the grammar
never allows a dead end within the context, every finished episode is a valid formula.
Duplicates (by canonical hash) are dropped; sampling continues until ``n`` distinct
formulas or the attempt budget is spent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from alphafactory.formula import GrammarState, Kind, Node, Vocabulary, formula_hash
from inference.model import MASKED_LOGIT, DecisionTransformer


class NextActionPolicy(Protocol):
    """Maps partial formulas to next-token logits (B, V), invalid tokens masked. The step
    axis ``T`` runs up to the longest length (or up to the context, padded)."""

    context: int

    def __call__(
        self,
        rtg: np.ndarray,  # (B, T) float32, T <= context
        features: np.ndarray,  # (B, T, 4) int64
        actions: np.ndarray,  # (B, T) int64
        lengths: np.ndarray,  # (B,) int64
        mask: np.ndarray,  # (B, V) bool
        *,
        top_k: int = 0,  # > 0: only the top_k largest logits need be real, the rest masked
    ) -> np.ndarray: ...


class InProcessPolicy:
    """The model in this process (CPU or a local GPU), no gradient. ``bf16`` runs the
    forward pass under bfloat16 autocast (CUDA only: about twice the rows/s on a GPU;
    logits are returned as float32 either way)."""

    def __init__(self, model: DecisionTransformer, device: str = "cpu", *, bf16: bool = False):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.context = model.config.context
        if bf16 and self.device.type != "cuda":
            raise ValueError(f"bf16 inference needs a CUDA device, got {device!r}")
        self._autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)

    @torch.no_grad()
    def __call__(self, rtg, features, actions, lengths, mask, *, top_k: int = 0) -> np.ndarray:
        # every logit is here already: the sampler keeps the top_k itself
        tensors = [
            torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            for a in (rtg, features, actions, lengths, mask)
        ]
        with self._autocast:
            logits = self.model.next_action_logits(*tensors)
        return logits.float().cpu().numpy()


@dataclass(frozen=True)
class Target:
    """What the generator is conditioned on, e.g. ``hac_tstat=3``."""

    metric: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        name, sep, number = text.partition("=")
        try:
            value = float(number)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not np.isfinite(value):
            raise ValueError(f"target {text!r} must look like METRIC=NUMBER, e.g. hac_tstat=3")
        return cls(name.strip(), value)


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 1.0
    top_k: int = 0  # 0: all valid tokens
    batch_size: int = 256
    max_attempts: int = 0  # episodes to try at most; 0: 4 x n + batch_size
    gamma: float = 1.0  # the trajectories' discount, for the return-to-go schedule

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.top_k < 0 or self.batch_size < 1:
            raise ValueError("top_k must be >= 0 and batch_size >= 1")


@dataclass
class Generation:
    formulas: list[Node]  # distinct, in the order found
    attempts: int  # episodes sampled
    duplicates: int  # episodes that repeated a formula already seen (or excluded)


def generate(
    policy: NextActionPolicy,
    vocab: Vocabulary,
    target: float,
    n: int,
    *,
    options: SamplingOptions = SamplingOptions(),
    rng: np.random.Generator | None = None,
    root_kinds: Iterable[Kind] | None = None,
    exclude: Iterable[str] = (),
) -> Generation:
    """Up to ``n`` distinct formulas (hashes in ``exclude`` count as already seen)."""
    rng = rng or np.random.default_rng()
    roots = frozenset(root_kinds) if root_kinds is not None else None
    budget = options.max_attempts or 4 * n + options.batch_size
    seen, found, attempts, duplicates = set(exclude), [], 0, 0
    while len(found) < n and attempts < budget:
        size = min(options.batch_size, budget - attempts, 2 * (n - len(found)) + 8)
        for formula in _episodes(policy, vocab, target, size, options, rng, roots):
            key = formula_hash(formula)
            if key in seen:
                duplicates += 1
            elif len(found) < n:
                seen.add(key)
                found.append(formula)
        attempts += size
    return Generation(found, attempts, duplicates)


def _episodes(policy, vocab, target, size, options, rng, roots) -> list[Node]:
    context = policy.context
    states = [GrammarState(vocab, max_tokens=context, root_kinds=roots) for _ in range(size)]
    rtg = np.zeros((size, context), dtype=np.float32)
    features = np.zeros((size, context, 4), dtype=np.int64)
    actions = np.full((size, context), len(vocab), dtype=np.int64)
    for step in range(context):
        active = [k for k, state in enumerate(states) if not state.done]
        if not active:
            break
        masks = np.stack([states[k].valid_mask() for k in active])
        for k in active:
            features[k, step] = states[k].features()
            rtg[k, step] = target * options.gamma ** (states[k].open_slots - 1)
        lengths = np.full(len(active), step + 1, dtype=np.int64)
        so_far = slice(0, step + 1)  # causal: what is not written yet cannot matter
        logits = policy(
            rtg[active, so_far],
            features[active, so_far],
            actions[active, so_far],
            lengths,
            masks,
            top_k=options.top_k,
        )
        chosen = sample(logits, masks, options.temperature, options.top_k, rng)
        for k, token in zip(active, chosen, strict=True):
            states[k].step_from_mask(int(token))  # ``sample`` keeps to the mask
            actions[k, step] = token
    return [state.formula() for state in states]


def sample(
    logits: np.ndarray, masks: np.ndarray, temperature: float, top_k: int, rng
) -> np.ndarray:
    """One token per row from softmax(logits / temperature) over the valid tokens, keeping
    only the ``top_k`` most likely when ``top_k`` > 0."""
    scores = np.where(masks, logits.astype(np.float64) / temperature, -np.inf)
    if 0 < top_k < scores.shape[1]:
        kth = np.partition(scores, -top_k, axis=1)[:, -top_k][:, None]
        scores = np.where(scores >= kth, scores, -np.inf)
    scores -= scores.max(axis=1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(weights, axis=1)
    draws = rng.random((len(weights), 1)) * cumulative[:, -1:]
    chosen = (cumulative < draws).sum(axis=1)
    # guard: rounding could point past the last valid token; fall back to the most likely
    bad = ~masks[np.arange(len(chosen)), np.minimum(chosen, masks.shape[1] - 1)]
    chosen[bad] = np.argmax(scores[bad], axis=1)
    return chosen


__all__ = [
    "MASKED_LOGIT",
    "Generation",
    "InProcessPolicy",
    "SamplingOptions",
    "Target",
    "generate",
    "sample",
]
