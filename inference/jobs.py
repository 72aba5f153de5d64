"""Typed configurations of the generator's jobs (``inference.pipeline``): what the CLI's
``trajectories build``, ``model train``, ``generate`` and ``search`` ask for, as frozen
values a test, a service or a notebook builds directly (no argparse namespace involved).

``--roots`` style values are parsed here, so a bad one fails when the job is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inference.trajectories import TrajectoryError

ROOT_KINDS = ("macro", "panel")


def root_kinds(text: str) -> tuple[str, ...]:
    """``"macro,panel"`` -> ("macro", "panel"); TrajectoryError naming a bad value."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in ROOT_KINDS]
    if not kinds or bad:
        raise TrajectoryError(f"--roots {text!r}: expected macro, panel or macro,panel")
    return kinds


@dataclass(frozen=True)
class PanelSource:
    """A panel file (long format), its macro columns, and the first held-out date."""

    data: Path
    split: str | None = None
    macro: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "macro", tuple(self.macro))


@dataclass(frozen=True)
class BuildJob:
    source: PanelSource
    out: Path
    metric: str = "hac_tstat"
    gamma: float = 1.0
    random: int = 2000
    chains: int = 16
    steps: int = 50
    temperature: float = 0.5
    max_tokens: int = 16
    roots: tuple[str, ...] = ROOT_KINDS
    workers: int = 1
    seed: int = 0


@dataclass(frozen=True)
class TrainJob:
    trajectories: Path
    source: PanelSource
    out: Path
    layers: int = 2
    heads: int = 4
    d_model: int = 64
    dropout: float = 0.1
    attention_dropout: float = 0.0
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    device: str = "auto"
    validation: float = 0.1  # fraction of trajectories held out, rewarded after the split
    top: float | None = None  # behaviour cloning on the best fraction, no conditioning
    seed: int = 0


@dataclass(frozen=True)
class GenerateJob:
    model: Path
    target: str  # e.g. "hac_tstat=3"
    n: int = 100
    temperature: float = 1.0
    top_k: int = 0
    roots: tuple[str, ...] | None = None  # None: the kinds the model was trained on
    seed: int | None = None


@dataclass(frozen=True)
class SearchJob:
    source: PanelSource
    method: str
    budget: int
    seed: int = 0
    definition: str = "hac_tstat >= 2"
    metric: str = "hac_tstat"
    roots: tuple[str, ...] = ROOT_KINDS
    max_tokens: int = 16
    target: float | None = None
    train_steps: int = 1000
    workers: int = 1
    top: int = 10
