"""Generation requests and candidates (storage.requests) on the real Postgres."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest

from storage.errors import ConflictError
from storage.factors import upsert_factor
from storage.requests import (
    RequestRecord,
    load_request,
    mark_evaluated,
    pending_candidates,
    register_request,
    request_complete,
    request_formulas,
    set_candidates,
)

NOW = datetime(2024, 5, 15, 12, 30, tzinfo=UTC)


def request(unique, name="r", trigger="e") -> RequestRecord:
    return RequestRecord(
        unique(name), unique("strategy"), date(2024, 5, 15), NOW, unique(trigger), "release", NOW
    )


def factors(conn, unique, count: int) -> list[str]:
    hashes = [unique(f"h{k}") for k in range(count)]
    for k, h in enumerate(hashes):
        upsert_factor(conn, formula_hash=h, formula=f"rank(x{k}) {h}", origin="generator")
    return hashes


def test_a_request_is_complete_when_every_candidate_is_evaluated(app_conn, unique):
    stored = register_request(app_conn, request(unique))
    assert stored.n_candidates is None and not request_complete(app_conn, stored.request_id)
    hashes = factors(app_conn, unique, 3)
    assert set_candidates(app_conn, stored.request_id, hashes + hashes[:1])  # duplicates once
    assert not set_candidates(app_conn, stored.request_id, hashes[:1])  # already recorded
    assert load_request(app_conn, stored.request_id).n_candidates == 3
    assert pending_candidates(app_conn, stored.request_id) == sorted(hashes)
    assert request_formulas(app_conn, stored.request_id, hashes[:2]) == {
        h: f"rank(x{k}) {h}" for k, h in enumerate(hashes[:2])
    }
    assert mark_evaluated(app_conn, stored.request_id, hashes[:2]) == 2
    assert mark_evaluated(app_conn, stored.request_id, hashes[:2]) == 0  # a retried task
    assert pending_candidates(app_conn, stored.request_id) == [hashes[2]]
    assert not request_complete(app_conn, stored.request_id)
    mark_evaluated(app_conn, stored.request_id, hashes[2:])
    assert request_complete(app_conn, stored.request_id)
    assert not request_complete(app_conn, unique("missing"))
    assert pending_candidates(app_conn, stored.request_id) == []


def test_no_candidates_is_complete_at_once(app_conn, unique):
    stored = register_request(app_conn, request(unique))
    set_candidates(app_conn, stored.request_id, [])
    assert request_complete(app_conn, stored.request_id)


def test_one_trigger_registers_one_request_even_concurrently(connect_as, unique):
    first = request(unique, "first")
    duplicates = [
        RequestRecord(f"{first.request_id}-{k}", *list(first.__dict__.values())[1:])
        for k in range(6)
    ]
    results, barrier = [], threading.Barrier(len(duplicates))

    def register(record):
        conn = connect_as("app", autocommit=True)
        barrier.wait()
        results.append(register_request(conn, record).request_id)

    threads = [threading.Thread(target=register, args=(r,)) for r in duplicates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and results[0] in {r.request_id for r in duplicates}


def test_a_request_id_reused_for_another_trigger_is_a_conflict(app_conn, unique):
    stored = register_request(app_conn, request(unique))
    other = RequestRecord(
        stored.request_id, unique("other"), stored.as_of, NOW, unique("t2"), "manual", NOW
    )
    with pytest.raises(ConflictError, match="already used by another trigger"):
        register_request(app_conn, other)
    assert load_request(app_conn, unique("missing")) is None
