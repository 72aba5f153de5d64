"""Generation -> evaluation -> allocation on the real Postgres, each step idempotent.

Celery and Kafka are replaced by direct calls here (their own tests run the real ones):
the dispatch collects chunks, and each chunk is evaluated the way the task does it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from alphafactory.admission import admit
from alphafactory.decision import DecisionError, decision_panel, evaluate_formulas
from alphafactory.events import (
    BacktestResults,
    FormulaResult,
    GenerationRequest,
    request_id_for,
)
from alphafactory.formula import formula_hash
from alphafactory.noise import noise_twin, twin_seed
from consumers.allocation import AllocationContext, AllocationHandler, allocate_request
from consumers.evaluation import (
    ChunkDelivery,
    EvaluationContext,
    evaluate_chunk,
    fail_chunk,
    run_chunk,
)
from consumers.generation import (
    GenerationContext,
    GenerationHandler,
    GeneratorFromTheFuture,
    UnknownStrategy,
    handle_request,
)
from consumers.market_data import NoMarketData, PanelCache
from storage.admissions import admission_of
from storage.db import open_pool
from storage.deliveries import start_delivery
from storage.factors import alpha_pool, evaluations
from storage.pool_members import active_members
from storage.progress import trigger_status
from storage.requests import (
    RequestRecord,
    load_request,
    pending_candidates,
    register_request,
    request_complete,
    set_candidates,
)


def make_request(market, strategy, row: int, trigger: str) -> GenerationRequest:
    when = (pd.Timestamp(market.panel.dates[row]) + pd.Timedelta(days=10, hours=14)).tz_localize(
        UTC
    )
    return GenerationRequest(
        request_id=request_id_for(strategy.id, trigger),
        strategy_id=strategy.id,
        as_of=when.date(),
        decision_time=when.to_pydatetime(),
        trigger_event_id=trigger,
        trigger="release",
        candidates=strategy.generation.candidates,
        requested_at=datetime.now(UTC),
    )


def direct_contexts(strategy, generator, on_dispatch=None):
    """The generation, evaluation and allocation contexts of ``strategy`` with a dispatch
    that records each chunk in ``sent`` (Celery's part, done by the caller); ``on_dispatch``
    sees each request id and its hashes first."""
    sent: list[tuple[str, list[str]]] = []

    def dispatch(request_id, hashes, chunk_size):
        if on_dispatch is not None:
            on_dispatch(request_id, hashes)
        chunks = [hashes[k : k + chunk_size] for k in range(0, len(hashes), chunk_size)]
        sent.extend((request_id, chunk) for chunk in chunks)
        return len(chunks)

    policy, vocab = generator
    strategies = {strategy.id: strategy}
    allocation = AllocationContext(strategies)
    generation = GenerationContext(
        strategies, policy, vocab, 1.0, dispatch, allocation, threading.Event()
    )
    return generation, EvaluationContext(strategies), allocation, sent


def decide_directly(conn, market, strategy, generator, row: int, trigger: str):
    """One request of ``strategy`` through generation, every chunk's evaluation and the
    allocation, by direct calls: (the request, its candidates' hashes, the allocation id)."""
    generation, evaluation, allocation, sent = direct_contexts(strategy, generator)
    request = make_request(market, strategy, row, trigger)
    handle_request(conn, generation, request)
    for request_id, chunk in sent:
        evaluate_chunk(conn, evaluation, request_id, chunk)
    allocation_id = allocate_request(conn, allocation, request.request_id)
    return request, [h for _, chunk in sent for h in chunk], allocation_id


def _result_record(request: GenerationRequest) -> ConsumerRecord:
    """A consumed ``alpha.backtest.results`` record of one chunk of ``request``."""
    (result,) = BacktestResults.of_chunk(
        [FormulaResult(formula_hash="0" * 64, formula="x", qualified=False, metrics={})],
        request_id=request.request_id,
        strategy_id=request.strategy_id,
        as_of=request.as_of,
        evaluated_at=datetime.now(UTC),
    )
    return ConsumerRecord("t", 0, 0, 0, 0, 0, b"k", result.to_json(), [], None, 1, 1, 0)


@pytest.fixture
def contexts(strategy, generator, pipeline_db):
    def visible_to_a_worker(request_id, hashes):
        # a worker on its own connection must already see what it is sent
        with psycopg.connect(pipeline_db.dsn("app")) as other:
            assert sorted(pending_candidates(other, request_id)) == sorted(hashes)

    return direct_contexts(strategy, generator, visible_to_a_worker)


def test_the_generation_service_samples_as_many_episodes_together_as_configured(
    conn, market, strategy, contexts, unique_trigger
):
    generation, _, _, sent = contexts
    rows_per_call: list[int] = []
    served = generation.policy

    class Recording:
        def __getattr__(self, name):
            return getattr(served, name)

        def __call__(self, rtg, *arrays, **options):
            rows_per_call.append(len(rtg))
            return served(rtg, *arrays, **options)

    generation.policy, generation.sample_batch = Recording(), 4
    handle_request(conn, generation, make_request(market, strategy, 100, unique_trigger))
    assert len({h for _, chunk in sent for h in chunk}) == 12
    assert max(rows_per_call) == 4  # 12 formulas: 4 episodes a call, never more


def test_a_request_flows_to_positions_once(conn, market, strategy, contexts, unique_trigger):
    generation, evaluation, allocation, sent = contexts
    request = make_request(market, strategy, 100, unique_trigger)
    assert handle_request(conn, generation, request) == 3  # 12 candidates in chunks of 5
    hashes = [h for _, chunk in sent for h in chunk]
    assert len(hashes) == len(set(hashes)) == 12
    assert allocate_request(conn, allocation, request.request_id) is None  # not complete
    for request_id, chunk in sent:
        assert evaluate_chunk(conn, evaluation, request_id, chunk) == len(chunk)
    assert evaluate_chunk(conn, evaluation, *sent[0]) == 0  # a redelivered chunk
    assert request_complete(conn, request.request_id)
    allocation_id = allocate_request(conn, allocation, request.request_id)
    assert allocate_request(conn, allocation, request.request_id) == allocation_id
    rows = conn.execute(
        "SELECT asset, weight, trigger_event_id FROM trading.latest_target_positions "
        "WHERE strategy_id = %s",
        (strategy.id,),
    ).fetchall()
    assert {r[2] for r in rows} == {unique_trigger}
    assert np.isclose(sum(r[1] for r in rows), 1.0) and all(r[1] >= 0 for r in rows)
    # the allocation keeps the combined signal it was built from, one value per asset
    signal, pool = conn.execute(
        "SELECT a.signal, (SELECT count(*) FROM core.alpha_pools AS p "
        "WHERE p.strategy_id = a.strategy_id AND p.decision_time = a.decision_time) "
        "FROM core.allocations AS a WHERE allocation_id = %s",
        (allocation_id,),
    ).fetchone()
    assert pool > 0 and set(signal) == {r[0] for r in rows}
    outbox = conn.execute(
        "SELECT topic FROM core.outbox WHERE payload->>'request_id' = %s "
        "OR payload->>'trigger_event_id' = %s",
        (request.request_id, unique_trigger),
    ).fetchall()
    topics = [r[0] for r in outbox]
    assert topics.count("alpha.backtest.results") == 3 + 1  # a redelivered chunk re-announces
    assert topics.count("portfolio.rebalances") == 1
    # the request delivered again: nothing generated, nothing sent, the same allocation
    sent.clear()
    assert handle_request(conn, generation, request) == 0 and sent == []


def test_admission_controls_the_search_and_is_stored_with_the_decision(
    conn, market, strategy, generator, unique_trigger
):
    """On this noise market about half the candidates meet ``hac_tstat >= 0``; under the
    default control (Benjamini-Yekutieli at 0.10 over the request's trials) the stored
    admission is what ``admit`` gives on the stored t-statistics, and only admitted
    candidates reach the pool."""
    alpha = strategy.alpha.model_copy(update={"control": "by", "level": 0.10})
    generation = strategy.generation.model_copy(update={"candidates": 30, "chunk_size": 10})
    mine = strategy.model_copy(
        update={"id": f"fdr-{unique_trigger}", "alpha": alpha, "generation": generation}
    )
    request, hashes, allocation_id = decide_directly(
        conn, market, mine, generator, 100, unique_trigger
    )
    assert allocation_id is not None
    stored = evaluations(
        conn,
        strategy_id=mine.id,
        decision_time=request.decision_time,
        request_id=request.request_id,
    )
    assert sorted(stored["formula_hash"]) == sorted(hashes)
    expected = admit(
        stored["hac_tstat"].astype(float).to_numpy(), stored["is_alpha"].astype(bool), "by", 0.10
    )
    record = admission_of(conn, request.request_id)
    assert (record.control, record.level) == ("by", 0.10)
    assert trigger_status(conn, mine.id, request.trigger_event_id).admitted == record.admitted
    assert (record.trials, record.qualified, record.admitted) == (
        len(hashes),
        expected.n_qualified,
        expected.n_admitted,
    )
    admitted = conn.execute(
        "SELECT formula_hash, admitted FROM core.evaluations WHERE strategy_id = %s",
        (mine.id,),
    ).fetchall()
    assert dict(admitted) == dict(zip(stored["formula_hash"], expected.admitted, strict=True))
    assert expected.n_qualified >= 3 and expected.n_admitted < expected.n_qualified
    pool = conn.execute(
        "SELECT formula_hash FROM core.alpha_pools WHERE strategy_id = %s", (mine.id,)
    ).fetchall()
    assert {h for (h,) in pool} <= {h for h, a in admitted if a}
    # every candidate was scored on the decision's noise twin too, as the worker's own
    # panel permuted would score it, and the same rule over those scores is stored
    assert stored["noise_qualified"].notna().all()
    panel = PanelCache().get(conn, mine, request.decision_time, request.trigger_event_id)
    twin = noise_twin(panel, twin_seed(request.request_id))
    direct = {e.formula: e for e in evaluate_formulas(twin, mine, stored["formula"].tolist())}
    twin_scores = zip(
        stored["formula"],
        stored["noise_hac_tstat"].astype(float),
        stored["noise_qualified"],
        strict=True,
    )
    for formula, t, qualified in twin_scores:
        if direct[formula].metrics is not None:
            assert t == pytest.approx(direct[formula].metrics.hac_tstat, nan_ok=True)
        assert qualified == direct[formula].qualified
    on_noise = admit(
        stored["noise_hac_tstat"].astype(float).to_numpy(),
        stored["noise_qualified"].astype(bool),
        "by",
        0.10,
    )
    assert (record.noise_qualified, record.noise_admitted) == (
        on_noise.n_qualified,
        on_noise.n_admitted,
    )
    status = trigger_status(conn, mine.id, request.trigger_event_id)
    assert status.noise_admitted == record.noise_admitted
    assert stored["noise_hac_tstat"].astype(float).std() > 0


def test_the_pool_persists_across_decisions_and_members_outrank_new_alphas(
    conn, market, strategy, generator, unique_trigger
):
    # every scored candidate is an alpha here, so the first pool is never empty by chance
    alpha = strategy.alpha.model_copy(update={"definition": "hac_tstat >= 0 or hac_tstat < 0"})
    mine = strategy.model_copy(update={"id": f"persist-{unique_trigger}", "alpha": alpha})
    first, _, _ = decide_directly(conn, market, mine, generator, 100, unique_trigger + "-1")
    pool = set(alpha_pool(conn, strategy_id=mine.id, decision_time=first.decision_time))
    later = first.decision_time + timedelta(days=20)
    members = active_members(conn, strategy_id=mine.id, decision_time=later)
    assert pool and {m.formula_hash for m in members} == pool
    assert {m.entered_at for m in members} == {first.decision_time}
    second, _, _ = decide_directly(conn, market, mine, generator, 101, unique_trigger + "-2")
    kept = set(alpha_pool(conn, strategy_id=mine.id, decision_time=second.decision_time))
    retired = dict(
        conn.execute(
            "SELECT formula_hash, retire_reason FROM core.pool_members "
            "WHERE strategy_id = %s AND retired_at = %s",
            (mine.id, second.decision_time),
        ).fetchall()
    )
    # every member that did not retire is in the second pool, before any new alpha
    assert pool - set(retired) <= kept and all(retired.values())
    assert len(kept) <= mine.pool.size


def test_a_later_decision_whose_evaluation_finishes_first_waits_for_the_earlier_one(
    conn, market, strategy, generator, unique_trigger
):
    # every scored candidate is an alpha, so the earlier decision always leaves members
    alpha = strategy.alpha.model_copy(update={"definition": "hac_tstat >= 0 or hac_tstat < 0"})
    mine = strategy.model_copy(update={"id": f"order-{unique_trigger}", "alpha": alpha})
    generation, evaluation, allocation, sent = direct_contexts(mine, generator)
    earlier = make_request(market, mine, 100, unique_trigger + "-1")
    later = make_request(market, mine, 101, unique_trigger + "-2")
    for request in (earlier, later):
        handle_request(conn, generation, request)
    for request_id, chunk in sent:  # the later one's evaluation finishes first
        if request_id == later.request_id:
            evaluate_chunk(conn, evaluation, request_id, chunk)
    assert request_complete(conn, later.request_id)
    assert allocate_request(conn, allocation, later.request_id) is None
    assert trigger_status(conn, mine.id, later.trigger_event_id).allocation_id is None
    for request_id, chunk in sent:
        if request_id == earlier.request_id:
            evaluate_chunk(conn, evaluation, request_id, chunk)
    # allocating the earlier one allocates the later one that waited for it
    assert allocate_request(conn, allocation, earlier.request_id) is not None
    assert trigger_status(conn, mine.id, later.trigger_event_id).allocation_id is not None
    first = set(alpha_pool(conn, strategy_id=mine.id, decision_time=earlier.decision_time))
    second = set(alpha_pool(conn, strategy_id=mine.id, decision_time=later.decision_time))
    retired = {
        h
        for (h,) in conn.execute(
            "SELECT formula_hash FROM core.pool_members WHERE strategy_id = %s AND retired_at = %s",
            (mine.id, later.decision_time),
        ).fetchall()
    }
    # the later decision read the pool the earlier one left
    assert first and first - retired <= second


def test_a_failed_decision_releases_the_later_ones_that_waited_for_it(
    conn, pipeline_db, market, strategy, generator, unique_trigger
):
    mine = strategy.model_copy(update={"id": f"unblock-{unique_trigger}"})
    generation, evaluation, allocation, sent = direct_contexts(mine, generator)
    early = make_request(market, mine, 0, unique_trigger + "-1")  # before any market history
    stored = register_request(conn, RequestRecord.of(early))
    set_candidates(conn, stored.request_id, [])
    later = make_request(market, mine, 100, unique_trigger + "-2")
    handle_request(conn, generation, later)
    for request_id, chunk in sent:
        evaluate_chunk(conn, evaluation, request_id, chunk)
    assert allocate_request(conn, allocation, later.request_id) is None  # waits for early
    record = _result_record(early)
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=1) as pool:
        AllocationHandler(pool, allocation).record_failure(record, DecisionError("no data"))
    assert load_request(conn, early.request_id).failed_at is not None
    assert trigger_status(conn, mine.id, later.trigger_event_id).allocation_id is not None


def test_evaluations_use_only_data_released_by_the_decision_time(
    conn, market, strategy, contexts, unique_trigger
):
    generation, evaluation, _, sent = contexts
    request = make_request(market, strategy, 90, unique_trigger)
    handle_request(conn, generation, request)
    for request_id, chunk in sent:
        evaluate_chunk(conn, evaluation, request_id, chunk)
    stored = evaluations(conn, strategy_id=strategy.id, decision_time=request.decision_time)
    stored = stored[stored["formula_hash"].isin([h for _, c in sent for h in c])]
    released = market.releases[market.releases["released_at"] <= request.decision_time]
    panel = decision_panel(market.panel, released, request.decision_time, 48 + 120)
    direct = {r.formula: r for r in evaluate_formulas(panel, strategy, stored["formula"].tolist())}
    for row in stored.itertuples():
        expected = direct[row.formula]
        assert row.is_alpha == expected.qualified
        if expected.metrics is not None:
            assert row.hac_tstat == pytest.approx(expected.metrics.hac_tstat, nan_ok=True)


def test_a_chunk_that_fails_for_good_still_completes_the_request(
    conn, market, strategy, generator, unique_trigger
):
    # a strategy of its own: the other tests leave earlier decisions of theirs open
    mine = strategy.model_copy(update={"id": f"chunk-{unique_trigger}"})
    generation, evaluation, allocation, sent = direct_contexts(mine, generator)
    request = make_request(market, mine, 95, unique_trigger)
    handle_request(conn, generation, request)
    first, *rest = sent
    fail_chunk(conn, first[0], first[1], RuntimeError("worker ran out of memory"))
    for request_id, chunk in rest:
        evaluate_chunk(conn, evaluation, request_id, chunk)
    assert pending_candidates(conn, request.request_id) == []
    assert allocate_request(conn, allocation, request.request_id) is not None
    letters = conn.execute(
        "SELECT error FROM core.dead_letters WHERE key = %s", (request.request_id.encode(),)
    ).fetchall()
    assert letters and "worker ran out of memory" in letters[0][0]


def test_a_request_for_an_unknown_strategy_is_refused(conn, market, strategy, contexts):
    generation = contexts[0]
    request = make_request(market, strategy, 100, "t").model_copy(update={"strategy_id": "other"})
    with pytest.raises(UnknownStrategy, match="names strategy 'other'"):
        handle_request(conn, generation, request)


def test_with_triton_down_and_no_fallback_the_request_waits_and_retries(
    conn, market, strategy, contexts, unique_trigger
):
    from inference.triton_client import TritonUnavailable

    generation, _, _, sent = contexts
    calls = {"failed": 0}
    real = generation.policy

    class FlakyTriton:
        context = real.context

        def __call__(self, *arrays, **options):
            if calls["failed"] < 2:
                calls["failed"] += 1
                raise TritonUnavailable("Triton at 127.0.0.1:1 is not ready")
            return real(*arrays, **options)

    generation.policy, generation.retry_wait_s = FlakyTriton(), 0.01
    request = make_request(market, strategy, 101, unique_trigger)
    assert handle_request(conn, generation, request) == 3  # nothing lost: all 12 sent
    assert calls["failed"] == 2 and len({h for _, c in sent for h in c}) == 12
    generation.stop_event.set()  # a stop while waiting gives the request back uncommitted
    calls["failed"] = 0
    with pytest.raises(TritonUnavailable):
        handle_request(conn, generation, make_request(market, strategy, 102, unique_trigger + "b"))


def test_a_strategy_s_own_formulas_are_candidates_at_every_decision_with_any_window(
    conn, market, strategy, generator, unique_trigger
):
    own = "ts_zscore(M0001, 7)"  # 7 months: outside the generator's windows
    formulas = strategy.formulas.model_copy(update={"include": (own,)})
    mine = strategy.model_copy(update={"id": f"own-{unique_trigger}", "formulas": formulas})
    sent: list[tuple[str, list[str]]] = []

    def dispatch(request_id, hashes, chunk_size):
        sent.append((request_id, list(hashes)))
        return 1

    policy, vocab = generator
    strategies = {mine.id: mine}
    generation = GenerationContext(
        strategies, policy, vocab, 1.0, dispatch, AllocationContext(strategies), threading.Event()
    )
    request = make_request(market, mine, 100, unique_trigger)
    handle_request(conn, generation, request)
    (request_id, hashes) = sent[0]
    assert formula_hash(own) in hashes and len(hashes) == mine.generation.candidates + 1
    assert conn.execute(
        "SELECT origin FROM core.factors WHERE formula_hash = %s", (formula_hash(own),)
    ).fetchone() == ("strategy",)
    evaluate_chunk(conn, EvaluationContext(strategies), request_id, hashes)
    stored = evaluations(conn, strategy_id=mine.id, decision_time=request.decision_time).set_index(
        "formula"
    )
    assert np.isfinite(stored.loc[own, "hac_tstat"])  # scored over the whole window
    # every decision has the strategy's own formulas among its candidates, a second
    # trigger at the same instant too (its candidates depend on it alone)
    sent.clear()
    handle_request(conn, generation, make_request(market, mine, 100, unique_trigger + "-2"))
    assert formula_hash(own) in sent[0][1]


class FailingPanels:
    """A panel cache that raises ``error`` ``times`` times, then reads the real panels."""

    def __init__(self, real, error: Exception, times: int) -> None:
        self.real, self.error, self.left = real, error, times

    def get(self, conn, strategy, decision_time, trigger_event_id=None):
        if self.left:
            self.left -= 1
            raise self.error
        return self.real.get(conn, strategy, decision_time, trigger_event_id)


def _chunk(conn, market, strategy, contexts, trigger, row=100):
    generation, evaluation, _, sent = contexts
    request = make_request(market, strategy, row, trigger)
    handle_request(conn, generation, request)
    request_id, hashes = sent[0]
    return request, ChunkDelivery(f"task-{trigger}", request_id, hashes), evaluation


def test_an_outage_in_a_chunk_is_retried_and_never_fails_an_evaluation(
    conn, pipeline_db, market, strategy, contexts, unique_trigger
):
    request, delivery, evaluation = _chunk(conn, market, strategy, contexts, unique_trigger)
    outage = psycopg.OperationalError("terminating connection due to administrator command")
    evaluation.panels = FailingPanels(evaluation.panels, outage, times=5)
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=1) as pool:
        outcomes = [run_chunk(pool, evaluation, delivery, retries=0, max_deliveries=3)]
        while outcomes[-1].retry is not None:
            again = outcomes[-1].retry
            outcomes.append(run_chunk(pool, evaluation, again, retries=0, max_deliveries=3))
    assert len(outcomes) == 6 and outcomes[-1].evaluated == len(delivery.formula_hashes)
    assert all(o.retry.poison_attempts == 0 for o in outcomes[:-1])  # an outage is not poison
    stored = evaluations(conn, strategy_id=strategy.id, decision_time=request.decision_time)
    assert stored["metrics"].map(lambda m: "error" not in m).all()


