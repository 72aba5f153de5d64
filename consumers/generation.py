"""The generation service: a request in, candidate formulas out to the Celery workers.

For each ``GenerationRequest`` (every step idempotent, so a redelivered request repeats
nothing and a crash at any point loses nothing):

1. ``register_request``: once per (strategy, trigger); a request that ended before
   (failed, skipped) does nothing more.
2. Rebalance rule: a request decided within ``rebalance.min_days_between`` days after
   the strategy's last request that was not skipped is recorded as skipped.
3. If its candidates are not recorded yet: the strategy's own formulas
   (``formulas.include``), its supervised alphas (``[ml]``, origin ``ml``:
   ``alphafactory.ml.candidate``) and ``generation.candidates`` new ones from the generator
   (batched next-action calls, through Triton or in process per the settings,
   conditioned on the strategy's target); store them as factors and as the request's
   candidates, with the generator version that wrote them, in one transaction. The
   sampling seed comes from the request id, so a request generated again after a crash
   writes the same formulas. The version: the registry's (``VersionedGenerators``:
   ``alphafactory.model_versions.choose_version``, never one trained on data released
   after the decision), or the checkpoint file's when the registry has none; a
   retraining that has come due is asked of the trainer on the way. A baseline
   strategy (``generation.source`` random or library, the walk-forward's baselines)
   writes as many formulas from the grammar or the known-factor library instead, in the
   vocabulary of its decision panel (``inference.baselines``).
4. Send the still-pending candidates to the workers in chunks; with none at all, allocate
   at once (there will be no result to wake the allocator).

When Triton is down and the fallback is ``fail``, the request waits and retries (the
consumer does not commit past it); with ``in_process`` the local model answers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import psycopg
from kafka.consumer.fetcher import ConsumerRecord
from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from alphafactory.events import EventError, GenerationRequest, decode
from alphafactory.formula import Kind, Vocabulary, formula_hash
from alphafactory.ml.candidate import candidate_hash
from alphafactory.model_versions import ModelVersion
from alphafactory.retry import Backoff, RetryStopped, retry
from alphafactory.strategy import Strategy
from consumers.allocation import AllocationContext, allocate_request
from consumers.failures import UnknownStrategy
from consumers.generators import Generator, VersionedGenerators
from inference.sampling import NextActionPolicy, SamplingOptions, Target, generate
from inference.triton_client import TritonUnavailable
from storage.factors import upsert_factors
from storage.models import record_model_used
from storage.requests import (
    RequestRecord,
    pending_candidates,
    recent_request,
    record_failure,
    record_skip,
    register_request,
    set_candidates,
)

log = logging.getLogger(__name__)
Dispatch = Callable[[str, list[str], int], int]  # (request id, hashes, chunk size) -> tasks


@dataclass
class GenerationContext:
    strategies: dict[str, Strategy]
    # the default generator's checkpoint file (strategies with generation.generator ""
    # and no registered version); None: there is none
    policy: NextActionPolicy | None
    vocab: Vocabulary | None
    gamma: float
    dispatch: Dispatch
    allocation: AllocationContext
    stop_event: threading.Event
    retry_wait_s: float = 5.0
    sample_batch: int = 1024  # episodes sampled together (triton.sample_batch)
    # everything the generator was trained on had been released by then (None: unknown)
    trained_until: datetime | None = None
    generators: dict[str, Generator] = field(default_factory=dict)  # the named ones
    versions: VersionedGenerators | None = None  # the registry's (None: files only)

    def generator_for(self, strategy: Strategy) -> Generator:
        """The checkpoint file of the generator ``strategy`` names
        (``generation.generator``; "" the default)."""
        name = strategy.generation.generator
        if not name and self.policy is None:
            raise MissingGenerator(
                f"strategy {strategy.id!r} uses the default generator, which is neither "
                "registered nor a checkpoint file: train one (alphafactory init)"
            )
        if not name:
            return Generator(self.policy, self.vocab, self.gamma, self.trained_until)
        if name not in self.generators:
            raise MissingGenerator(
                f"strategy {strategy.id!r} uses generator {name!r}, which this service has "
                f"not loaded (loaded: {sorted(self.generators) or 'none'}); train it with "
                f"alphafactory model train --strategy {strategy.id}"
            )
        return self.generators[name]


class GeneratorFromTheFuture(ValueError):
    """The generator was trained on data released after the request's decision time."""


