"""The on-call commands against the real Postgres: `alphafactory positions` and
`alphafactory requests list | show`, their JSON checked against the tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from storage.requests import RequestRecord, register_request
from tests.pipeline.test_pipeline_core import decide_directly, make_request


def command(service_env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=service_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def decided(pipeline_db, market, strategy, generator):
    """One request of a strategy of its own decided through generation, evaluation and
    allocation, and a second one registered but not generated yet."""
    import psycopg

    mine = strategy.model_copy(update={"id": "ops_commands"})
    with psycopg.connect(pipeline_db.dsn("app"), autocommit=True) as conn:
        request, _, allocation_id = decide_directly(conn, market, mine, generator, 100, "ops-1")
        waiting = make_request(market, mine, 101, "ops-second")
        register_request(conn, RequestRecord.of(waiting))
        weights = dict(
            conn.execute(
                "SELECT asset, weight FROM trading.latest_target_positions WHERE strategy_id = %s",
                (mine.id,),
            ).fetchall()
        )
    return mine, request, waiting, allocation_id, weights


def test_positions_prints_the_latest_weights_per_strategy(service_env, decided):
    mine, request, _, allocation_id, weights = decided
    result = command(service_env, "positions", "--strategy", mine.id, "--json")
    assert result.returncode == 0, result.stderr
    (printed,) = json.loads(result.stdout)["strategies"].items()
    assert printed[0] == mine.id and printed[1]["allocation_id"] == allocation_id
    assert printed[1]["weights"] == weights and printed[1]["as_of"] == str(request.as_of)
    # beside them, the exposure per class of the market's stored group (sector): the
    # classes' weights add up to the book, their active weights to what it moved
    exposures = printed[1]["exposures"]
    assert {e["group"] for e in exposures} == {"sector"} and len(exposures) >= 2
    assert sum(e["weight"] for e in exposures) == pytest.approx(sum(weights.values()))
    assert all(set(e) == {"group", "class_code", "weight", "active_weight", "forecast_return"}
               for e in exposures)  # fmt: skip
    text = command(service_env, "positions", "--strategy", mine.id).stdout
    assert allocation_id in text and all(asset in text for asset in weights)
    none = command(service_env, "positions", "--strategy", "nobody", "--json")
    assert json.loads(none.stdout) == {"strategies": {}}


def test_requests_list_and_show_say_where_each_stands(service_env, decided):
    mine, request, waiting, allocation_id, _ = decided
    result = command(service_env, "requests", "list", "--strategy", mine.id, "--json")
    assert result.returncode == 0, result.stderr
    listed = {r["request_id"]: r for r in json.loads(result.stdout)["requests"]}
    assert list(listed) == [waiting.request_id, request.request_id]  # newest decision first
    done = listed[request.request_id]
    assert done["state"] == "allocated" and done["allocation_id"] == allocation_id
    assert done["candidates"] == done["evaluated"] == mine.generation.candidates
    assert listed[waiting.request_id]["state"] == "generating"
    assert listed[waiting.request_id]["candidates"] is None
    # the decision's admission: every evaluated candidate a trial; this plumbing strategy
    # has no control (tests/pipeline/conftest.py), so it admits what met the definition
    assert done["trials"] == done["evaluated"] and done["control"] == "none"
    assert 0 < done["admitted"] == done["qualified"] <= done["trials"]
    assert listed[waiting.request_id]["admitted"] is None

    shown = command(service_env, "requests", "show", request.request_id, "--json")
    detail = json.loads(shown.stdout)
    assert detail["state"] == "allocated" and len(detail["top_alphas"]) == min(done["admitted"], 10)
    strengths = [abs(a["hac_tstat"]) for a in detail["top_alphas"]]
    assert strengths == sorted(strengths, reverse=True)
    missing = command(service_env, "requests", "show", "no-such-request")
    assert missing.returncode == 1 and "no request 'no-such-request'" in missing.stderr