def test_poison_in_a_chunk_gets_its_retries_then_fails_the_formulas(
    conn, pipeline_db, market, strategy, contexts, unique_trigger
):
    request, delivery, evaluation = _chunk(conn, market, strategy, contexts, unique_trigger)
    evaluation.panels = FailingPanels(evaluation.panels, NoMarketData("nothing by then"), 99)
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=1) as pool:
        attempts = []
        outcome = run_chunk(pool, evaluation, delivery, retries=2, max_deliveries=3)
        while outcome.retry is not None:
            attempts.append(outcome.retry.poison_attempts)
            outcome = run_chunk(pool, evaluation, outcome.retry, retries=2, max_deliveries=3)
    assert attempts == [1, 2]
    assert not set(delivery.formula_hashes) & set(pending_candidates(conn, request.request_id))
    letters = conn.execute(
        "SELECT error FROM core.dead_letters WHERE key = %s", (request.request_id.encode(),)
    ).fetchall()
    assert any("NoMarketData: nothing by then" in error for (error,) in letters)


def test_a_chunk_that_keeps_killing_its_worker_is_given_up(
    conn, pipeline_db, market, strategy, contexts, unique_trigger
):
    request, delivery, evaluation = _chunk(conn, market, strategy, contexts, unique_trigger)
    for _ in range(3):  # three deliveries started, their worker killed before the end
        start_delivery(conn, task_id=delivery.task_id, request_id=delivery.request_id)
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=1) as pool:
        outcome = run_chunk(pool, evaluation, delivery, retries=3, max_deliveries=3)
    assert outcome.retry is None and outcome.evaluated == 0
    assert not set(delivery.formula_hashes) & set(pending_candidates(conn, request.request_id))
    letters = conn.execute(
        "SELECT error FROM core.dead_letters WHERE key = %s", (request.request_id.encode(),)
    ).fetchall()
    assert any("WorkerKilled" in error and "3 times" in error for (error,) in letters)


