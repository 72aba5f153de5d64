"""Walk-forward reports in the system of record: ``alphafactory walkforward`` stores each
report it writes (``core.walkforward_reports``), the dashboard reads the newest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from storage.db import require_text


@dataclass(frozen=True)
class StoredReport:
    report_id: int
    strategy_id: str
    report: dict  # report.json's object
    series: dict[str, dict[str, list]]  # name -> {"dates": [...], "returns": [...]}
    created_at: datetime


def store_report(conn: psycopg.Connection, *, report: dict, series: dict) -> int:
    """Add ``report`` (strict JSON: no NaN) and its plotted ``series``; returns its id."""
    for key in ("strategy", "from", "to"):
        require_text(report.get(key), f"report[{key!r}]")
    (report_id,) = conn.execute(
        """
        INSERT INTO core.walkforward_reports (strategy_id, first_month, last_month, report, series)
        VALUES (%s, %s, %s, %s, %s) RETURNING report_id
        """,
        (report["strategy"], report["from"], report["to"], Jsonb(report), Jsonb(series)),
    ).fetchone()
    return report_id


def latest_report(conn: psycopg.Connection) -> StoredReport | None:
    row = conn.execute(
        "SELECT report_id, strategy_id, report, series, created_at "
        "FROM core.walkforward_reports ORDER BY report_id DESC LIMIT 1"
    ).fetchone()
    return StoredReport(*row) if row else None
