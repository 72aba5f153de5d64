"""The generators a generation service samples from: a served policy with its vocabulary,
and the registry's versions of each generator, chosen per request.

``VersionedGenerators.for_request`` applies ``alphafactory.model_versions.choose_version``
to the registry's rows (never a version trained on data released after the decision)
and asks the trainer for a retraining that has come due on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from alphafactory.events import TrainingRequest
from alphafactory.formula import Vocabulary
from alphafactory.model_versions import ModelVersion, choose_version, retraining_due
from alphafactory.strategy import Strategy
from inference.sampling import NextActionPolicy
from storage.models import list_versions, promoted_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generator:
    """A served generator: its policy, vocabulary, return-to-go discount, and when the
    data it was trained on had all been released (None: unknown)."""

    policy: NextActionPolicy
    vocab: Vocabulary
    gamma: float
    trained_until: datetime | None = None


@dataclass
class VersionedGenerators:
    """The registry's versions of every generator, each loaded on first use and kept
    (``load``: a version's served policy with its checkpoint in process as fallback)."""

    load: Callable[[ModelVersion], Generator]
    request_training: Callable[[TrainingRequest], None] | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _loaded: dict[tuple[str, int], Generator] = field(default_factory=dict)
    _asked: set[tuple[str, datetime]] = field(default_factory=set)

    def for_request(
        self, conn: psycopg.Connection, strategy: Strategy, decision_time: datetime
    ) -> tuple[Generator, ModelVersion] | None:
        """The version a request of ``strategy`` decided at ``decision_time`` uses; None
        when the registry has no version of its generator at all."""
        name = strategy.generation.generator
        versions = list_versions(conn, name)
        if not versions:
            return None
        chosen = choose_version(versions, promoted_version(conn, name), decision_time)
        self._retrain_if_due(strategy, versions, decision_time)
        key = (name, chosen.version)
        if key not in self._loaded:
            log.info("loading %s (cutoff %s)", chosen.label, chosen.cutoff.isoformat())
            self._loaded[key] = self.load(chosen)
        return self._loaded[key], chosen

    def _retrain_if_due(self, strategy: Strategy, versions, decision_time: datetime) -> None:
        every = strategy.generation.retrain_every_months
        due = retraining_due(versions, every, decision_time)
        key = (strategy.generation.generator, due)
        if due is None or self.request_training is None or key in self._asked:
            return
        self._asked.add(key)
        log.info("%s: retraining due (cutoff %s): asking the trainer", strategy.id, due)
        self.request_training(
            TrainingRequest(
                generator=strategy.generation.generator,
                strategy_id=strategy.id,
                cutoff=due,
                requested_at=self.now(),
            )
        )
