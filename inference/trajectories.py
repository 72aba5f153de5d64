"""Trajectories of formula construction: the Decision Transformer's training data.

An episode builds one formula token by token in prefix order (``GrammarState``): the
state is the partial formula, the action the next token, and the episode ends when the
formula is complete. Its reward ``R`` is a configured metric of the finished formula on a
training period (``hac_tstat``, ``ls_sharpe``...), clipped to ``[-clip, clip]``; a formula
with no value for the metric (constant, all missing) gets ``nan_reward``.

The sparse terminal reward is spread back with the discounted approximation
``r_t = R * gamma ** (T - t)`` for steps ``t = 1..T``, and each step is conditioned on that
value, its return-to-go: the terminal reward discounted back to step ``t``. ``gamma = 1``
conditions every step on ``R`` itself (constant-return conditioning); ``gamma < 1`` makes
early tokens carry less of the outcome. At generation time the remaining steps are not
known, so step ``t`` is conditioned on ``target * gamma ** (open_slots - 1)``, the fewest
steps that can still finish the formula (exact for gamma = 1).

Sources (``build_trajectories``): the library of known factors, formulas sampled at random
from the grammar, and Metropolis-Hastings chains over expression trees started from the
best of those (``mutate`` proposals, accepted with probability
``min(1, exp((R' - R) / temperature))``). Work is split into tasks run by a pool of
spawned worker processes (numba's threading layer is not fork-safe), each scoring with its
own single-threaded evaluator. Each random task and each chain has its own seed, so a
dataset is reproducible for a given seed and task size, whatever the number of workers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

import numpy as np
import pandas as pd

from alphafactory.formula import (
    Kind,
    Node,
    Vocabulary,
    formula_hash,
    random_formula,
    to_tokens,
)
from alphafactory.formula.mutation import mutate
from alphafactory.formula.tokens import GRAMMAR_VERSION
from alphafactory.library import known_factors
from alphafactory.metrics import KNOWN_METRICS
from alphafactory.panel import Panel
from alphafactory.scoring import FormulaScorer, ScoringOptions, metric_values

COLUMNS = ("formula", "formula_hash", "tokens", "reward", "metric_value", "source", "family")


class TrajectoryError(ValueError):
    """A bad trajectory setting or dataset."""


@dataclass(frozen=True)
class RewardSpec:
    metric: str = "hac_tstat"
    gamma: float = 1.0
    clip: float = 10.0
    nan_reward: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in KNOWN_METRICS:
            raise TrajectoryError(
                f"reward metric {self.metric!r} is not a metric; expected one of "
                f"{sorted(KNOWN_METRICS)}"
            )
        if not 0.0 < self.gamma <= 1.0:
            raise TrajectoryError(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.clip > 0:
            raise TrajectoryError(f"clip must be positive, got {self.clip}")

    def rewards(self, values: np.ndarray) -> np.ndarray:
        """Metric values -> clipped rewards, ``nan_reward`` where a value is missing."""
        out = np.clip(np.asarray(values, dtype=np.float64), -self.clip, self.clip)
        return np.where(np.isfinite(out), out, self.nan_reward)


@dataclass(frozen=True)
class BuildPlan:
    """How many trajectories of each source to build (see the module doc)."""

    random: int = 2_000
    mcmc_chains: int = 16
    mcmc_steps: int = 50
    temperature: float = 0.5
    max_tokens: int = 16
    root_kinds: tuple[str, ...] = ("macro", "panel")
    seed: int = 0
    task_size: int = 500  # random formulas per task (the MCMC chains: a task per worker)

    def __post_init__(self) -> None:
        for name in ("random", "mcmc_chains", "mcmc_steps"):
            if getattr(self, name) < 0:
                raise TrajectoryError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_tokens < 1 or self.task_size < 1 or not self.temperature > 0:
            raise TrajectoryError("max_tokens, task_size and temperature must be positive")


@dataclass
class TrajectorySet:
    """Finished formulas with their rewards (one row each) plus provenance."""

    frame: pd.DataFrame  # COLUMNS
    provenance: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def token_lists(self) -> list[list[str]]:
        return [list(tokens) for tokens in self.frame["tokens"]]

    def top(self, fraction: float) -> TrajectorySet:
        """The best ``fraction`` of trajectories by reward (at least one)."""
        count = max(1, math.ceil(fraction * len(self.frame)))
        best = self.frame.nlargest(count, "reward", keep="first")
        return TrajectorySet(best.reset_index(drop=True), dict(self.provenance, top=fraction))


# -- building ----------------------------------------------------------------------------


class _Scoring:
    """The per-process scoring context: panel, vocabulary and reward settings."""

    def __init__(self, panel: Panel, vocab: Vocabulary, spec: RewardSpec, options) -> None:
        self.vocab, self.spec = vocab, spec
        self.scorer = FormulaScorer(panel, config=vocab.config, options=options)

    def rows(self, formulas: Sequence[Node], source: str, families=None) -> list[dict]:
        values = metric_values(self.scorer.score(formulas), self.spec.metric)
        rewards = self.spec.rewards(values)
        families = families or [""] * len(formulas)
        return [
            {
                "formula": str(f),
                "formula_hash": formula_hash(f),
                "tokens": to_tokens(f),
                "reward": float(r),
                "metric_value": float(v),
                "source": source,
                "family": fam,
            }
            for f, r, v, fam in zip(formulas, rewards, values, families, strict=True)
        ]


_WORKER: _Scoring | None = None


def _init_worker(panel, vocab, spec, options) -> None:
    global _WORKER
    from numba import set_num_threads

    set_num_threads(1)  # one process per core: threads would only contend
    _WORKER = _Scoring(panel, vocab, spec, options)


def _run_task(task: tuple) -> list[dict]:
    assert _WORKER is not None
    kind, seed, payload = task
    if kind == "random":
        rng = np.random.default_rng(seed)
        count, max_tokens, roots = payload
        formulas = [
            random_formula(_WORKER.vocab, rng, max_tokens=max_tokens, root_kinds=roots)
            for _ in range(count)
        ]
        return _WORKER.rows(formulas, "random")
    starts, steps, temperature, max_tokens = payload
    chains = [
        _Chain.start(_WORKER, text, reward, np.random.default_rng(s))
        for (text, reward), s in zip(starts, seed, strict=True)
    ]
    return _mcmc_chains(
        _WORKER, [c for c in chains if c is not None], steps, temperature, max_tokens
    )


@dataclass
class _Chain:
    """One Metropolis-Hastings chain: its state, its reward, its own random generator and
    the rows of its proposals so far."""

    current: Node
    reward: float
    rng: np.random.Generator
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def start(cls, context: _Scoring, text: str, reward: float, rng) -> _Chain | None:
        current = context.scorer.prepare(text)
        return None if current is None else cls(current, reward, rng)


def _mcmc_chains(context: _Scoring, chains: list[_Chain], steps, temperature, max_tokens):
    """Run ``chains`` side by side for ``steps``; every proposal is scored once and becomes
    a trajectory, returned chain by chain.

    Each step's proposals of every chain are scored as one batch: one formula at a time,
    the per-call overhead made a proposal cost 18 ms on the bundled panel against 2.5 ms
    in a batch. Each chain draws from its own generator in the order it would alone
    (propose, then accept), so the rows are those of the chains run one after another."""
    for _ in range(steps):
        proposals = [
            mutate(chain.current, context.vocab, chain.rng, max_tokens=max_tokens)
            for chain in chains
        ]
        for chain, proposal, row in zip(
            chains, proposals, context.rows(proposals, "mcmc"), strict=True
        ):
            chain.rows.append(row)
            if math.log(chain.rng.random() + 1e-300) < (row["reward"] - chain.reward) / temperature:
                chain.current, chain.reward = proposal, row["reward"]
    return [row for chain in chains for row in chain.rows]


def build_trajectories(
    panel: Panel,
    vocab: Vocabulary,
    spec: RewardSpec = RewardSpec(),
    plan: BuildPlan = BuildPlan(),
    *,
    workers: int = 1,
    options: ScoringOptions | None = None,
    provenance: dict | None = None,
) -> TrajectorySet:
    """Library, random and MCMC trajectories scored on ``panel`` (the training period)."""
    roots = {Kind(kind) for kind in plan.root_kinds}
    options = options or ScoringOptions()
    local = _Scoring(panel, vocab, spec, options)
    library = [
        (e, n) for e, n in known_factors(vocab, max_tokens=plan.max_tokens) if n.kind in roots
    ]
    rows = local.rows([n for _, n in library], "library", [e.family for e, _ in library])
    seeds = np.random.SeedSequence(plan.seed).spawn(2)
    random_tasks = [
        ("random", seed, (min(plan.task_size, plan.random - start), plan.max_tokens, roots))
        for start, seed in zip(
            range(0, plan.random, plan.task_size),
            seeds[0].spawn(math.ceil(plan.random / plan.task_size)),
            strict=True,
        )
    ]
    rows += _run_all(random_tasks, workers, (panel, vocab, spec, options), local)
    starts = _chain_starts(rows, plan.mcmc_chains)
    chain_seeds = seeds[1].spawn(len(starts))
    # the chains in one contiguous group per worker, so the rows keep the chains' order
    bounds = np.linspace(0, len(starts), min(len(starts), max(1, workers)) + 1).round()
    groups = [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    chain_tasks = [
        (
            "mcmc",
            [chain_seeds[k] for k in group],
            ([starts[k] for k in group], plan.mcmc_steps, plan.temperature, plan.max_tokens),
        )
        for group in groups
    ]
    rows += _run_all(chain_tasks, workers, (panel, vocab, spec, options), local)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    meta = {
        "metric": spec.metric,
        "gamma": spec.gamma,
        "clip": spec.clip,
        "nan_reward": spec.nan_reward,
        "plan": asdict(plan),
        "data_start": str(panel.dates[0])[:10],
        "data_end": str(panel.dates[-1])[:10],
        "rows": int(panel.shape[0]),
        "assets": int(panel.shape[1]),
        "vocabulary": vocab.fingerprint,
        "grammar_version": GRAMMAR_VERSION,
        "sources": frame["source"].value_counts().to_dict(),
    }
    return TrajectorySet(frame, meta | (provenance or {}))


def _chain_starts(rows: list[dict], chains: int) -> list[tuple[str, float]]:
    """The best distinct formulas so far with their rewards, one per chain (cycling if
    there are fewer)."""
    ranked = sorted(rows, key=lambda row: -row["reward"])
    distinct = list(dict.fromkeys((row["formula"], row["reward"]) for row in ranked))
    if not distinct or chains == 0:
        return []
    return [distinct[k % len(distinct)] for k in range(chains)]


def _run_all(tasks: list[tuple], workers: int, context: tuple, local: _Scoring) -> list[dict]:
    if not tasks:
        return []
    if workers <= 1:
        global _WORKER
        previous, _WORKER = _WORKER, local
        try:
            return [row for task in tasks for row in _run_task(task)]
        finally:
            _WORKER = previous
    spawn = get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=spawn, initializer=_init_worker, initargs=context
    ) as pool:
        return [row for chunk in pool.map(_run_task, tasks) for row in chunk]


# -- storage -------------------------------------------------------------------------------


def save_trajectories(trajectories: TrajectorySet, path) -> None:
    """Parquet, provenance in the file's metadata (key ``alphafactory``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(trajectories.frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[b"alphafactory"] = json.dumps(trajectories.provenance, default=str).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def load_trajectories(path) -> TrajectorySet:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as error:
        raise TrajectoryError(f"cannot read trajectories from {path}: {error}") from None
    missing = set(COLUMNS) - set(table.column_names)
    if missing:
        raise TrajectoryError(f"{path} lacks trajectory columns {sorted(missing)}")
    raw = (table.schema.metadata or {}).get(b"alphafactory", b"{}")
    frame = table.to_pandas()
    frame["tokens"] = [list(tokens) for tokens in frame["tokens"]]
    return TrajectorySet(frame[list(COLUMNS)], json.loads(raw))