def test_a_request_that_cannot_be_allocated_ends_with_its_failure_recorded(
    conn, pipeline_db, market, strategy, contexts, unique_trigger
):
    _, _, allocation, _ = contexts
    early = make_request(market, strategy, 0, unique_trigger)  # before any market history
    stored = register_request(conn, RequestRecord.of(early))
    set_candidates(conn, stored.request_id, [])
    with pytest.raises(DecisionError, match="fewer than 2 market dates"):
        allocate_request(conn, allocation, early.request_id)
    record = _result_record(early)
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=1) as pool:
        handler = AllocationHandler(pool, allocation)
        handler.record_failure(record, DecisionError("fewer than 2 market dates"))
        handler(record)  # a later result of the failed request: nothing to do, no error
    failed = load_request(conn, early.request_id)
    assert failed.failed_at is not None and failed.failure.startswith("DecisionError: fewer")
    assert trigger_status(conn, strategy.id, early.trigger_event_id).allocation_id is None


def test_the_rebalance_rule_skips_on_requests_not_on_how_far_they_got(
    conn, market, strategy, generator, unique_trigger
):
    rule = strategy.rebalance.model_copy(update={"min_days_between": 20})
    spaced = strategy.model_copy(update={"id": f"spaced-{unique_trigger}", "rebalance": rule})
    policy, vocab = generator
    sent: list = []
    strategies = {spaced.id: spaced}
    generation = GenerationContext(
        strategies,
        policy,
        vocab,
        1.0,
        lambda rid, hashes, size: sent.append(rid) or 1,
        AllocationContext(strategies),
        threading.Event(),
    )
    first = make_request(market, spaced, 100, unique_trigger + "-a")
    soon = first.model_copy(
        update={
            "request_id": request_id_for(spaced.id, unique_trigger + "-b"),
            "trigger_event_id": unique_trigger + "-b",
            "decision_time": first.decision_time + timedelta(days=10),
        }
    )
    later = soon.model_copy(
        update={
            "request_id": request_id_for(spaced.id, unique_trigger + "-c"),
            "trigger_event_id": unique_trigger + "-c",
            "decision_time": first.decision_time + timedelta(days=25),
        }
    )
    for request in (first, soon, later):  # the first is never allocated here
        handle_request(conn, generation, request)
    assert sent == [first.request_id, later.request_id]
    skipped = load_request(conn, soon.request_id).skipped
    assert skipped and unique_trigger + "-a" in skipped and "within 20 days" in skipped
    handle_request(conn, generation, soon)  # redelivered: still skipped, nothing sent
    assert sent == [first.request_id, later.request_id]


