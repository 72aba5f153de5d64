"""Offline training of the Decision Transformer, and checkpoints that stand alone.

AdamW (no weight decay on biases, norms and embeddings), linear warm-up then cosine decay,
gradient clipping, validation on held-out trajectories whose return-to-go is their reward
on a later time period (so validation measures how well the conditioning generalises
forward in time), and the best validation checkpoint kept. CUDA with bf16 autocast when a
GPU is present, CPU otherwise.

A checkpoint (``torch.save`` of a plain dict) carries everything inference needs: the model
config and weights (with the return-to-go scale as a buffer), the vocabulary's operands and
language config with its fingerprint and grammar version, the reward definition and the
trajectories' provenance. ``load_checkpoint`` rebuilds the model and vocabulary from it
alone and refuses a file whose vocabulary does not reproduce its fingerprint.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from alphafactory.clock import visible_from
from alphafactory.formula import FormulaError, Vocabulary
from inference.encoding import EncodedTrajectories
from inference.model import DecisionTransformer, ModelConfig, action_loss

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "alphafactory-decision-transformer"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (wrong format, vocabulary mismatch...)."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2_000
    batch_size: int = 256
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.eval_every) < 1:
            raise ValueError(f"steps, batch_size and eval_every must be >= 1: {self}")
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise ValueError("need 0 < min_learning_rate <= learning_rate")


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``learning_rate``, then cosine decay to ``min_learning_rate``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_learning_rate + cosine * (config.learning_rate - config.min_learning_rate)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


@dataclass
class TrainResult:
    model: DecisionTransformer
    history: list[dict]  # one entry per evaluation: step, train_loss, val_loss, lr
    best_val_loss: float
    seconds: float
    rows_per_second: float


def train(
    data: EncodedTrajectories,
    validation: EncodedTrajectories | None,
    model_config: ModelConfig,
    config: TrainConfig = TrainConfig(),
    *,
    progress: Callable[[dict], None] | None = None,
    row_weights: np.ndarray | None = None,
    initial: DecisionTransformer | None = None,
) -> TrainResult:
    """Train a model on ``data``, fresh or from ``initial``'s weights (a warm start: the
    same architecture and vocabulary, its return scale set from ``data``); keeps the
    weights of the best validation loss. ``row_weights`` (one per trajectory, >= 0) draws
    batches in proportion to them instead of uniformly."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    scale = float(np.abs(data.rtg[data.valid]).max(initial=0.0)) or 1.0
    model = DecisionTransformer(model_config, rtg_scale=scale)
    if initial is not None:
        _warm_start(model, initial)
    model = model.to(device)
    optimizer = _optimizer(model, config, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    on_device = _OnDevice(data, device)
    held_out = _OnDevice(validation, device) if validation else None
    generator = torch.Generator(device=device).manual_seed(config.seed)
    weights = _row_weights(row_weights, len(data), device)
    history: list[dict] = []
    best, best_state = math.inf, None
    started, running = time.perf_counter(), []
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        model.train()
        if weights is None:
            rows = torch.randint(
                len(data), (config.batch_size,), device=device, generator=generator
            )
        else:
            rows = torch.multinomial(
                weights, config.batch_size, replacement=True, generator=generator
            )
        batch = on_device.batch(rows)
        with autocast:
            loss = action_loss(model(*batch[:4]), batch[2], batch[4])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        running.append(loss.detach())  # no .item(): a GPU step would wait for the host
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            val = evaluate_loss(model, held_out, device) if held_out else float("nan")
            entry = {
                "step": step + 1,
                "train_loss": float(torch.stack(running).mean()),
                "val_loss": val,
                "lr": learning_rate(step, config),
            }
            history.append(entry)
            running = []
            # without a held-out set (the pipeline's retrainings) there is no validation
            # loss to show: a "nan" in an operator's log reads as a failed training
            held = f", validation loss {val:.4f}" if held_out else " (no validation set)"
            log.info(
                "step %d: train loss %.4f%s, lr %.2e",
                entry["step"],
                entry["train_loss"],
                held,
                entry["lr"],
            )
            if progress:
                progress(entry)
            score = val if math.isfinite(val) else entry["train_loss"]
            if score < best:
                best = score
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    rows = config.steps * config.batch_size / max(seconds, 1e-9)
    return TrainResult(model.cpu(), history, best, seconds, rows)


def _warm_start(model: DecisionTransformer, initial: DecisionTransformer) -> None:
    if initial.config != model.config:
        raise CheckpointError(
            f"cannot warm-start from a model of another shape: {initial.config} given, "
            f"{model.config} expected"
        )
    weights = {k: v for k, v in initial.state_dict().items() if k != "rtg_scale"}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if list(missing) != ["rtg_scale"] or unexpected:
        raise CheckpointError(f"warm start: missing {missing}, unexpected {unexpected}")


def _optimizer(model: torch.nn.Module, config: TrainConfig, device) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.95), fused=fused)


