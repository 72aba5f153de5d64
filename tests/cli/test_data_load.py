"""`alphafactory data load` on the real Postgres of the local stack: a user's ALFRED
vintages and panel stored point-in-time, a second load stores nothing, a bad file stores
nothing and names its bad value."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from storage.macro import macro_as_of


@pytest.fixture
def series() -> str:
    return f"USER_{uuid.uuid4().hex[:8].upper()}"


def test_alfred_vintages_load_once_with_the_right_values_before_and_after_each(
    cli, stack_settings, tmp_path, series
):
    path = tmp_path / "vintages.csv"
    path.write_text(
        "series_id,date,value,realtime_start,realtime_end\n"
        f"{series},2009-10-01,218.0,2009-11-18,2009-12-15\n"
        f"{series},2009-10-01,218.2,2009-12-16,9999-12-31\n"
        f"{series},2009-11-01,219.3,2009-12-16,9999-12-31\n"
    )
    code, out, err = cli("data", "load", "--releases", str(path))
    assert code == 0, err
    assert "3 new observation(s)" in out
    code, out, _ = cli("data", "load", "--releases", str(path))
    assert code == 0 and "0 new observation(s)" in out  # a second load changes nothing

    def october_as_of(when: str) -> list[float]:
        at = datetime.fromisoformat(when).replace(tzinfo=UTC)
        with psycopg.connect(stack_settings.postgres.dsn("app")) as conn:
            found = macro_as_of(conn, series_ids=[series], as_of=at)
        return found[found["period"] == "2009-10-01"]["value"].tolist()

    assert october_as_of("2009-11-18T13:29:59") == []  # before the first vintage (08:30 ET)
    assert october_as_of("2009-11-18T13:30:00") == [218.0]
    assert october_as_of("2009-12-16T13:29:59") == [218.0]  # the revision not yet out
    assert october_as_of("2009-12-16T13:30:00") == [218.2]


def test_a_file_with_one_bad_row_stores_nothing_and_names_the_value(
    cli, stack_settings, tmp_path, series
):
    path = tmp_path / "releases.csv"
    path.write_text(
        "series_id,period,value,released_at\n"
        f"{series},2009-10-01,218.0,2009-11-17T08:30:00-05:00\n"
        f"{series},2009-11-01,n/a,2009-12-15T08:30:00-05:00\n"
    )
    code, _, err = cli("data", "load", "--releases", str(path))
    assert code == 1
    assert f"{path}: line 3, column 'value': 'n/a'; expected a finite number" in err
    with psycopg.connect(stack_settings.postgres.dsn("app")) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM core.macro_observations WHERE series_id = %s", (series,)
        ).fetchone()[0]
    assert stored == 0


def test_a_user_panel_loads_once(cli, stack_settings, tmp_path):
    assets = [f"U{uuid.uuid4().hex[:6]}", f"U{uuid.uuid4().hex[:6]}"]
    rows = [
        f"{day},{asset},{price},{1000 + k}"
        for k, (day, price) in enumerate([("2020-01-31", 10.0), ("2020-02-28", 11.0)])
        for asset in assets
    ]
    path = tmp_path / "panel.csv"
    path.write_text("date,asset,close,volume\n" + "\n".join(rows) + "\n")
    code, out, err = cli("data", "load", "--panel", str(path))
    assert code == 0, err
    assert "8 new observation(s)" in out  # 2 dates x 2 assets x 2 fields
    code, out, _ = cli("data", "load", "--panel", str(path))
    assert "0 new observation(s)" in out
    with psycopg.connect(stack_settings.postgres.dsn("app")) as conn:
        available = conn.execute(
            "SELECT min(available_at) FROM core.market_observations_all WHERE asset = ANY(%s)",
            (assets,),
        ).fetchone()[0]
    # the end of 2020-01-31 in New York (EST, UTC-5)
    assert available.astimezone(UTC) == datetime(2020, 2, 1, 4, 59, 59, 999999, tzinfo=UTC)


def test_the_bundled_set_loads_into_an_empty_store_once(cli, stack_settings):
    from storage.admin import bootstrap_database, prepare_database

    postgres = stack_settings.postgres.model_copy(
        update={"database": f"bundled_{uuid.uuid4().hex[:8]}"}
    )
    bootstrap_database(postgres)
    prepare_database(postgres)
    settings = stack_settings.model_copy(update={"postgres": postgres})
    code, out, err = cli("data", "load", "--bundled", settings=settings)
    assert code == 0, err
    first = int(out.split(": ")[1].split()[0])
    with psycopg.connect(postgres.dsn("app")) as conn:
        market = conn.execute("SELECT count(*) FROM core.market_observations_all").fetchone()[0]
        macro = conn.execute("SELECT count(*) FROM core.macro_observations").fetchone()[0]
    assert market > 0 and macro > 0 and first == market + macro
    code, out, _ = cli("data", "load", "--bundled", settings=settings)
    assert code == 0 and "0 new observation(s)" in out


def test_a_panel_with_available_at_stores_each_vintage_as_of_its_time(
    cli, stack_settings, tmp_path
):
    from storage.market import market_as_of

    asset = f"V{uuid.uuid4().hex[:6]}"
    path = tmp_path / "vintages.csv"
    path.write_text(
        "date,asset,close,available_at\n"
        f"2020-01-31,{asset},10.0,2020-01-31T16:15:00-05:00\n"
        f"2020-01-31,{asset},10.5,2020-02-03T09:00:00-05:00\n"  # a revision, three days on
    )
    code, out, err = cli("data", "load", "--panel", str(path))
    assert code == 0, err
    assert "2 new observation(s)" in out

    def close_as_of(when: str) -> list[float]:
        with psycopg.connect(stack_settings.postgres.dsn("app")) as conn:
            found = market_as_of(conn, as_of=datetime.fromisoformat(when), assets=[asset])
        return found["value"].tolist()

    assert close_as_of("2020-01-31T16:14:59-05:00") == []
    assert close_as_of("2020-01-31T16:15:00-05:00") == [10.0]
    assert close_as_of("2020-02-03T09:00:00-05:00") == [10.5]


def test_a_panel_with_a_zoneless_available_at_stores_nothing_and_names_it(
    cli, stack_settings, tmp_path
):
    asset = f"Z{uuid.uuid4().hex[:6]}"
    path = tmp_path / "zoneless.csv"
    path.write_text(
        "date,asset,close,available_at\n"
        f"2020-01-30,{asset},9.0,2020-01-30T16:15:00-05:00\n"
        f"2020-01-31,{asset},10.0,2020-01-31 16:15\n"
    )
    code, _, err = cli("data", "load", "--panel", str(path))
    assert code == 1
    assert "row 2 (first data row = 1), column 'available_at': '2020-01-31 16:15'" in err
    with psycopg.connect(stack_settings.postgres.dsn("app")) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM core.market_observations_all WHERE asset = %s", (asset,)
        ).fetchone()[0]
    assert stored == 0