def test_a_generator_trained_after_the_decision_is_refused_and_the_request_fails(
    conn, pipeline_db, market, strategy, contexts, unique_trigger
):
    generation, _, _, sent = contexts
    request = make_request(market, strategy, 100, unique_trigger)
    generation.trained_until = request.decision_time + timedelta(days=1)
    with pytest.raises(GeneratorFromTheFuture, match="trained on data released until"):
        handle_request(conn, generation, request)
    assert sent == []  # nothing was generated with it
    record = ConsumerRecord("t", 0, 0, 0, 0, 0, b"k", request.to_json(), [], None, 1, 1, 0)
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=1) as pool:
        GenerationHandler(pool, generation).record_failure(record, GeneratorFromTheFuture("x"))
    assert load_request(conn, request.request_id).failure == "GeneratorFromTheFuture: x"
    generation.trained_until = request.decision_time - timedelta(days=1)
    assert handle_request(conn, generation, request) == 0  # failed for good: not retried


def test_a_strategy_samples_from_its_own_generator_and_a_missing_one_is_named(
    conn, market, strategy, contexts, generator, unique_trigger
):
    from consumers.generation import MissingGenerator
    from consumers.generators import Generator

    generation, _, _, sent = contexts
    own = strategy.model_copy(
        update={"generation": strategy.generation.model_copy(update={"generator": "mine"})}
    )
    generation.strategies[own.id] = own
    request = make_request(market, own, 100, unique_trigger)
    with pytest.raises(MissingGenerator, match="generator 'mine', which this service has not"):
        handle_request(conn, generation, request)
    assert sent == []
    policy, vocab = generator
    # its own generator is held to the point-in-time rule too
    late = request.decision_time + timedelta(days=1)
    generation.generators["mine"] = Generator(policy, vocab, 1.0, trained_until=late)
    with pytest.raises(GeneratorFromTheFuture):
        handle_request(conn, generation, request)
    generation.generators["mine"] = Generator(policy, vocab, 1.0)
    assert handle_request(conn, generation, request) == 3 and len(sent) == 3
