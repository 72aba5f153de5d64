"""The generator's jobs from files: what the CLI commands run (and tests call directly).

Each takes a typed job (``inference.jobs``), reads its inputs, runs the domain functions,
writes its outputs and returns a JSON-ready summary; every failure a user can cause
surfaces as a ``ValueError`` subclass with a message that names the bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alphafactory.clock import visible_from
from alphafactory.formula import Kind, Vocabulary
from alphafactory.panel import Panel
from alphafactory.scoring import FormulaScorer, ScoringOptions, config_for_panel, metric_values
from inference.encoding import encode
from inference.jobs import BuildJob, GenerateJob, PanelSource, SearchJob, TrainJob
from inference.model import ModelConfig
from inference.sampling import InProcessPolicy, SamplingOptions, Target, generate
from inference.training import (
    Checkpoint,
    TrainConfig,
    load_checkpoint,
    save_checkpoint,
    train,
)
from inference.trajectories import (
    BuildPlan,
    RewardSpec,
    TrajectoryError,
    TrajectorySet,
    build_trajectories,
    load_trajectories,
    save_trajectories,
)


def split_row(panel: Panel, split: str) -> int:
    """Index of the first date on or after ``split``; both periods must be non-trivial."""
    try:
        when = np.datetime64(split, "ns")
    except ValueError:
        raise TrajectoryError(f"--split {split!r} is not a date (YYYY-MM-DD)") from None
    row = int(np.searchsorted(panel.dates.astype("datetime64[ns]"), when))
    if row < 3 or row > panel.shape[0] - 3:
        first, last = str(panel.dates[0])[:10], str(panel.dates[-1])[:10]
        raise TrajectoryError(
            f"--split {split} leaves {row} rows before and {panel.shape[0] - row} after; "
            f"the data runs {first} .. {last}: split inside it with room on both sides"
        )
    return row


def load_split_panel(source: PanelSource) -> tuple[Panel, int]:
    from alphafactory.data.panel_files import load_panel

    if source.split is None:
        raise TrajectoryError("a split date is required (--split YYYY-MM-DD)")
    try:
        panel = load_panel(source.data, macro_columns=list(source.macro))
    except OSError as error:
        raise TrajectoryError(f"cannot read {source.data}: {error}") from None
    return panel, split_row(panel, source.split)


def panel_vocabulary(panel: Panel) -> Vocabulary:
    return Vocabulary(panel.operand_kinds, config_for_panel(panel))


def build_from_file(job: BuildJob) -> tuple[int, dict]:
    panel, row = load_split_panel(job.source)
    vocab = panel_vocabulary(panel)
    spec = RewardSpec(job.metric, gamma=job.gamma)
    plan = BuildPlan(
        random=job.random,
        mcmc_chains=job.chains,
        mcmc_steps=job.steps,
        temperature=job.temperature,
        max_tokens=job.max_tokens,
        root_kinds=job.roots,
        seed=job.seed,
    )
    trajectories = build_trajectories(
        panel.head(row),
        vocab,
        spec,
        plan,
        workers=job.workers,
        provenance={"data_file": str(job.source.data), "split": job.source.split},
    )
    save_trajectories(trajectories, job.out)
    return len(trajectories), trajectories.provenance


def train_from_file(job: TrainJob, *, progress: Callable[[dict], None] | None = None) -> dict:
    trajectories = load_trajectories(job.trajectories)
    panel, row = load_split_panel(job.source)
    vocab = panel_vocabulary(panel)
    saved = trajectories.provenance.get("vocabulary")
    if saved and saved != vocab.fingerprint:
        raise TrajectoryError(
            f"{job.trajectories} was built on another vocabulary ({saved}) than {job.source.data} "
            f"gives ({vocab.fingerprint}): same data file and columns expected"
        )
    train_set, validation_set = holdout(trajectories, job.validation, job.seed)
    if job.top is not None:
        train_set = train_set.top(job.top)
    gamma = float(trajectories.provenance.get("gamma", 1.0))
    context = int(trajectories.provenance.get("plan", {}).get("max_tokens", 16))
    metric = trajectories.provenance.get("metric", "hac_tstat")
    data = encode(
        train_set.token_lists(), train_set.frame["reward"], vocab, context=context, gamma=gamma
    )
    validation = None
    if len(validation_set):
        later = later_period_rewards(validation_set, panel, row, vocab, metric, trajectories)
        validation = encode(
            validation_set.token_lists(), later, vocab, context=context, gamma=gamma
        )
    model_config = ModelConfig(
        vocab_size=len(vocab),
        context=context,
        max_depth=vocab.config.max_depth,
        n_layer=job.layers,
        n_head=job.heads,
        d_model=job.d_model,
        dropout=job.dropout,
        attention_dropout=job.attention_dropout,
        behaviour_cloning=job.top is not None,
    )
    config = TrainConfig(
        steps=job.steps,
        batch_size=job.batch_size,
        learning_rate=job.lr,
        min_learning_rate=job.lr / 10,
        warmup_steps=min(100, job.steps // 10),
        seed=job.seed,
        eval_every=max(1, job.steps // 10),
        device=job.device,
    )
    result = train(data, validation, model_config, config, progress=progress)
    summary = {
        "checkpoint": str(job.out),
        "trajectories": len(train_set),
        "validation": len(validation_set),
        "best_loss": result.best_val_loss,
        "seconds": round(result.seconds, 2),
        "rows_per_second": round(result.rows_per_second),
        "history": result.history,
    }
    # the validation rewards come from the dates after the split, and they choose the
    # checkpoint kept: with validation, the model has seen the whole file
    last_seen = panel.dates[-1] if validation is not None else panel.dates[row - 1]
    reward = {
        "metric": metric,
        "gamma": gamma,
        "clip": trajectories.provenance.get("clip"),
        "split": job.source.split,
        "trained_until": _released_by(last_seen),
    }
    save_checkpoint(
        job.out,
        result.model,
        vocab,
        reward=reward,
        provenance=trajectories.provenance,
        training=summary,
    )
    return summary


@dataclass(frozen=True)
class WarmStart:
    """Train from ``checkpoint``'s weights for ``steps`` (fine-tuning on the new data)."""

    checkpoint: Checkpoint
    steps: int