def _row_weights(weights, rows: int, device) -> torch.Tensor | None:
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (rows,) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(
            f"row_weights must be {rows} finite values >= 0, got shape {weights.shape}"
        )
    if weights.sum() <= 0:
        raise ValueError("row_weights are all zero: no trajectory could be drawn")
    return torch.from_numpy(weights).to(device)


class _OnDevice:
    """The trajectories as tensors on the training device, copied once. Masks stay packed
    (one bit per token) and are unpacked per batch on the device: on a GPU this keeps the
    host out of the step loop; on the CPU ``from_numpy`` shares the arrays, no copy."""

    def __init__(self, data: EncodedTrajectories, device: torch.device) -> None:
        self.device, self.vocab_size, self.size = device, data.vocab_size, len(data)
        self.rtg, self.features, self.actions, self.valid, self.packed = (
            torch.from_numpy(a).to(device)
            for a in (data.rtg, data.features, data.actions, data.valid, data.packed_masks)
        )
        # np.packbits is big-endian within a byte: bit 7 first
        self.shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=device)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        bits = (self.packed[rows].unsqueeze(-1) >> self.shifts) & 1
        masks = bits.flatten(-2)[..., : self.vocab_size].bool()
        return self.rtg[rows], self.features[rows], self.actions[rows], masks, self.valid[rows]


@torch.no_grad()
def evaluate_loss(
    model, data: EncodedTrajectories | _OnDevice, device, batch_size: int = 1024
) -> float:
    """Mean action loss over every real step of ``data``."""
    model.eval()
    data = data if isinstance(data, _OnDevice) else _OnDevice(data, torch.device(device))
    total, steps = torch.zeros((), device=data.device), 0
    for start in range(0, data.size, batch_size):
        rows = torch.arange(start, min(start + batch_size, data.size), device=data.device)
        batch = data.batch(rows)
        count = batch[4].sum()
        total += action_loss(model(*batch[:4]), batch[2], batch[4]).float() * count
        steps += int(count)
    return float(total) / max(steps, 1)


# -- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    model: DecisionTransformer,
    vocab: Vocabulary,
    *,
    reward: dict,
    provenance: dict | None = None,
    training: dict | None = None,
) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocabulary": vocab.to_dict(),
        # plain JSON types only: the file loads with torch's safe weights_only reader
        "reward": _plain(reward),
        "provenance": _plain(provenance or {}),
        "training": _plain(training or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".partial")
    torch.save(payload, temporary)
    temporary.replace(path)  # a reader never sees half a checkpoint


def _plain(value):
    return json.loads(json.dumps(value, default=str))


@dataclass
class Checkpoint:
    model: DecisionTransformer
    vocab: Vocabulary
    reward: dict
    provenance: dict
    training: dict

    @property
    def trained_until(self) -> datetime | None:
        """The instant by which everything the model was trained on had been released
        (``reward["trained_until"]``, or the end of the day before its ``split``); None for
        a model that does not say (untrained, or made by hand). A decision before it
        would see the future through the generator."""
        stamp = self.reward.get("trained_until")
        if stamp:
            return datetime.fromisoformat(stamp)
        split = self.reward.get("split")
        if not split:
            return None
        day_before = np.datetime64(split, "D") - np.timedelta64(1, "D")
        return visible_from(np.array([day_before]))[0].to_pydatetime()


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> Checkpoint:
    try:
        payload = torch.load(Path(path), map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        reason = str(error).splitlines()[0][:200]
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an alphafactory generator checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')}, "
            f"this alphafactory reads version {CHECKPOINT_VERSION}"
        )
    try:
        vocab = Vocabulary.from_dict(payload["vocabulary"])
    except (FormulaError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    model = DecisionTransformer(ModelConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Checkpoint(model, vocab, payload["reward"], payload["provenance"], payload["training"])
