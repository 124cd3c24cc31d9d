"""AuditEvent → OpenTelemetry span: the same ids, the same tree, GenAI semantic conventions.

An event that closes a run (it has ``start_time``) becomes one finished span with the event's own
``trace_id``, ``span_id`` and ``parent_span_id`` and its real start and end times; nothing is
created through a tracer, so no new ids are made. Point events (no ``start_time``) become span
events of the span they happened in (:meth:`SpanMapper.span`), or, when that span was already
exported, zero-duration child spans (:meth:`SpanMapper.point_span`).

Attributes follow the OpenTelemetry GenAI conventions where one exists (``gen_ai.*``), HTTP ones
for requests (``http.*``, ``url.path``), and everything of ours sits under ``llm_audit.*``.
Message contents (prompts, outputs, tool arguments and results) are left out unless
``capture_content`` is on; they were sanitized before reaching any exporter either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from ..events import AuditEvent, AuditEventType

E = AuditEventType
NS = "llm_audit."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TEXT = 8192  # longest string attribute we write (a JSON dump of a payload is cut here)

_LLM = (E.LLM_INVOKE, E.LLM_ERROR)
_TOOL = (E.TOOL_RESULT, E.TOOL_ERROR, E.TOOL_CALL)
_RETRIEVER = (E.RETRIEVER_END, E.RETRIEVER_ERROR)
_REQUEST = (E.REQUEST_END,)

# LangChain's ``ls_provider`` → the GenAI conventions' ``gen_ai.provider.name``.
PROVIDER_NAMES: Mapping[str, str] = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "google_vertexai": "gcp.vertex_ai",
    "google_genai": "gcp.gen_ai",
    "cohere": "cohere",
    "groq": "groq",
    "mistralai": "mistral_ai",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}

# ``data`` keys copied as ``llm_audit.<key>``: plain values made by our code, never content.
_PLAIN_DATA_KEYS = ("streamed", "chunks", "time_to_first_token_ms", "cache_hit", "from_node",
                    "destination", "selected_by_span_id", "count", "attempt", "source",
                    "control_flow", "reason", "start_unknown", "trace_root", "upstream_sampled",
                    "tools_offered", "offered")
# ``data`` keys that hold content: exported only with ``capture_content``.
_CONTENT_KEYS = ("inputs", "outputs", "input", "output", "messages", "payload", "query",
                 "documents", "calls", "interrupts")


def to_ns(value: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float rounding)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def attribute_value(value: Any) -> AttributeValue | None:
    """An OpenTelemetry attribute value: primitives and homogeneous lists as they are, anything
    else as (truncated) JSON. ``None`` means: leave the attribute out."""
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, list | tuple) and value:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            return list(value)
    return json.dumps(value, default=str, ensure_ascii=False)[:_MAX_TEXT]


def _put(attributes: dict[str, AttributeValue], key: str, value: Any) -> None:
    converted = attribute_value(value)
    if converted is not None:
        attributes[key] = converted


def operation_name(event: AuditEvent) -> str | None:
    """``gen_ai.operation.name``: chat, execute_tool, retrieval, invoke_agent (the outermost
    LangChain run), or None for plain chain steps and requests."""
    kind = event.event_type
    if kind in _LLM:
        return "chat"
    if kind in _TOOL:
        return "execute_tool"
    if kind in _RETRIEVER:
        return "retrieval"
    if kind in _REQUEST:
        return None
    outermost = event.data.get("run_root") or event.data.get("trace_root")
    if event.start_time is not None and outermost:
        return "invoke_agent"  # the outermost LangChain run (run_root: inside a request too)
    return None


def request_model(event: AuditEvent) -> str | None:
    """The model the call asked for (invocation params), else the one that answered."""
    params = event.data.get("invocation_params")
    if isinstance(params, Mapping):
        for key in ("model", "model_name", "model_id"):
            if isinstance(params.get(key), str):
                return str(params[key])
    return event.model


def span_name(event: AuditEvent) -> str:
    """``{operation} {target}`` as the GenAI conventions name spans; ``METHOD /path`` for
    requests; the run's name for everything else."""
    operation = operation_name(event)
    if operation == "chat":
        model = request_model(event)
        return f"chat {model}" if model else "chat"
    if operation is not None:
        return f"{operation} {event.action}"
    if event.event_type is E.REQUEST_END:
        method = event.data.get("method")
        route = event.data.get("route") or event.data.get("path")
        return f"{method} {route}" if method and route else str(method or event.action)
    return event.action


def span_kind(event: AuditEvent) -> SpanKind:
    """SERVER for requests, CLIENT for model calls (a remote inference service), else INTERNAL."""
    if event.event_type in _REQUEST:
        return SpanKind.SERVER
    if event.event_type in _LLM:
        return SpanKind.CLIENT
    return SpanKind.INTERNAL


