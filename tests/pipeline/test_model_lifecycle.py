"""The generator's lifecycle on the real stack (Postgres, Triton): versions trained on data
released before their cutoffs, served by the running Triton without a restart, chosen
per request by decision time (never one from after it), promoted and rolled back with
`alphafactory model`, and each request recording the version it used."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import torch

from alphafactory.events import GenerationRequest, request_id_for
from alphafactory.model_versions import NoEligibleVersion
from app.trainer import train_version
from app.wiring import version_generator
from consumers.allocation import AllocationContext
from consumers.generation import GenerationContext, handle_request
from consumers.generators import VersionedGenerators
from storage.admin import bootstrap_database, prepare_database
from storage.loading import load_panel, load_releases

pytestmark = pytest.mark.slow
CUTOFFS = (datetime(2015, 1, 1, tzinfo=UTC), datetime(2016, 1, 1, tzinfo=UTC))


def _database(stack_settings, market, *, shift_after=None):
    """A new database holding ``market`` (values released after ``shift_after`` moved)."""
    postgres = stack_settings.postgres.model_copy(update={"database": f"v_{uuid.uuid4().hex[:12]}"})
    bootstrap_database(postgres)
    prepare_database(postgres)
    releases = market.releases
    if shift_after is not None:
        late = releases["released_at"] >= shift_after
        releases = releases.assign(value=releases["value"].where(~late, releases["value"] + 5.0))
    with psycopg.connect(postgres.dsn("app"), autocommit=True) as conn:
        load_panel(conn, market.panel)
        load_releases(conn, releases)
    return postgres


@pytest.fixture(scope="module")
def lifecycle(stack_settings, market, strategies_dir, tmp_path_factory):
    """Two versions (cutoffs 2015-01 and 2016-01) trained, served and registered."""
    state = tmp_path_factory.mktemp("lifecycle")
    settings = stack_settings.model_copy(
        update={
            "state_dir": state,
            "postgres": _database(stack_settings, market),
            "pipeline": stack_settings.pipeline.model_copy(
                update={"strategies_dir": strategies_dir}
            ),
            # a Triton failure must fail the test, not be answered in process
            "triton": stack_settings.triton.model_copy(
                update={"generator_model": f"life_{uuid.uuid4().hex[:8]}", "fallback": "fail"}
            ),
        }
    )
    from app.wiring import strategies_by_id

    strategy = strategies_by_id(settings)["pipeline_test"]
    versions = [
        train_version(settings, strategy, cutoff, steps=3, formulas=60) for cutoff in CUTOFFS
    ]
    return settings, strategy, versions


def _request(strategy, decided: datetime) -> GenerationRequest:
    trigger = f"life-{uuid.uuid4().hex[:8]}"
    return GenerationRequest(
        request_id=request_id_for(strategy.id, trigger),
        strategy_id=strategy.id,
        as_of=decided.date(),
        decision_time=decided,
        trigger_event_id=trigger,
        trigger="manual",
        candidates=6,
        requested_at=decided,
    )


def _context(settings, strategy, trainings: list) -> GenerationContext:
    import functools
    import threading

    strategies = {strategy.id: strategy}
    return GenerationContext(
        strategies=strategies,
        policy=None,
        vocab=None,
        gamma=1.0,
        dispatch=lambda _request, hashes, _size: len(hashes),
        allocation=AllocationContext(strategies),
        stop_event=threading.Event(),
        versions=VersionedGenerators(
            load=functools.partial(version_generator, settings),
            request_training=trainings.append,
        ),
    )


def _used(settings, request_id: str) -> int | None:
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        (version,) = conn.execute(
            "SELECT model_version FROM core.generation_requests WHERE request_id = %s",
            (request_id,),
        ).fetchone()
    return version


def test_versions_are_served_without_a_restart_and_chosen_by_decision_time(lifecycle):
    import tritonclient.http as http

    from inference.repository import versioned_name

    settings, strategy, versions = lifecycle
    assert [v.version for v in versions] == [1, 2]
    assert all(v.trained_until < v.cutoff for v in versions)
    client = http.InferenceServerClient(settings.triton.http)
    for version in versions:  # the session's Triton was never restarted
        assert client.is_model_ready(versioned_name(version.served_model, version.version))

    trainings: list = []
    context = _context(settings, strategy, trainings)
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        early = _request(strategy, datetime(2014, 6, 20, tzinfo=UTC))
        with pytest.raises(NoEligibleVersion, match="released by 2014-06-20"):
            handle_request(conn, context, early)
        middle = _request(strategy, datetime(2015, 6, 20, tzinfo=UTC))
        assert handle_request(conn, context, middle) > 0
        late = _request(strategy, datetime(2016, 6, 20, tzinfo=UTC))
        assert handle_request(conn, context, late) > 0
    assert _used(settings, middle.request_id) == 1  # v2 saw data after this decision
    assert _used(settings, late.request_id) == 2
    assert trainings == []  # retrain_every_months = 0: only by hand


def test_rollback_withdraws_the_promoted_version_and_promote_rolls_one_out(lifecycle, cli):
    settings, strategy, _versions = lifecycle
    code, out, err = cli("model", "list", "--json", settings=settings)
    assert code == 0, err
    states = {row["version"]: row["state"] for row in json.loads(out)["versions"]}
    assert states == {1: "ready", 2: "promoted"}

    code, out, err = cli("model", "rollback", "--reason", "bad fills", settings=settings)
    assert code == 0 and "withdrew default v2; promoted default v1" in out, err
    context = _context(settings, strategy, [])
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        late = _request(strategy, datetime(2016, 7, 20, tzinfo=UTC))
        handle_request(conn, context, late)
    assert _used(settings, late.request_id) == 1  # the withdrawn v2 is never chosen again

    code, _, err = cli("model", "promote", "2", settings=settings)
    assert code == 2 and "default v2 was rolled back: it is withdrawn" in err
    code, _, err = cli("model", "promote", "7", settings=settings)
    assert code == 2 and "default has no version 7 (versions: [1, 2])" in err
    code, _, err = cli("model", "rollback", settings=settings)
    assert code == 2 and "no earlier promoted version" in err


def test_a_due_retraining_is_asked_of_the_trainer_once(lifecycle):
    settings, strategy, _ = lifecycle
    yearly = strategy.model_copy(
        update={"generation": strategy.generation.model_copy(update={"retrain_every_months": 12})}
    )
    trainings: list = []
    context = _context(settings, yearly, trainings)
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        for day in (3, 10):  # two requests after the due date: one training request
            handle_request(conn, context, _request(yearly, datetime(2017, 2, day, tzinfo=UTC)))
    assert [(t.cutoff, t.strategy_id) for t in trainings] == [
        (datetime(2017, 1, 1, tzinfo=UTC), "pipeline_test")
    ]


def test_the_trainer_reads_nothing_released_after_its_cutoff(
    stack_settings, market, strategy, tmp_path
):
    """Two stores that differ only in values released after the cutoff train the same
    weights, bit for bit."""
    from app.generator_setup import train_from_store
    from inference.training import load_checkpoint

    def weights(postgres, until, name):
        settings = stack_settings.model_copy(update={"postgres": postgres})
        path = tmp_path / name
        train_from_store(settings, strategy, until=until, steps=3, formulas=60, out=path)
        return load_checkpoint(path).model.state_dict()

    cutoff = CUTOFFS[0]
    stores = [_database(stack_settings, market, shift_after=shift) for shift in (None, cutoff)]
    same = [weights(store, cutoff, f"same{k}.pt") for k, store in enumerate(stores)]
    assert same[0].keys() == same[1].keys()
    for name in same[0]:
        assert torch.equal(same[0][name], same[1][name]), name
    # and the perturbation is one the trainer would see: a year later, the weights differ
    later = [weights(store, CUTOFFS[1], f"later{k}.pt") for k, store in enumerate(stores)]
    assert any(not torch.equal(later[0][n], later[1][n]) for n in later[0])