class MissingGenerator(LookupError):
    """A strategy names a generator that is not trained or not loaded (poison: the request
    ends failed with this reason)."""


def handle_request(
    conn: psycopg.Connection, context: GenerationContext, request: GenerationRequest
) -> int:
    """Process one request (module doc); returns the number of tasks sent."""
    strategy = context.strategies.get(request.strategy_id)
    if strategy is None:
        known = sorted(context.strategies)
        raise UnknownStrategy(
            f"request {request.request_id!r} names strategy {request.strategy_id!r}; known: {known}"
        )
    stored = register_request(conn, RequestRecord.of(request))
    if stored.failed_at is not None or stored.skipped is not None:
        why = stored.failure or stored.skipped
        log.info("request %s is finished already (%s): nothing to do", stored.request_id, why)
        return 0
    if stored.n_candidates is None and (reason := _too_soon(conn, strategy, stored)):
        record_skip(conn, stored.request_id, reason)
        log.info("request %s skipped: %s", stored.request_id, reason)
        return 0
    if stored.n_candidates is None:
        source = strategy.generation.source
        generator, version = (
            _generator(conn, context, strategy, stored) if source == "model" else (None, None)
        )
        log.info(
            "request %s (%s): generating %d candidates with %s",
            stored.request_id,
            strategy.id,
            request.candidates,
            version.label if version else f"the {source}" if generator is None else "a file",
        )
        candidates = _candidates(conn, generator, context, strategy, stored, request.candidates)
        with conn.transaction():
            upsert_factors(conn, candidates)  # one statement for the request's formulas
            newly_set = set_candidates(conn, stored.request_id, [h for h, _, _ in candidates])
            if newly_set:
                number = version.version if version else None
                name = strategy.generation.generator if generator else source
                record_model_used(conn, stored.request_id, name, number)
        if newly_set:
            telemetry.CANDIDATES_GENERATED.labels(strategy.id).inc(len(candidates))
        log.info(
            "request %s (%s, %s): %d new candidates",
            stored.request_id,
            strategy.id,
            stored.as_of,
            len(candidates),
        )
    pending = pending_candidates(conn, stored.request_id)
    if not pending:
        allocate_request(conn, context.allocation, stored.request_id)
        return 0
    return context.dispatch(stored.request_id, pending, strategy.generation.chunk_size)


def _generator(
    conn, context: GenerationContext, strategy: Strategy, request: RequestRecord
) -> tuple[Generator, ModelVersion | None]:
    """The registry's version for the request, else the checkpoint file (refused when
    it was trained on data released after the decision)."""
    if context.versions is not None:
        found = context.versions.for_request(conn, strategy, request.decision_time)
        if found is not None:
            return found
    generator = context.generator_for(strategy)
    _refuse_a_future_model(generator, request)
    return generator, None


def _refuse_a_future_model(generator: Generator, request: RequestRecord) -> None:
    """Point-in-time holds for the generator too: a model trained on data released after
    the decision would carry the future into it (poison: the request ends failed)."""
    cutoff = generator.trained_until
    if cutoff is not None and request.decision_time < cutoff:
        raise GeneratorFromTheFuture(
            f"request {request.request_id!r} decides at {request.decision_time.isoformat()}, "
            f"but the generator was trained on data released until {cutoff.isoformat()}; "
            "serve a generator trained on data before the decision (model train --split)"
        )


def _candidates(
    conn: psycopg.Connection,
    generator: Generator | None,
    context: GenerationContext,
    strategy: Strategy,
    request: RequestRecord,
    n: int,
) -> list[tuple[str, str, str]]:
    """(formula hash, canonical text, origin) of the request's candidates: the strategy's
    own ``formulas.include`` and ``[ml]`` alphas, then ``n`` more from the generator. A
    request's candidates depend on the request alone (its seed), never on what other
    requests have reached, so a replay's decisions do not depend on its speed."""
    included = [(formula_hash(text), text, "strategy") for text in strategy.formulas.include]
    included += [(candidate_hash(text), text, "ml") for text in strategy.ml.candidates()]
    exclude = {hashed for hashed, _, _ in included}
    if generator is None:
        generated = _baseline(conn, context, strategy, request, n, exclude)
    else:
        generated = _generate(generator, context, strategy, request, n, exclude)
    return included + [(formula_hash(f), str(f), "generator") for f in generated]