def span_status(event: AuditEvent) -> Status:
    """ERROR with a description for ``error`` and ``timeout``; UNSET otherwise (OpenTelemetry
    asks instrumentations to leave success unset)."""
    if event.status not in ("error", "timeout"):
        return Status(StatusCode.UNSET)
    if event.error is not None:
        return Status(StatusCode.ERROR, f"{event.error.type}: {event.error.message}"[:_MAX_TEXT])
    reason = event.data.get("reason")
    if event.status == "timeout":
        return Status(StatusCode.ERROR, f"timeout: {reason}" if reason else "timeout")
    status_code = event.data.get("status_code")
    return Status(StatusCode.ERROR, f"HTTP {status_code}" if status_code else event.status)


def exception_event(event: AuditEvent) -> Event | None:
    """The ``exception`` span event (semantic conventions) for an event carrying an error."""
    error = event.error
    if error is None:
        return None
    attributes: dict[str, AttributeValue] = {
        "exception.type": error.type,
        "exception.message": error.message[:_MAX_TEXT],
    }
    if error.traceback:
        attributes["exception.stacktrace"] = error.traceback[: _MAX_TEXT * 4]
    attributes[NS + "error.recoverable"] = error.recoverable
    return Event("exception", attributes, to_ns(event.timestamp))


def _genai_attributes(event: AuditEvent, attributes: dict[str, AttributeValue]) -> None:
    data = event.data
    operation = operation_name(event)
    _put(attributes, "gen_ai.operation.name", operation)
    if event.event_type in _LLM:
        provider = data.get("provider")
        if isinstance(provider, str):
            name = PROVIDER_NAMES.get(provider, provider)
            attributes["gen_ai.provider.name"] = name
            attributes["gen_ai.system"] = name  # the older name, still read by many backends
        _put(attributes, "gen_ai.request.model", request_model(event))
        _put(attributes, "gen_ai.response.model", event.model)
        _put(attributes, "gen_ai.usage.input_tokens", event.tokens_input)
        _put(attributes, "gen_ai.usage.output_tokens", event.tokens_output)
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            _put(attributes, "gen_ai.usage.cache_read.input_tokens", usage.get("cache_read_tokens"))
            _put(attributes, "gen_ai.usage.cache_creation.input_tokens",
                 usage.get("cache_write_tokens"))
            _put(attributes, NS + "usage.estimated", usage.get("estimated"))
            _put(attributes, NS + "usage.source", usage.get("source"))
        params = data.get("invocation_params")
        if isinstance(params, Mapping):
            for key in ("temperature", "max_tokens", "top_p"):
                _put(attributes, f"gen_ai.request.{key}", params.get(key))
    elif operation == "execute_tool":
        attributes["gen_ai.tool.name"] = event.action
        attributes["gen_ai.tool.type"] = "function"
        _put(attributes, "gen_ai.tool.call.id", data.get("tool_call_id"))
    elif operation == "invoke_agent":
        attributes["gen_ai.agent.name"] = event.action
    _put(attributes, "gen_ai.conversation.id", data.get("thread_id"))


def _request_attributes(event: AuditEvent, attributes: dict[str, AttributeValue]) -> None:
    data = event.data
    _put(attributes, "http.request.method", data.get("method"))
    _put(attributes, "url.path", data.get("path"))
    _put(attributes, "url.query", data.get("query"))
    _put(attributes, "http.route", data.get("route"))
    _put(attributes, "url.scheme", data.get("scheme"))
    _put(attributes, "http.response.status_code", data.get("status_code"))
    _put(attributes, "client.address", data.get("client_address"))


def _content_attributes(event: AuditEvent, attributes: dict[str, AttributeValue]) -> None:
    data = event.data
    if event.event_type in _LLM:
        _put(attributes, "gen_ai.input.messages", data.get("messages"))
        _put(attributes, "gen_ai.output.messages", data.get("output"))
    elif event.event_type in _TOOL:
        _put(attributes, "gen_ai.tool.call.arguments", data.get("input"))
        _put(attributes, "gen_ai.tool.call.result", data.get("output"))
    else:
        for key in _CONTENT_KEYS:
            _put(attributes, NS + key, data.get(key))


def _selection_attributes(event: AuditEvent, attributes: dict[str, AttributeValue]) -> None:
    calls = event.data.get("calls")
    if isinstance(calls, list):
        dicts = [c for c in calls if isinstance(c, Mapping)]
        _put(attributes, NS + "tool_calls.names", [str(c.get("name")) for c in dicts])
        _put(attributes, NS + "tool_calls.ids", [str(c.get("id")) for c in dicts])


