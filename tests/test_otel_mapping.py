"""AuditEvent → OpenTelemetry spans: ids, parentage, times, status, GenAI attributes, point
events across batches, suppression of the exporter's own instrumentation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("opentelemetry.sdk")

from conftest import fast_config
from graphs import react_agent, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llm_audit_langchain import AuditCallbackHandler, AuditEvent, AuditEventType, MemoryExporter
from llm_audit_langchain.exporters.base import ExportResult
from llm_audit_langchain.otel import OtlpExporter
from llm_audit_langchain.otel.spans import point_span_id

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _event(kind: AuditEventType, span: str, parent: str | None = None, *, start: bool = True,
           **fields: object) -> AuditEvent:
    base: dict[str, object] = dict(
        event_id=f"{abs(hash((kind, span, start))):032x}"[-32:], trace_id=TRACE, span_id=span,
        parent_span_id=parent, timestamp=T0 + timedelta(milliseconds=5),
        start_time=T0 if start else None, event_type=kind, agent="agent", action="x")
    base.update(fields)
    return AuditEvent.model_validate(base)


def _by_id(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {f"{s.context.span_id:016x}": s for s in spans}  # type: ignore[union-attr]


def test_span_keeps_ids_parent_times_and_genai_attributes() -> None:
    memory = InMemorySpanExporter()
    exporter = OtlpExporter(memory)
    llm = _event(AuditEventType.LLM_INVOKE, "00f067aa0ba902b7", "1111111111111111",
                 action="ChatBedrock", model="anthropic.claude-3-haiku", tokens_input=23,
                 tokens_output=10, cost_usd=0.000018, latency_ms=5.0,
                 data={"provider": "amazon_bedrock", "thread_id": "t-1",
                       "invocation_params": {"model_id": "anthropic.claude-3-haiku",
                                             "temperature": 0.2},
                       "langgraph": {"node": "agent", "step": 2}})
    assert exporter.export([llm]) is ExportResult.SUCCESS
    (span,) = memory.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == TRACE
    assert f"{span.context.span_id:016x}" == "00f067aa0ba902b7"
    assert f"{span.parent.span_id:016x}" == "1111111111111111"
    assert span.start_time == 1767323045123456000
    assert span.end_time == span.start_time + 5_000_000
    assert span.name == "chat anthropic.claude-3-haiku"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "aws.bedrock"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"]
    assert attrs["gen_ai.usage.input_tokens"] == 23
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.conversation.id"] == "t-1"
    assert attrs["llm_audit.cost_usd"] == 0.000018
    assert attrs["llm_audit.langgraph.node"] == "agent"
    assert attrs["llm_audit.langgraph.step"] == 2
    assert attrs["llm_audit.event_type"] == "llm.invoke"
    assert not any(k.startswith("gen_ai.input") for k in attrs)  # content is opt-in


def test_error_gives_error_status_and_exception_event() -> None:
    memory = InMemorySpanExporter()
    exporter = OtlpExporter(memory)
    failed = _event(AuditEventType.TOOL_ERROR, "2222222222222222", "1111111111111111",
                    action="get_weather", status="error",
                    data={"tool_call_id": "call_1"},
                    error={"type": "ValueError", "message": "no station",
                           "traceback": "Traceback...\nValueError: no station"})
    timeout = _event(AuditEventType.LLM_ERROR, "3333333333333333", status="timeout",
                     data={"reason": "no end callback after 600s"})
    exporter.export([failed, timeout])
    spans = _by_id(memory.get_finished_spans())
    tool = spans["2222222222222222"]
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.status.description == "ValueError: no station"
    assert tool.name == "execute_tool get_weather"
    attrs = dict(tool.attributes or {})
    assert attrs["gen_ai.tool.name"] == "get_weather"
    assert attrs["gen_ai.tool.call.id"] == "call_1"
    (exc,) = tool.events
    assert exc.name == "exception"
    assert dict(exc.attributes or {})["exception.type"] == "ValueError"
    assert dict(exc.attributes or {})["exception.message"] == "no station"
    assert "Traceback" in str(dict(exc.attributes or {})["exception.stacktrace"])
    late = spans["3333333333333333"]
    assert late.status.status_code is StatusCode.ERROR
    assert late.status.description == "timeout: no end callback after 600s"


def test_point_events_join_their_span_across_batches() -> None:
    memory = InMemorySpanExporter()
    exporter = OtlpExporter(memory)
    span_id = "4444444444444444"
    retry = _event(AuditEventType.AGENT_RETRY, span_id, start=False, status="retry",
                   data={"attempt": 2})
    custom = _event(AuditEventType.CUSTOM, span_id, start=False, action="checkpoint",
                    data={"payload": {"n": 1}})
    exporter.export([retry])  # the span has not closed: the point event waits
    exporter.export([custom])
    assert memory.get_finished_spans() == ()
    assert exporter.stats()["waiting_point_events"] == 2
    exporter.export([_event(AuditEventType.CHAIN_END, span_id)])
    (span,) = memory.get_finished_spans()
    assert [e.name for e in span.events] == ["agent.retry", "custom"]
    assert dict(span.events[0].attributes or {})["llm_audit.attempt"] == 2
    # a point event after its span was exported: a zero-duration child span, same event inside
    late = _event(AuditEventType.TOOL_SELECTION, span_id, start=False,
                  data={"calls": [{"name": "get_weather", "args": {}, "id": "c1"}]})
    exporter.export([late])
    child = _by_id(memory.get_finished_spans())[point_span_id(late)]
    assert child.parent is not None and f"{child.parent.span_id:016x}" == span_id
    assert child.start_time == child.end_time
    assert [e.name for e in child.events] == ["tool.selection"]
    assert dict(child.attributes or {})["llm_audit.tool_calls.names"] == ["get_weather"]
    assert exporter.stats() == {"spans": 2, "point_events_attached": 2,
                                "point_events_as_spans": 1, "failed_exports": 0,
                                "waiting_point_events": 0}


def test_waiting_point_events_are_bounded_and_sent_at_shutdown() -> None:
    memory = InMemorySpanExporter()
    exporter = OtlpExporter(memory, max_waiting_point_events=2)
    points = [_event(AuditEventType.CUSTOM, f"{i + 1:016x}", start=False) for i in range(3)]
    exporter.export(points)
    assert len(memory.get_finished_spans()) == 1  # the oldest went out as a child span
    assert exporter.stats()["waiting_point_events"] == 2
    exporter.shutdown()
    assert len(memory.get_finished_spans()) == 3


class _FailingOnce(InMemorySpanExporter):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.suppressed: list[object] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.suppressed.append(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        if self.calls == 1:
            return SpanExportResult.FAILURE
        return super().export(spans)


def test_failed_export_is_retried_with_the_same_buffer_and_instrumentation_suppressed() -> None:
    sink = _FailingOnce()
    exporter = OtlpExporter(sink)
    span_id = "5555555555555555"
    exporter.export([_event(AuditEventType.CUSTOM, span_id, start=False)])
    batch = [_event(AuditEventType.CHAIN_END, span_id)]
    assert exporter.export(batch) is ExportResult.FAILURE
    assert exporter.export(batch) is ExportResult.SUCCESS  # the pipeline's retry
    (span,) = sink.get_finished_spans()
    assert [e.name for e in span.events] == ["custom"]
    assert sink.suppressed == [True, True]
    assert otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None


def test_request_span_is_server_kind_with_http_attributes_and_external_span_skipped() -> None:
    memory = InMemorySpanExporter()
    exporter = OtlpExporter(memory)
    data = {"method": "POST", "path": "/chat", "route": "/chat", "status_code": 503,
            "trace_root": True}
    request = _event(AuditEventType.REQUEST_END, "6666666666666666", "7777777777777777",
                     status="error", data=data)
    external = _event(AuditEventType.REQUEST_END, "8888888888888888",
                      data={**data, "external_span": True})
    exporter.export([request, external])
    (span,) = memory.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.name == "POST /chat"
    assert span.parent is not None and span.parent.is_remote  # the caller's span
    assert span.status.description == "HTTP 503"
    attrs = dict(span.attributes or {})
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.response.status_code"] == 503
    assert attrs["url.path"] == "/chat"


def test_real_graph_maps_to_one_tree_with_tool_selection_on_the_llm_span() -> None:
    memory = InMemorySpanExporter()
    events = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[events, OtlpExporter(memory)],
                                   config=fast_config())
    graph = react_agent([tool_call("get_weather", {"city": "Paris"}, "call_w1"),
                         AIMessage("Sunny in Paris.")])
    graph.invoke({"messages": [HumanMessage("Weather in Paris?")]},
                 config={"callbacks": [handler], "configurable": {"thread_id": "th-9"}})
    assert handler.flush(5)
    handler.shutdown(5)
    audit = events.events
    spans = _by_id(memory.get_finished_spans())
    closing = [e for e in audit if e.start_time is not None]
    assert set(spans) >= {e.span_id for e in closing}
    for event in closing:
        span = spans[event.span_id]
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" == event.trace_id
        parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
        assert parent == event.parent_span_id
    llm_spans = [s for s in spans.values() if dict(s.attributes or {}).get(
        "gen_ai.operation.name") == "chat"]
    assert len(llm_spans) == 2
    selection = [e for s in llm_spans for e in s.events if e.name == "tool.selection"]
    selection_children = [s for s in spans.values()
                          if s.name.startswith("tool.selection")]
    assert len(selection) + len(selection_children) == 1
    tool = next(s for s in spans.values() if s.name == "execute_tool get_weather")
    assert dict(tool.attributes or {})["gen_ai.tool.call.id"] == "call_w1"
    root = next(s for s in spans.values() if s.parent is None)
    assert dict(root.attributes or {})["gen_ai.operation.name"] == "invoke_agent"
