"""The ids of the work in hand, carried on every log line written while it is handled.

A consume loop binds a scope around each record (:func:`bound`: its topic, partition and
offset); decoding the record's event adds its ``event_id`` and, for a request's events,
the ``request_id`` (:func:`add`); a Celery task binds its request. :class:`ContextFilter`
copies them onto each ``logging.LogRecord``, where the JSON log format
(``log_format = "json"``) writes them, so one grep or log query finds every line of one
release or request across services. Context variables: each thread (``run all``) and each
task has its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("event_id", "request_id", "record")
_scope: ContextVar[dict[str, str] | None] = ContextVar("alphafactory_log_ids", default=None)


_BATCH = "\0batch"  # a scope of many records: one event's ids would mislabel the others


@contextmanager
def bound(*, batch: bool = False, **ids: str | None) -> Iterator[None]:
    """A scope whose log lines carry ``ids`` and, unless it handles a ``batch`` of
    records, whatever :func:`add` adds inside it."""
    outer = _scope.get() or {}
    scope = {**outer, **{k: str(v) for k, v in ids.items() if v is not None}}
    if batch:
        scope[_BATCH] = "1"
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def add(**ids: str | None) -> None:
    """Add ids to the current scope; outside any scope (a command line tool decoding an
    event) nothing is kept."""
    scope = _scope.get()
    if scope is not None and _BATCH not in scope:
        scope.update({k: str(v) for k, v in ids.items() if v is not None})


def current() -> dict[str, str]:
    return {k: v for k, v in (_scope.get() or {}).items() if k != _BATCH}


class ContextFilter(logging.Filter):
    """Puts the scope's ids on every record (None where not known), for the formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _scope.get() or {}
        for name in FIELDS:
            setattr(record, name, scope.get(name))
        return True
