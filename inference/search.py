"""Formula search under an evaluation budget: the Decision Transformer and its baselines.

Every method gets the same budget: the number of formula evaluations on the training
period (dates before the split). Nothing after the split is used until the report.

* ``random``: formulas sampled from the grammar, the whole budget.
* ``mcmc``: a fifth of the budget on the known-factor library and random formulas, the
  rest on Metropolis-Hastings chains started at the best of them.
* ``dt``: half the budget builds trajectories (library, random, MCMC, as ``mcmc`` does),
  a Decision Transformer trains on them (every one, drawn more often the higher its
  reward ranks: ``top_weight``), and the other half evaluates formulas it writes
  conditioned on a high target (the trajectories' 99th percentile reward unless given).
* ``bc``: the same, but the network is trained on the best 20% of trajectories with no
  return conditioning (filtered behaviour cloning).

The report scores each distinct candidate on the held-out period (values computed with
the history before the split, metrics on the dates after it): ``n_qualified`` counts the
candidates that meet the alpha definition there and ``hit_rate`` is ``n_qualified /
n_evaluated``, qualified alphas per evaluation spent. ``best`` lists the top candidates
by their training reward (what the search itself can see), with train and test metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alphafactory.formula import Kind, Node, Vocabulary, formula_hash, random_formula
from alphafactory.metrics import AlphaDefinition
from alphafactory.panel import Panel
from alphafactory.scoring import FormulaScorer, metric_values
from inference.encoding import encode
from inference.model import ModelConfig
from inference.sampling import InProcessPolicy, SamplingOptions, generate
from inference.training import TrainConfig, train
from inference.trajectories import BuildPlan, RewardSpec, TrajectorySet, build_trajectories

METHODS = ("dt", "random", "mcmc", "bc")


class SearchError(ValueError):
    """A search setting that cannot work (unknown method, budget too small...)."""


@dataclass(frozen=True)
class SearchConfig:
    method: str
    budget: int
    seed: int = 0
    reward: RewardSpec = field(default_factory=RewardSpec)
    max_tokens: int = 16
    root_kinds: tuple[str, ...] = ("macro", "panel")
    target: float | None = None  # dt: conditioning target; None: target_quantile of the data
    target_quantile: float = 0.99
    top_weight: float = 20.0  # dt: how often the best trajectory is drawn vs the worst (1: uniform)
    train_steps: int = 1_000
    model: ModelConfig | None = None  # dt/bc network size (vocab_size filled in)
    workers: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SearchError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.budget < 20:
            raise SearchError(f"budget must be at least 20 evaluations, got {self.budget}")
        if not 0.0 < self.target_quantile <= 1.0:
            raise SearchError(f"target_quantile must be in (0, 1], got {self.target_quantile}")
        if not self.top_weight >= 1.0:
            raise SearchError(f"top_weight must be >= 1 (1: uniform), got {self.top_weight}")


@dataclass
class Candidates:
    """Distinct formulas a search evaluated, with their training reward."""

    formulas: list[Node]
    rewards: np.ndarray
    n_evaluated: int
    n_valid: int


def run_search(panel: Panel, vocab: Vocabulary, config: SearchConfig) -> Candidates:
    """Run one method on ``panel`` (the training period only)."""
    if config.method == "random":
        return _random_search(panel, vocab, config)
    if config.method == "mcmc":
        return _from_trajectories(_trajectories(panel, vocab, config, config.budget), vocab)
    trajectories = _trajectories(panel, vocab, config, config.budget // 2)
    generated = _generate(panel, vocab, config, trajectories, config.budget - len(trajectories))
    return _merge(_from_trajectories(trajectories, vocab), generated)


def _random_search(panel, vocab, config) -> Candidates:
    rng = np.random.default_rng(config.seed)
    roots = {Kind(kind) for kind in config.root_kinds}
    formulas = [
        random_formula(vocab, rng, max_tokens=config.max_tokens, root_kinds=roots)
        for _ in range(config.budget)
    ]
    return _scored(panel, vocab, config, formulas, evaluated=len(formulas))


def _trajectories(panel, vocab, config, budget: int) -> TrajectorySet:
    """Library + random on a fifth of ``budget``, MCMC chains on the rest; the plan is
    sized so the whole set stays within ``budget`` evaluations."""
    from alphafactory.library import known_factors

    roots = {Kind(kind) for kind in config.root_kinds}
    library = sum(
        1 for _, n in known_factors(vocab, max_tokens=config.max_tokens) if n.kind in roots
    )
    seeds = max(1, budget // 5 - library)
    chains = max(1, min(16, (budget - library - seeds) // 10))
    steps = max(0, (budget - library - seeds) // chains)
    plan = BuildPlan(
        random=seeds,
        mcmc_chains=chains if steps else 0,
        mcmc_steps=steps,
        max_tokens=config.max_tokens,
        root_kinds=config.root_kinds,
        seed=config.seed,
    )
    return build_trajectories(panel, vocab, config.reward, plan, workers=config.workers)


def _from_trajectories(trajectories: TrajectorySet, vocab: Vocabulary) -> Candidates:
    from alphafactory.formula import from_tokens

    frame = trajectories.frame
    valid = np.isfinite(frame["metric_value"].to_numpy())
    distinct = frame[valid].drop_duplicates("formula_hash")
    formulas = [from_tokens(tokens, vocab) for tokens in distinct["tokens"]]
    return Candidates(formulas, distinct["reward"].to_numpy(), len(frame), int(valid.sum()))


def _generate(panel, vocab, config, trajectories: TrajectorySet, count: int) -> Candidates:
    cloning = config.method == "bc"
    data_set = trajectories.top(0.2) if cloning else trajectories
    gamma = config.reward.gamma
    data = encode(
        data_set.token_lists(),
        data_set.frame["reward"],
        vocab,
        context=config.max_tokens,
        gamma=gamma,
    )
    model_config = ModelConfig(
        **{
            **(config.model.to_dict() if config.model else {}),
            "vocab_size": len(vocab),
            "context": config.max_tokens,
            "max_depth": vocab.config.max_depth,
            "behaviour_cloning": cloning,
        },
    )
    steps = config.train_steps
    rewards = data_set.frame["reward"].to_numpy()
    weights = None if cloning else _rank_weights(rewards, config.top_weight)
    result = train(
        data,
        None,
        model_config,
        TrainConfig(
            steps=steps,
            batch_size=min(256, max(16, len(data))),
            warmup_steps=max(1, steps // 10),
            eval_every=steps,
            seed=config.seed,
        ),
        row_weights=weights,
    )
    target = config.target
    if target is None:
        target = float(np.quantile(rewards, config.target_quantile))
    seen = set(trajectories.frame["formula_hash"])
    roots = {Kind(kind) for kind in config.root_kinds}
    found = generate(
        InProcessPolicy(result.model),
        vocab,
        target,
        max(1, count),
        options=SamplingOptions(gamma=gamma, max_attempts=4 * max(1, count)),
        rng=np.random.default_rng(config.seed),
        root_kinds=roots,
        exclude=seen,
    )
    # every episode sampled costs an evaluation in a live system only if new: duplicates
    # are dropped before evaluation, so the budget counts distinct new formulas
    return _scored(panel, vocab, config, found.formulas, evaluated=len(found.formulas))


def _rank_weights(rewards: np.ndarray, top_weight: float) -> np.ndarray | None:
    """Weights rising geometrically with the reward's rank, from 1 (worst) to
    ``top_weight`` (best): the Decision Transformer still sees every return, but the good
    trajectories, which it is asked to reproduce, more often."""
    if top_weight == 1.0 or len(rewards) < 2:
        return None
    ranks = np.argsort(np.argsort(rewards, kind="stable"), kind="stable") / (len(rewards) - 1)
    return top_weight**ranks


def _scored(panel, vocab, config, formulas: list[Node], *, evaluated: int) -> Candidates:
    scorer = FormulaScorer(panel, config=vocab.config)
    values = metric_values(scorer.score(formulas), config.reward.metric)
    valid = np.isfinite(values)
    distinct: dict[str, int] = {}
    for index, formula in enumerate(formulas):
        if valid[index]:
            distinct.setdefault(formula_hash(formula), index)
    keep = list(distinct.values())
    rewards = config.reward.rewards(values[keep])
    return Candidates([formulas[k] for k in keep], rewards, evaluated, int(valid.sum()))


def _merge(first: Candidates, second: Candidates) -> Candidates:
    seen = {formula_hash(f) for f in first.formulas}
    extra = [k for k, f in enumerate(second.formulas) if formula_hash(f) not in seen]
    return Candidates(
        first.formulas + [second.formulas[k] for k in extra],
        np.concatenate([first.rewards, second.rewards[extra]]),
        first.n_evaluated + second.n_evaluated,
        first.n_valid + second.n_valid,
    )


def search_report(
    candidates: Candidates,
    config: SearchConfig,
    panel: Panel,
    split_row: int,
    definition: AlphaDefinition,
    vocab: Vocabulary,
    *,
    top: int = 10,
) -> dict:
    """The JSON-ready summary (module doc): held-out qualification and the best formulas."""
    train_scorer = FormulaScorer(panel.head(split_row), config=vocab.config)
    test_scorer = FormulaScorer(panel, config=vocab.config, score_from=split_row)
    test = test_scorer.score(candidates.formulas)
    qualified = sum(1 for m in test if m is not None and definition.evaluate(m))
    order = np.argsort(-candidates.rewards, kind="stable")[:top]
    best_formulas = [candidates.formulas[k] for k in order]
    train = train_scorer.score(best_formulas)
    best = [
        {"formula": str(f), "train": _metrics(tr), "test": _metrics(test[k])}
        for f, tr, k in zip(best_formulas, train, order, strict=True)
    ]
    test_ics = [entry["test"].get("ic") for entry in best]
    finite = [ic for ic in test_ics if ic is not None and math.isfinite(ic)]
    return {
        "method": config.method,
        "budget": config.budget,
        "seed": config.seed,
        "definition": str(definition),
        "reward_metric": config.reward.metric,
        "n_evaluated": candidates.n_evaluated,
        "n_valid": candidates.n_valid,
        "n_unique": len(candidates.formulas),
        "n_qualified": qualified,
        "hit_rate": qualified / max(1, candidates.n_evaluated),
        "mean_test_ic_top": float(np.mean(finite)) if finite else None,
        "best": best,
    }


def _metrics(metrics) -> dict:
    if metrics is None:
        return {}
    out = {}
    for key, value in metrics.to_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out
