"""Trajectories as the model's tensors: replay each formula through the grammar.

For every step of every formula this records the grammar state the model conditions on
(``GrammarState.features``), the token chosen, the return-to-go and the mask of valid
tokens (bit-packed: a vocabulary of 600 tokens costs 75 bytes a step). Steps past a
formula's end are padding: action ``vocab_size`` (the "no action" id), ``valid`` False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alphafactory.formula import GrammarState, Kind, Vocabulary


@dataclass
class EncodedTrajectories:
    actions: np.ndarray  # (M, C) int64, padding = vocab size
    features: np.ndarray  # (M, C, 4) int64
    rtg: np.ndarray  # (M, C) float32
    valid: np.ndarray  # (M, C) bool: real steps
    packed_masks: np.ndarray  # (M, C, ceil(V / 8)) uint8
    vocab_size: int

    def __len__(self) -> int:
        return len(self.actions)

    def masks(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), C, V) bool masks of the given trajectories."""
        return np.unpackbits(self.packed_masks[rows], axis=-1, count=self.vocab_size).astype(bool)


def returns_to_go(reward: float, length: int, gamma: float) -> np.ndarray:
    """``R * gamma ** (T - t)`` for steps ``t = 1..T``."""
    return reward * gamma ** np.arange(length - 1, -1, -1, dtype=np.float64)


def encode(
    token_lists: Sequence[Sequence[str]],
    rewards: Sequence[float],
    vocab: Vocabulary,
    *,
    context: int,
    gamma: float,
    root_kinds: frozenset[Kind] | None = None,
) -> EncodedTrajectories:
    """Replay each token list through a fresh ``GrammarState`` (which rejects any token the
    grammar would not offer: a stored trajectory that no longer fits the vocabulary fails
    here with the grammar's error)."""
    m, v = len(token_lists), len(vocab)
    actions = np.full((m, context), v, dtype=np.int64)
    features = np.zeros((m, context, 4), dtype=np.int64)
    rtg = np.zeros((m, context), dtype=np.float32)
    valid = np.zeros((m, context), dtype=bool)
    packed = np.zeros((m, context, (v + 7) // 8), dtype=np.uint8)
    for row, (tokens, reward) in enumerate(zip(token_lists, rewards, strict=True)):
        if len(tokens) > context:
            raise ValueError(
                f"trajectory {row} has {len(tokens)} tokens; the model's context is {context}"
            )
        state = GrammarState(vocab, max_tokens=context, root_kinds=root_kinds)
        for step, token in enumerate(vocab.encode(tokens)):
            features[row, step] = state.features()
            packed[row, step] = np.packbits(state.valid_mask())
            state.step(token)
            actions[row, step] = token
        valid[row, : len(tokens)] = True
        rtg[row, : len(tokens)] = returns_to_go(float(reward), len(tokens), gamma)
    return EncodedTrajectories(actions, features, rtg, valid, packed, v)
