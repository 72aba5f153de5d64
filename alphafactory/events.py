"""Every event the system sends or receives: one frozen, typed model per topic.

JSON on the wire (UTF-8), one schema version per model. ``decode`` validates a received
message and raises ``EventError`` naming what is wrong (not JSON, a missing or mistyped
field, NaN or infinity, an unknown schema version, too large); the consume loop sends such
a message to the dead-letter topic and goes on. Unknown extra fields are ignored, so a
producer may add a field without breaking older consumers; removing or retyping one needs
a new schema version.

``MacroRelease`` and ``MarketData`` are the contracts of ``macro.releases`` and
``market.data`` (DESIGN.md): outside clients publish them. The other three are internal:
a generation request per strategy and trigger, the results of each evaluated chunk, one
rebalance per allocation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from datetime import date, datetime, timedelta
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from alphafactory import log_context, topics

MAX_EVENT_BYTES = 1 << 20  # 1 MiB: the broker's default message size limit


class EventError(ValueError):
    """A message that is not a valid event of its topic."""


class FutureEventError(EventError):
    """A valid event dated later than now plus the allowed clock skew: a mistyped or
    malicious timestamp must not become what the trading systems read as latest."""


DEFAULT_MAX_SKEW = timedelta(minutes=5)


def refuse_future(instant: datetime, *, now: datetime, max_skew: timedelta, what: str) -> None:
    """FutureEventError naming ``what`` unless ``instant <= now + max_skew``."""
    if instant > now + max_skew:
        raise FutureEventError(
            f"{what} {instant.isoformat()} is in the future: more than {max_skew} after now "
            f"({now.isoformat()}); check the sender's clock and timestamps "
            "(pipeline.max_clock_skew_s sets the tolerance)"
        )


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone, e.g. 2024-05-10T12:30:00+00:00")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Event(BaseModel):
    """Base of every event: frozen, strict types, finite numbers only."""

    model_config = ConfigDict(frozen=True, strict=True, allow_inf_nan=False, extra="ignore")
    topic: ClassVar[str]

    def key(self) -> str:
        """The Kafka key: events with the same key stay in order on one partition."""
        raise NotImplementedError

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class MacroRelease(Event):
    """A new observation (or revision) of a macro series, released at ``released_at``."""

    topic: ClassVar[str] = topics.MACRO_RELEASES
    event_id: Text
    series_id: Text
    period: date
    value: float
    released_at: AwareDatetime
    schema_version: Literal[1] = 1

    def key(self) -> str:
        return self.series_id


FieldName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class MarketData(Event):
    """New market observations of one asset for one date (the panel contract's fields:
    ``returns``, ``close``...), available from ``available_at``; a later ``available_at``
    for the same (asset, date, field) is a revision."""

    topic: ClassVar[str] = topics.MARKET_DATA
    event_id: Text
    asset: Text
    date: dt.date
    fields: Annotated[dict[FieldName, float], Field(min_length=1, max_length=256)]
    available_at: AwareDatetime
    schema_version: Literal[1] = 1

    @model_validator(mode="after")
    def _not_before_its_date(self) -> MarketData:
        from alphafactory.clock import decision_date

        if decision_date(self.available_at) < self.date:
            raise ValueError(
                f"available_at {self.available_at.isoformat()} is before the observation's "
                f"date {self.date.isoformat()} began in New York"
            )
        return self

    def key(self) -> str:
        return self.asset


class GenerationRequest(Event):
    """Generate, evaluate and allocate for ``strategy_id`` as of ``as_of``, with data
    released by ``decision_time`` only."""

    topic: ClassVar[str] = topics.GENERATION_REQUESTS
    request_id: Text
    strategy_id: Text
    as_of: date
    decision_time: AwareDatetime
    trigger_event_id: Text  # the release's event_id, the schedule's tick id, market:<date>
    trigger: Literal["release", "schedule", "manual", "market"]
    candidates: int = Field(ge=1, le=1_000_000)
    requested_at: AwareDatetime
    schema_version: Literal[1] = 1

    def key(self) -> str:
        return self.strategy_id


def request_id_for(strategy_id: str, trigger_event_id: str) -> str:
    """The request id of a strategy's reaction to one trigger: deterministic, so a trigger
    delivered twice (or re-emitted after a restart) names the same request."""
    digest = hashlib.sha256(f"{strategy_id}\n{trigger_event_id}".encode()).hexdigest()
    return digest[:32]


class FormulaResult(BaseModel):
    """One formula evaluated point-in-time; metrics that could not be computed are null."""

    model_config = Event.model_config
    formula_hash: Text
    formula: Annotated[str, Field(min_length=1, max_length=10_000)]
    qualified: bool
    metrics: dict[str, float | None]


class BacktestResults(Event):
    """The formulas of one chunk of a request, evaluated and stored (a chunk too large for
    one message is split by :meth:`of_chunk`). Per chunk, not per formula: the allocator
    only asks whether the request is complete, and a record per formula was a sixth of the
    full walk-forward's CPU (outbox rows, the relay, the broker, the allocator's decoding)."""

    topic: ClassVar[str] = topics.BACKTEST_RESULTS
    request_id: Text
    strategy_id: Text
    as_of: date
    evaluated_at: AwareDatetime
    results: Annotated[list[FormulaResult], Field(min_length=1, max_length=10_000)]
    schema_version: Literal[2] = 2

    def key(self) -> str:
        return self.strategy_id

    @classmethod
    def of_chunk(
        cls,
        results: list[FormulaResult],
        *,
        max_bytes: int = MAX_EVENT_BYTES // 2,
        **announced,
    ) -> list[BacktestResults]:
        """``results`` announced in order, in as few events as keep each one's results
        within ``max_bytes`` of JSON (one result per event at least); ``announced``: the
        other fields."""
        events, batch, size = [], [], 0
        for result in results:
            length = len(result.model_dump_json()) + 1
            if batch and size + length > max_bytes:
                events.append(cls(results=batch, **announced))
                batch, size = [], 0
            batch.append(result)
            size += length
        if batch:
            events.append(cls(results=batch, **announced))
        return events


class Rebalance(Event):
    """New target weights for a strategy, announced after they are committed."""

    topic: ClassVar[str] = topics.PORTFOLIO_REBALANCES
    allocation_id: Text
    strategy_id: Text
    as_of: date
    trigger_event_id: Text
    weights: dict[str, float]
    n_alphas: int = Field(ge=0)
    created_at: AwareDatetime
    schema_version: Literal[1] = 1

    def key(self) -> str:
        return self.strategy_id


class TrainingRequest(Event):
    """Train generator ``generator`` ("" the default) on ``strategy_id``'s data released
    before ``cutoff``; ``promote``: roll the new version out once it is served. Carried
    by the Celery queue ``train`` (``consumers.tasks``), not by Kafka: one trainer works
    through them in order, and a retrained cutoff is found in the registry, not redone."""

    topic: ClassVar[str] = "celery:train"
    generator: Annotated[str, Field(pattern=r"^[a-z0-9_]{0,40}$")]
    strategy_id: Text
    cutoff: AwareDatetime
    promote: bool = True
    steps: int | None = Field(None, ge=1, le=1_000_000)
    # fine-tuning steps when it starts from the previous version's weights
    warm_steps: int | None = Field(None, ge=1, le=1_000_000)
    formulas: int | None = Field(None, ge=10, le=10_000_000)
    requested_at: AwareDatetime
    schema_version: Literal[1] = 1

    def key(self) -> str:
        return self.generator or "default"


EVENTS: dict[str, type[Event]] = {
    cls.topic: cls
    for cls in (MacroRelease, MarketData, GenerationRequest, BacktestResults, Rebalance)
}
E = TypeVar("E", bound=Event)


def decode(kind: type[E], raw: bytes | None) -> E:
    """Parse and validate one message of ``kind``; ``EventError`` names the problem."""
    where = f"{kind.__name__} on {kind.topic!r}"
    if raw is None:
        raise EventError(f"{where}: empty message (no value)")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(f"{where}: {len(raw):,} bytes, more than the {MAX_EVENT_BYTES:,} allowed")
    try:
        event = kind.model_validate_json(raw)  # a valid message: parsed once
    except ValidationError:
        pass  # the checks below name what is wrong
    else:
        _name_in_logs(event)
        return event
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EventError(f"{where}: not UTF-8 JSON ({e})") from e
    except ValueError as e:
        raise EventError(f"{where}: {e}") from e
    if not isinstance(data, dict):
        raise EventError(f"{where}: expected a JSON object, got {type(data).__name__}")
    _name_in_logs(data)  # an invalid event's lines (its dead letter's) still name it
    version = data.get("schema_version", 1)
    expected = kind.model_fields["schema_version"].default
    if version != expected:
        raise EventError(f"{where}: schema_version {version!r} is unknown; expected {expected}")
    try:
        # strict types; JSON has no date type, so dates and timestamps come as ISO strings,
        # which strict validation accepts on the JSON path only
        return kind.model_validate_json(raw)
    except ValidationError as e:
        raise EventError(f"{where}: {_explain(e)}") from e


def _name_in_logs(event: Event | dict) -> None:
    """The decoded event's ids on the log lines of the record in hand
    (``alphafactory.log_context``): its own id, or the trigger's for a request's events."""
    fields = event if isinstance(event, dict) else event.__dict__
    ids = {
        "event_id": fields.get("event_id") or fields.get("trigger_event_id"),
        "request_id": fields.get("request_id"),
    }
    log_context.add(**{name: v for name, v in ids.items() if isinstance(v, str)})


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows (NaN and infinity are rejected)")


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "message"
        value = item.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if isinstance(value, float) and not math.isfinite(value):
            shown = str(value)
        parts.append(f"{field}: {item['msg']} (got {shown})")
    return "; ".join(parts)
