"""The model registry on the real Postgres: one version per (generator, cutoff), numbers
that two trainers never share, rollouts as an append-only log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from storage.errors import ConflictError
from storage.models import (
    RegistryError,
    list_versions,
    mark_ready,
    promote,
    promoted_version,
    register_version,
    rollback,
)


def _register(conn, generator: str, year: int, strategy: str = "s"):
    cutoff = datetime(year, 1, 1, tzinfo=UTC)
    return register_version(
        conn,
        generator=generator,
        cutoff=cutoff,
        trained_until=cutoff.replace(day=1, hour=0),
        strategy_id=strategy,
        checkpoint=f"/models/{year}.pt",
        served_model="gen",
        training={"steps": 3},
    )


def _generator(unique) -> str:
    return unique("g").replace("-", "_")[:40]


def test_a_cutoff_registers_once_and_numbers_follow(app_conn, unique):
    name = _generator(unique)
    first = _register(app_conn, name, 2001)
    assert (first.version, first.ready_at) == (1, None)
    assert _register(app_conn, name, 2001) == first  # a redelivered training
    assert _register(app_conn, name, 2002).version == 2
    assert [v.version for v in list_versions(app_conn, name)] == [1, 2]
    with pytest.raises(ConflictError, match="trained for strategy 's', not 'other'"):
        _register(app_conn, name, 2001, strategy="other")
    with pytest.raises(ConflictError, match="after the cutoff"):
        register_version(
            app_conn,
            generator=name,
            cutoff=datetime(2003, 1, 1, tzinfo=UTC),
            trained_until=datetime(2003, 2, 1, tzinfo=UTC),
            strategy_id="s",
            checkpoint="x.pt",
            served_model="gen",
        )


def test_concurrent_trainers_never_share_a_number(connect_as, unique):
    name = _generator(unique)
    numbers, errors = [], []

    def register(year: int) -> None:
        try:
            with connect_as("app", autocommit=True) as conn:
                numbers.append(_register(conn, name, year).version)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=register, args=(2000 + k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_rollback_withdraws_and_returns_to_the_previous_promotion(app_conn, unique):
    name = _generator(unique)
    for year in (2001, 2002, 2003):
        version = _register(app_conn, name, year)
        mark_ready(app_conn, name, version.version)
    assert promoted_version(app_conn, name) is None
    with pytest.raises(RegistryError, match="was never promoted"):
        rollback(app_conn, name)
    promote(app_conn, name, 1)
    promote(app_conn, name, 3)
    assert rollback(app_conn, name, "bad") == (3, 1)
    assert promoted_version(app_conn, name) == 1
    withdrawn = {v.version for v in list_versions(app_conn, name) if v.withdrawn_at}
    assert withdrawn == {3}
    with pytest.raises(RegistryError, match="rolled back: it is withdrawn"):
        promote(app_conn, name, 3)
    with pytest.raises(RegistryError, match=r"has no version 9 \(versions: \[1, 2, 3\]\)"):
        promote(app_conn, name, 9)
    promote(app_conn, name, 2)
    assert rollback(app_conn, name) == (2, 1)
