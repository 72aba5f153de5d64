"""The trainer: one generator version per (generator, cutoff), rolled out through Triton.

:func:`train_version` is the whole lifecycle of one version, each step safe to repeat (a
redelivered training task, a crash half-way):

1. Train on the strategy's data released before the cutoff only (``generator_setup``:
   trajectories and model from the point-in-time store; the row the cutoff falls on is
   held out), into ``<state>/models/<generator>/cutoff-<UTC stamp>.pt``.
2. Register it in ``core.model_versions`` (the next number; the same cutoff again returns
   the stored version).
3. Export it to the Triton model repository as that version beside the earlier ones and
   have it served: production Triton is asked to load the model again (explicit model
   control, with the admin key); the embedded PyTriton server watches the repository.
   Then wait until the version answers readiness.
4. Mark it ready (requests may use it from now on) and, with ``promote``, roll it out.

The Celery queue ``train`` carries :class:`TrainingRequest`; the generation service asks
for one when a strategy's ``generation.retrain_every_months`` have passed since the
newest version's cutoff, and ``alphafactory walkforward`` before each retraining date.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from alphafactory.events import TrainingRequest
from alphafactory.model_versions import ModelVersion, warm_start_version
from alphafactory.settings import Settings
from alphafactory.strategy import Strategy

log = logging.getLogger("alphafactory.trainer")
SERVE_TIMEOUT_S = 120.0


def version_checkpoint(settings: Settings, generator: str, cutoff: datetime) -> Path:
    stamp = cutoff.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.state_path / "generators" / (generator or "default") / f"cutoff-{stamp}.pt"


def train_version(
    settings: Settings,
    strategy: Strategy,
    cutoff: datetime,
    *,
    promote: bool = True,
    steps: int | None = None,
    formulas: int | None = None,
    warm_steps: int | None = None,
) -> ModelVersion:
    """Train, register, serve and (with ``promote``) roll out the version for ``cutoff``.
    A new version starts from the weights of the latest ready one before its cutoff
    (``warm_start_version``; ``warm_steps`` of fine-tuning) when its vocabulary still
    fits, otherwise from scratch (``steps``)."""
    from app.generator_setup import (
        DEFAULT_FORMULAS,
        DEFAULT_STEPS,
        DEFAULT_WARM_STEPS,
        served_name,
        train_from_store,
    )
    from storage.db import connect
    from storage.models import list_versions, mark_ready, register_version, version_at_cutoff
    from storage.models import promote as roll_out

    generator = strategy.generation.generator
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        stored = version_at_cutoff(conn, generator, cutoff)
        earlier = warm_start_version(list_versions(conn, generator), cutoff)
    path = version_checkpoint(settings, generator, cutoff)
    if stored is None or not Path(stored.checkpoint).is_file():
        trained = train_from_store(
            settings,
            strategy,
            until=cutoff,
            steps=steps or DEFAULT_STEPS,
            formulas=formulas or DEFAULT_FORMULAS,
            out=path,
            warm_start=_warm_start(earlier, warm_steps),
        )
        log.info("%s: %s", strategy.id, trained.describe())
        training = {
            "trajectories": trained.trajectories,
            "seconds": trained.seconds,
            "first_date": trained.first_date,
            "last_date": trained.last_date,
            "steps": steps or DEFAULT_STEPS,
            "warm_start_from": earlier.version if trained.warm_start else None,
        }
        if trained.warm_start:
            training["steps"] = warm_steps or DEFAULT_WARM_STEPS
    else:
        training = stored.training
    from inference.training import load_checkpoint

    checkpoint = load_checkpoint(path)
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        version = register_version(
            conn,
            generator=generator,
            cutoff=cutoff,
            trained_until=checkpoint.trained_until or cutoff,
            strategy_id=strategy.id,
            checkpoint=str(path),
            served_model=served_name(settings, generator),
            training=training,
        )
    if version.ready_at is None:
        serve_version(settings, version, checkpoint)
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        mark_ready(conn, generator, version.version)
        if promote:
            roll_out(conn, generator, version.version, f"trained on data before {cutoff:%Y-%m-%d}")
    log.info("%s ready (cutoff %s)%s", version.label, cutoff.isoformat(), ", promoted" * promote)
    return version


def _warm_start(earlier: ModelVersion | None, warm_steps: int | None):
    """Fine-tuning from ``earlier``'s checkpoint, when it is there to read."""
    from app.generator_setup import DEFAULT_WARM_STEPS
    from inference.pipeline import WarmStart
    from inference.training import CheckpointError, load_checkpoint

    if earlier is None or not Path(earlier.checkpoint).is_file():
        return None
    try:
        return WarmStart(load_checkpoint(earlier.checkpoint), warm_steps or DEFAULT_WARM_STEPS)
    except CheckpointError as error:
        log.warning("%s: no warm start from its checkpoint (%s)", earlier.label, error)
        return None


def serve_version(settings: Settings, version: ModelVersion, checkpoint) -> None:
    """Export ``version`` to the model repository and wait until Triton serves it (after
    ``SERVE_TIMEOUT_S`` it is left to the in-process fallback, logged)."""
    from inference.export import export_repository
    from inference.repository import ServingOptions

    instances = "cpu" if settings.triton.embedded else "gpu"
    options = ServingOptions(version.served_model, version=version.version, instances=instances)
    export_repository(checkpoint, settings.triton.repository, options)
    reason = _wait_served(settings, version)
    if reason:
        log.warning(
            "%s is exported but not served after %.0f s (%s): requests use the checkpoint "
            "in process per triton.fallback",
            version.label,
            SERVE_TIMEOUT_S,
            reason,
        )


def _wait_served(settings: Settings, version: ModelVersion) -> str:
    from inference.triton_client import wait_until_served

    key = settings.triton.admin_key
    return wait_until_served(
        settings.triton.http,
        version.served_model,
        version.version,
        version_names=settings.triton.version_names,
        admin_key=key.get_secret_value() if key is not None else None,
        timeout_s=SERVE_TIMEOUT_S,
    )


def handle_training_request(settings: Settings, payload: dict) -> int:
    """The ``train`` task's work: the request's version number once it is ready."""
    from app.wiring import strategies_by_id
    from consumers.failures import UnknownStrategy

    request = TrainingRequest.model_validate_json(json.dumps(payload))
    if settings.pipeline.trainer_threads:
        import torch

        from alphafactory.scoring import set_kernel_threads

        # the trajectories' scoring too: on two threads over cores the pipeline keeps busy,
        # the kernels spent 4 times the CPU of one thread (21.5 s against 5.5 for the MCMC
        # chains of one retraining, measured on the bundled panel)
        torch.set_num_threads(settings.pipeline.trainer_threads)
        set_kernel_threads(settings.pipeline.trainer_threads)
    strategies = strategies_by_id(settings)
    if request.strategy_id not in strategies:
        raise UnknownStrategy(
            f"training request for strategy {request.strategy_id!r}; known: {sorted(strategies)}"
        )
    version = train_version(
        settings,
        strategies[request.strategy_id],
        request.cutoff,
        promote=request.promote,
        steps=request.steps,
        formulas=request.formulas,
        warm_steps=request.warm_steps,
    )
    return version.version