def event_attributes(event: AuditEvent, *, capture_content: bool = False) -> dict[str, Any]:
    """Every attribute a span (or a span event) of ``event`` carries."""
    attributes: dict[str, AttributeValue] = {
        NS + "event_type": str(event.event_type),
        NS + "event_id": event.event_id,
        NS + "agent": event.agent,
        NS + "action": event.action,
        NS + "status": event.status,
        NS + "event_version": event.event_version,
    }
    _put(attributes, NS + "run_id", event.run_id)
    _put(attributes, NS + "latency_ms", event.latency_ms)
    _put(attributes, NS + "cost_usd", event.cost_usd)
    _put(attributes, NS + "model", event.model)
    data = event.data
    graph = data.get("langgraph")
    if isinstance(graph, Mapping):
        for key, value in graph.items():
            _put(attributes, f"{NS}langgraph.{key}", value)
    for key in _PLAIN_DATA_KEYS:
        if key in data:
            _put(attributes, NS + key, data[key])
    sampling = data.get("sampling")
    if isinstance(sampling, Mapping):
        _put(attributes, NS + "sampling.reason", sampling.get("reason"))
    _genai_attributes(event, attributes)
    if event.event_type in _REQUEST or event.event_type is E.REQUEST_START:
        _request_attributes(event, attributes)
    if event.event_type is E.TOOL_SELECTION:
        _selection_attributes(event, attributes)
    if capture_content:
        _content_attributes(event, attributes)
    return attributes


def _span_id(hex_id: str) -> int:
    return int(hex_id, 16)


def point_span_id(event: AuditEvent) -> str:
    """A stable span id for a point event exported as its own span (from its event id)."""
    value = int(event.event_id[-16:], 16) or 1
    return f"{value:016x}"


@dataclass(slots=True)
class SpanMapper:
    """Builds finished ``ReadableSpan`` objects from audit events, for any ``SpanExporter``."""

    resource: Resource
    scope: InstrumentationScope
    capture_content: bool = False
    _flags: TraceFlags = field(default=TraceFlags(TraceFlags.SAMPLED), init=False)

    def context(self, trace_id: str, span_id: str, *, remote: bool = False) -> SpanContext:
        """An OpenTelemetry span context for our hex ids (exported spans are sampled)."""
        return SpanContext(_span_id(trace_id), _span_id(span_id), is_remote=remote,
                           trace_flags=self._flags)

    def span(self, event: AuditEvent, points: Iterable[AuditEvent] = ()) -> ReadableSpan:
        """The span ``event`` closes, with ``points`` (point events of the same span) and the
        error, if any, as span events."""
        assert event.start_time is not None, "only an event with start_time closes a span"
        events = [self.span_event(p) for p in sorted(points, key=lambda p: p.timestamp)]
        error = exception_event(event)
        if error is not None:
            events.append(error)
        parent = None
        if event.parent_span_id is not None:
            # A trace root's parent lives outside this process (a traceparent header, or a span
            # another OpenTelemetry SDK owns): mark it remote, as a propagator would.
            remote = bool(event.data.get("trace_root"))
            parent = self.context(event.trace_id, event.parent_span_id, remote=remote)
        return ReadableSpan(
            name=span_name(event),
            context=self.context(event.trace_id, event.span_id),
            parent=parent,
            resource=self.resource,
            attributes=event_attributes(event, capture_content=self.capture_content),
            events=events,
            kind=span_kind(event),
            status=span_status(event),
            start_time=to_ns(event.start_time),
            end_time=max(to_ns(event.timestamp), to_ns(event.start_time)),
            instrumentation_scope=self.scope,
        )

    def span_event(self, event: AuditEvent) -> Event:
        """A point event as a span event named by its type (``tool.selection``...)."""
        attributes = event_attributes(event, capture_content=self.capture_content)
        error = exception_event(event)
        if error is not None and error.attributes is not None:
            attributes.update(error.attributes)
        return Event(str(event.event_type), attributes, to_ns(event.timestamp))

    def point_span(self, event: AuditEvent) -> ReadableSpan:
        """A point event whose span was already exported: a zero-duration child span of it,
        carrying the same span event (so a query by event name finds it either way)."""
        at = to_ns(event.timestamp)
        attributes = event_attributes(event, capture_content=self.capture_content)
        attributes[NS + "point_event"] = True
        return ReadableSpan(
            name=f"{event.event_type} {event.action}",
            context=self.context(event.trace_id, point_span_id(event)),
            parent=self.context(event.trace_id, event.span_id),
            resource=self.resource,
            attributes=attributes,
            events=[self.span_event(event)],
            kind=SpanKind.INTERNAL,
            status=span_status(event),
            start_time=at,
            end_time=at,
            instrumentation_scope=self.scope,
        )


def spans_of(mapper: SpanMapper, events: Sequence[AuditEvent]) -> list[ReadableSpan]:
    """Map one self-contained list of events (a whole trace, say): each span with the point
    events of the same span id attached; point events without their span become child spans."""
    closing = {e.span_id for e in events if e.start_time is not None}
    points: dict[str, list[AuditEvent]] = {}
    spans: list[ReadableSpan] = []
    for event in events:
        if event.start_time is None:
            if event.span_id in closing:
                points.setdefault(event.span_id, []).append(event)
            else:
                spans.append(mapper.point_span(event))
    for event in events:
        if event.start_time is not None:
            spans.append(mapper.span(event, points.get(event.span_id, ())))
    return spans
