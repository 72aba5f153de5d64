"""Logging of every alphafactory process, configured once from the settings.

``log_format = "text"`` writes lines for people; ``"json"`` one JSON object a line for a
log pipeline (Loki, Elasticsearch, CloudWatch): time, level, logger, message, the process'
service and the ids of the work in hand (``alphafactory.log_context``: the event id, the
request id and the Kafka record or Celery task), null where a line belongs to none.
"""

from __future__ import annotations

import logging
import sys

from alphafactory.log_context import FIELDS, ContextFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON_FIELDS = ("asctime", "levelname", "name", "message", "process", *FIELDS)


def configure_logging(level: str, log_format: str, *, service: str | None = None) -> None:
    """Root logging to stderr at ``level`` in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                list(_JSON_FIELDS),
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service} if service else None,
                json_ensure_ascii=False,
            )
        )
    elif log_format == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise ValueError(f"log_format must be 'text' or 'json', got {log_format!r}")
    logging.basicConfig(level=level, handlers=[handler], force=True)