def scoring_provenance(options: ScoringOptions) -> dict:
    """How the reward's metric was measured, for the checkpoint's record."""
    position = options.position
    return {
        "execution_lag": options.execution_lag,
        "class_group": options.class_group,
        "position": position.kind if position else "quantile long-short",
    }


def train_on_panel(
    panel: Panel,
    row: int,
    out: Path,
    *,
    plan: BuildPlan,
    steps: int,
    spec: RewardSpec | None = None,
    model: ModelConfig | None = None,
    workers: int = 1,
    progress: Callable[[dict], None] | None = None,
    warm_start: WarmStart | None = None,
    options: ScoringOptions | None = None,
) -> dict:
    """Build trajectories on the rows before ``row`` and train a generator on them, in one
    go (the demo's path); the checkpoint at ``out`` is self-contained as always.
    ``options``: how the trajectories' formulas are scored (a strategy's, so the generator
    is rewarded on the statistic its candidates are judged on; default: contract 5). With
    ``warm_start``, training starts from an earlier checkpoint's weights for its
    ``steps`` when its vocabulary and shape are this one's (a new operand since: from
    scratch, ``steps``); the summary says which."""
    spec = spec or RewardSpec()
    vocab = panel_vocabulary(panel)
    trajectories = build_trajectories(
        panel.head(row),
        vocab,
        spec,
        plan,
        workers=workers,
        options=options,
        provenance={"split": str(panel.dates[row])[:10]},
    )
    data = encode(
        trajectories.token_lists(),
        trajectories.frame["reward"],
        vocab,
        context=plan.max_tokens,
        gamma=spec.gamma,
    )
    sizes = (model or ModelConfig(vocab_size=1)).to_dict()
    model_config = ModelConfig(
        **{
            **sizes,
            "vocab_size": len(vocab),
            "context": plan.max_tokens,
            "max_depth": vocab.config.max_depth,
        }
    )
    initial = None
    if warm_start is not None and (
        warm_start.checkpoint.vocab.fingerprint == vocab.fingerprint
        and warm_start.checkpoint.model.config == model_config
    ):
        initial, steps = warm_start.checkpoint.model, warm_start.steps
    config = TrainConfig(
        steps=steps,
        batch_size=256,
        warmup_steps=max(1, steps // 10),
        eval_every=max(1, steps // 5),
        seed=plan.seed,
    )
    result = train(data, None, model_config, config, progress=progress, initial=initial)
    summary = {
        "trajectories": len(trajectories),
        "seconds": round(result.seconds, 2),
        "train_loss": result.history[-1]["train_loss"],
        "warm_start": initial is not None,
    }
    reward = {
        "metric": spec.metric,
        "gamma": spec.gamma,
        "clip": spec.clip,
        "split": str(panel.dates[row])[:10],
        "trained_until": _released_by(panel.dates[row - 1]),
        "scoring": scoring_provenance(options or ScoringOptions()),
    }
    save_checkpoint(
        out,
        result.model,
        vocab,
        reward=reward,
        provenance=trajectories.provenance,
        training=summary,
    )
    return summary


def _released_by(date) -> str:
    """When the data of panel date ``date`` (and everything before) had been released."""
    return visible_from(np.array([date], dtype="datetime64[ns]"))[0].isoformat()


def holdout(trajectories: TrajectorySet, fraction: float, seed: int):
    """Split by formula into (train, validation) sets; ``fraction`` in [0, 0.5]."""
    if not 0.0 <= fraction <= 0.5:
        raise TrajectoryError(f"--validation must be in [0, 0.5], got {fraction}")
    rng = np.random.default_rng(seed)
    held = rng.random(len(trajectories)) < fraction
    frame = trajectories.frame
    return (
        TrajectorySet(frame[~held].reset_index(drop=True), trajectories.provenance),
        TrajectorySet(frame[held].reset_index(drop=True), trajectories.provenance),
    )


def later_period_rewards(trajectories, panel, row, vocab, metric, source) -> np.ndarray:
    """The trajectories' rewards measured after the split (history before it allowed)."""
    spec = RewardSpec(
        metric,
        gamma=float(source.provenance.get("gamma", 1.0)),
        clip=float(source.provenance.get("clip", 10.0)),
    )
    scorer = FormulaScorer(panel, config=vocab.config, score_from=row)
    return spec.rewards(metric_values(scorer.score(list(trajectories.frame["formula"])), metric))


def generate_from_checkpoint(job: GenerateJob, triton=None) -> dict:
    """Generate with the checkpoint in process, or through Triton when ``triton`` (the
    ``TritonSettings``) is given; the checkpoint then supplies the vocabulary and, per
    ``triton.fallback``, the in-process answer when Triton is unavailable."""
    checkpoint = load_checkpoint(job.model)
    target = Target.parse(job.target)
    trained = checkpoint.reward.get("metric")
    if target.metric != trained:
        raise TrajectoryError(
            f"--target {job.target!r}: this model was trained on {trained!r}; "
            f"give a target such as {trained}=3"
        )
    options = SamplingOptions(
        temperature=job.temperature,
        top_k=job.top_k,
        gamma=float(checkpoint.reward.get("gamma", 1.0)),
    )
    trained_roots = checkpoint.provenance.get("plan", {}).get("root_kinds")
    roots = job.roots or trained_roots
    policy = InProcessPolicy(checkpoint.model)
    if triton is not None:
        policy = triton_policy(triton, policy)
    result = generate(
        policy,
        checkpoint.vocab,
        target.value,
        job.n,
        options=options,
        rng=np.random.default_rng(job.seed),
        root_kinds={Kind(k) for k in roots} if roots else None,
    )
    return {
        "target": {"metric": target.metric, "value": target.value},
        "n_requested": job.n,
        "n_generated": len(result.formulas),
        "attempts": result.attempts,
        "duplicates": result.duplicates,
        "formulas": [str(f) for f in result.formulas],
    }


def search_from_file(job: SearchJob) -> dict:
    from alphafactory.data.panel_files import load_panel
    from alphafactory.metrics import parse_definition
    from inference.search import SearchConfig, run_search, search_report

    definition = parse_definition(job.definition)
    try:
        panel = load_panel(job.source.data, macro_columns=list(job.source.macro))
    except OSError as error:
        raise TrajectoryError(f"cannot read {job.source.data}: {error}") from None
    split = job.source.split or str(panel.dates[int(0.7 * (panel.shape[0] - 1))])[:10]
    row = split_row(panel, split)
    vocab = panel_vocabulary(panel)
    config = SearchConfig(
        method=job.method,
        budget=job.budget,
        seed=job.seed,
        reward=RewardSpec(job.metric),
        max_tokens=job.max_tokens,
        root_kinds=job.roots,
        target=job.target,
        train_steps=job.train_steps,
        workers=job.workers,
    )
    candidates = run_search(panel.head(row), vocab, config)
    report = search_report(candidates, config, panel, row, definition, vocab, top=job.top)
    return {**report, "split": split}


def triton_policy(triton, local: InProcessPolicy, *, trained_until=None, version=None):
    """The Triton client of the settings (for one ``version`` of the model when given),
    wrapped in the fallback when configured. A served model that says it was trained
    later than the checkpoint (``trained_until``) is another model: refused, so the
    point-in-time check on the checkpoint holds."""
    from inference.triton_client import FallbackPolicy, TritonPolicy, TritonUnavailable

    def connect() -> TritonPolicy:
        remote = TritonPolicy(
            triton.grpc,
            triton.generator_model,
            version=version,
            version_names=triton.version_names,
            context=local.context,  # where the server cannot say it
            timeout_s=triton.request_timeout_s,
            retries=triton.retries,
        )
        shapes = (remote.context, remote.vocab_size)
        if shapes != (local.context, local.model.config.vocab_size):
            raise TritonUnavailable(
                f"Triton's {triton.generator_model!r} has context and vocabulary {shapes}; "
                f"the checkpoint has {(local.context, local.model.config.vocab_size)}: "
                "export this checkpoint and restart Triton"
            )
        if remote.trained_until and trained_until and remote.trained_until > trained_until:
            raise TritonUnavailable(
                f"Triton's {triton.generator_model!r} was trained on data released until "
                f"{remote.trained_until.isoformat()}, after the checkpoint's "
                f"{trained_until.isoformat()}: export this checkpoint and restart Triton"
            )
        return remote

    if triton.fallback == "in_process":
        return FallbackPolicy(connect, local)
    return connect()
