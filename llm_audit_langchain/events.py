"""The audit event model, version 3.

Every record the package writes is an :class:`AuditEvent`. One LangChain run is one span: the
event that closes a run carries its ``span_id``, its parent's ``parent_span_id``, ``start_time``
and ``latency_ms``. Point events (a tool selection, a route, a retry, a custom event) carry the
``span_id`` of the run they happened in and no ``start_time``.

Example::

    >>> from llm_audit_langchain import AuditEvent, AuditEventType
    >>> event = AuditEvent.model_validate_json(line)     # one line of audit-YYYY-MM-DD.jsonl
    >>> event.event_type is AuditEventType.TOOL_ERROR
"""

from __future__ import annotations

import operator
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EVENT_VERSION = "3.0"

Status = Literal["ok", "error", "timeout", "retry"]


class AuditEventType(StrEnum):
    """What an event records. Values are stable strings: consumers filter on them."""

    REQUEST_START = "request.start"
    REQUEST_END = "request.end"
    CHAIN_START = "chain.start"
    CHAIN_END = "chain.end"
    CHAIN_ERROR = "chain.error"
    AGENT_ROUTE = "agent.route"
    AGENT_DECISION = "agent.decision"
    AGENT_RETRY = "agent.retry"
    AGENT_FALLBACK = "agent.fallback"
    AGENT_INTERRUPT = "agent.interrupt"
    LLM_INVOKE = "llm.invoke"
    LLM_ERROR = "llm.error"
    LLM_HALLUCINATION_DETECTED = "llm.hallucination_detected"
    LLM_GUARDRAIL = "llm.guardrail"
    TOOL_SELECTION = "tool.selection"
    TOOL_CALL = "tool.call"
    TOOL_RESULT = "tool.result"
    TOOL_ERROR = "tool.error"
    RETRIEVER_END = "retriever.end"
    RETRIEVER_ERROR = "retriever.error"
    CACHE_HIT = "cache.hit"
    CACHE_MISS = "cache.miss"
    PROMPT_EFFICIENCY = "prompt.efficiency"
    NLP_EXTRACT = "nlp.extract"
    API_CALL = "api.call"
    CUSTOM = "custom"
    TRACE_SUMMARY = "trace.summary"
    ALERT_FIRED = "alert.fired"
    ALERT_RESOLVED = "alert.resolved"
    CONTEXT_VERSION = "context.version"
    HUMAN_REVIEW = "human.review"
    FEEDBACK = "feedback"


class ErrorDetail(BaseModel):
    """What went wrong, captured when it happened, with enough context to replay it."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(description="Qualified exception class name, e.g. 'ValueError'.")
    message: str
    traceback: str | None = Field(default=None, description="Formatted at callback time.")
    recoverable: bool = True
    input_snapshot: Any = Field(default=None, description="The run's input, sanitized.")
    environment: dict[str, Any] | None = Field(
        default=None, description="Model id, package versions, Python: what a replay needs."
    )


class AuditEvent(BaseModel):
    """One audit record. Serialised as one JSON object per line in the JSONL files."""

    model_config = ConfigDict(extra="ignore")

    event_version: str = EVENT_VERSION
    event_id: str = Field(description="32 lowercase hex, unique per event.")
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="W3C trace id.")
    span_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="W3C span id of the run.")
    parent_span_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    timestamp: datetime = Field(description="UTC; the end of the run for span events.")
    start_time: datetime | None = Field(
        default=None, description="UTC start of the run; set only on the event closing a span."
    )
    event_type: AuditEventType
    agent: str = Field(description="The graph node or agent the event happened in.")
    action: str = Field(description="The run's name: node, model, tool, or custom event name.")
    status: Status = "ok"
    latency_ms: float | None = None
    tokens_input: int | None = None
    tokens_output: int | None = None
    cost_usd: float | None = None
    model: str | None = Field(default=None, description="Model id, for llm events.")
    run_id: str | None = Field(default=None, description="LangChain run id, when there is one.")
    data: dict[str, Any] = Field(default_factory=dict)
    error: ErrorDetail | None = None

    @property
    def is_span(self) -> bool:
        """True when the event closes a span (it has a start time)."""
        return self.start_time is not None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text  # as pydantic writes UTC


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    """The JSON form of an event, as written to JSONL (fast path; same shape as
    ``event.model_dump(mode="json")`` when ``data`` is already JSON-safe)."""
    error = event.error
    return {
        "event_version": event.event_version,
        "event_id": event.event_id,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "parent_span_id": event.parent_span_id,
        "timestamp": _iso(event.timestamp),
        "start_time": _iso(event.start_time),
        "event_type": str(event.event_type),
        "agent": event.agent,
        "action": event.action,
        "status": event.status,
        "latency_ms": event.latency_ms,
        "tokens_input": event.tokens_input,
        "tokens_output": event.tokens_output,
        "cost_usd": event.cost_usd,
        "model": event.model,
        "run_id": event.run_id,
        "data": event.data,
        "error": None
        if error is None
        else {
            "type": error.type,
            "message": error.message,
            "traceback": error.traceback,
            "recoverable": error.recoverable,
            "input_snapshot": error.input_snapshot,
            "environment": error.environment,
        },
    }


# Every field in declared order (required ones as None until given), so an event built here
# has its ``__dict__`` in the same order as one pydantic validated: the JSONL writer serialises
# ``__dict__`` directly, and its lines keep ``event_to_dict``'s key order.
_FIELD_DEFAULTS: dict[str, Any] = {
    name: None if field.is_required() else field.get_default(call_default_factory=True)
    for name, field in AuditEvent.model_fields.items()
}


_REQUIRED = tuple(name for name, field in AuditEvent.model_fields.items() if field.is_required())
_required_of = operator.itemgetter(*_REQUIRED)


def fast_event(**fields: Any) -> AuditEvent:
    """Build an ``AuditEvent`` without validation, for the callbacks' hot path.

    Only for values this package generates itself (W3C ids from ``context.py``, UTC datetimes,
    enum members): validating them again costs more than everything else a callback does.
    ``data`` defaults to a new dict; every other missing field takes its declared default.
    """
    values = {**_FIELD_DEFAULTS, "data": {}, **fields}
    if len(values) != len(_FIELD_DEFAULTS) or None in _required_of(values):
        missing = sorted(k for k in _REQUIRED if values.get(k) is None)
        unknown = sorted(fields.keys() - _FIELD_DEFAULTS.keys())
        raise TypeError(f"fast_event: missing {missing}, unknown {unknown}")
    event = AuditEvent.__new__(AuditEvent)
    object.__setattr__(event, "__dict__", values)
    object.__setattr__(event, "__pydantic_fields_set__", set(fields))
    object.__setattr__(event, "__pydantic_extra__", None)
    object.__setattr__(event, "__pydantic_private__", None)
    return event