def _seed(request: RequestRecord) -> int:
    return int.from_bytes(hashlib.sha256(request.request_id.encode()).digest()[:8], "little")


def _baseline(conn, context, strategy: Strategy, request: RequestRecord, n: int, exclude):
    """A baseline's formulas, in the vocabulary of the request's decision panel."""
    from inference.baselines import library_candidates, random_candidates
    from inference.pipeline import panel_vocabulary

    panel = context.allocation.panels.get(
        conn, strategy, request.decision_time, request.trigger_event_id
    )
    make = random_candidates if strategy.generation.source == "random" else library_candidates
    return make(
        panel_vocabulary(panel),
        n,
        np.random.default_rng(_seed(request)),
        max_tokens=strategy.formulas.max_tokens,
        root_kinds={Kind(kind) for kind in strategy.formulas.root_kinds},
        exclude=exclude,
    )


def _generate(generator: Generator, context, strategy: Strategy, request: RequestRecord, n, ex):
    target = Target.parse(strategy.alpha.target)
    seed = _seed(request)
    options = SamplingOptions(
        temperature=strategy.generation.temperature,
        top_k=strategy.generation.top_k,
        batch_size=context.sample_batch,
        gamma=generator.gamma,
    )
    roots = {Kind(kind) for kind in strategy.formulas.root_kinds}

    def sample():
        return generate(
            generator.policy,
            generator.vocab,
            target.value,
            n,
            options=options,
            rng=np.random.default_rng(seed),
            root_kinds=roots,
            exclude=ex,
        ).formulas

    def log_wait(error: BaseException, _failures: int, delay: float) -> None:
        log.warning(
            "request %s waits for Triton (retry in %.0f s): %s", request.request_id, delay, error
        )

    # Triton down with no fallback: wait for as long as it takes (the consumer does not
    # commit past the request); a stop ends the wait with Triton's error, uncommitted, so
    # the request comes back after the restart.
    try:
        return retry(
            sample,
            retry_on=TritonUnavailable,
            backoff=Backoff(first_s=context.retry_wait_s, max_s=max(60.0, context.retry_wait_s)),
            sleep=context.stop_event.wait,
            on_retry=log_wait,
        )
    except RetryStopped as stopped:
        raise stopped.__cause__ from None


def _too_soon(conn: psycopg.Connection, strategy: Strategy, request: RequestRecord) -> str:
    """Why the rebalance rule skips ``request`` ("" when it does not): the strategy
    rebalanced for another trigger within ``min_days_between`` days before it."""
    days = strategy.rebalance.min_days_between
    if days <= 0:
        return ""
    recent = recent_request(
        conn,
        strategy_id=strategy.id,
        decision_time=request.decision_time,
        within=timedelta(days=days),
        other_than_trigger=request.trigger_event_id,
    )
    if recent is None:
        return ""
    when, trigger = recent
    return f"{strategy.id} rebalances for {trigger} decided {when.isoformat()}, within {days} days"


class GenerationHandler:
    """``ConsumerLoop`` handler of ``alpha.generation.requests``: each request on a pooled
    connection (one at a time between commits: a request can take minutes)."""

    def __init__(self, pool: ConnectionPool, context: GenerationContext) -> None:
        self._pool, self._context = pool, context

    def __call__(self, record: ConsumerRecord) -> None:
        request = decode(GenerationRequest, record.value)
        with self._pool.connection() as conn:
            handle_request(conn, self._context, request)

    def record_failure(self, record: ConsumerRecord, error: BaseException) -> None:
        """A request that is poison ends registered and failed, with the reason (a message
        that is not a request at all has nothing to record)."""
        try:
            request = decode(GenerationRequest, record.value)
        except EventError:
            return
        with self._pool.connection() as conn:
            stored = register_request(conn, RequestRecord.of(request))
            record_failure(conn, stored.request_id, f"{type(error).__name__}: {error}")
