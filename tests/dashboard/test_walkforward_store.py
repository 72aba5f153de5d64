"""The walk-forward's report, written as files, is stored in Postgres too (the
dashboard's /walkforward page shows the newest), once per database, and a database that
cannot take it costs a warning, never the files."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest

from app.walkforward_html import write_report
from storage.walkforward_reports import latest_report
from tests.dashboard.conftest import walkforward_report
from tests.stack_support import free_ports

pytestmark = pytest.mark.stack


def test_write_report_stores_what_report_json_holds(tmp_path, pipeline_db):
    report, series = walkforward_report("stored_once")
    # the same database named twice (the run's stack is the dashboard's): one row
    json_path, _ = write_report(tmp_path, report, series, databases=[pipeline_db, pipeline_db])
    with psycopg.connect(pipeline_db.dsn("viewer")) as conn:
        stored = latest_report(conn)
        (rows,) = conn.execute(
            "SELECT count(*) FROM core.walkforward_reports WHERE strategy_id = 'stored_once'"
        ).fetchone()
    assert rows == 1 and stored.strategy_id == "stored_once"
    assert stored.report == json.loads(json_path.read_text())  # NaN stored as null
    assert set(stored.series) == set(series)
    pool10 = stored.series["pool10"]
    assert pool10["dates"][0] == "2015-01-31" and pool10["returns"] == series["pool10"].tolist()


def test_a_database_that_is_down_costs_a_warning_not_the_files(tmp_path, pipeline_db, caplog):
    (closed,) = free_ports(1)
    down = pipeline_db.model_copy(update={"port": closed})
    with caplog.at_level(logging.WARNING, logger="alphafactory.walkforward"):
        json_path, html_path = write_report(tmp_path, *walkforward_report("s"), databases=[down])
    assert json_path.exists() and html_path.exists()
    assert "walk-forward report not stored" in caplog.text and str(closed) in caplog.text
