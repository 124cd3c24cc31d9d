"""End to end against a real OpenTelemetry collector (rotel): a LangGraph run's spans arrive
with our trace id, span ids, parent ids and GenAI attributes, configured by OTEL_* variables."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from collector import Collector, collector
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter, TraceContext
from llm_audit_langchain.otel import OtlpExporter

__all__ = ["collector"]  # the fixture, imported so pytest finds it


def test_graph_spans_reach_the_collector_with_our_ids(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "weather-agent")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory, OtlpExporter()], config=fast_config())
    upstream = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with TraceContext.from_traceparent(upstream):
        weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                               config={"callbacks": [handler],
                                       "configurable": {"thread_id": "conv-1"}})
    assert handler.shutdown(10)
    ours = {e.span_id: e for e in memory.events if e.start_time is not None}
    received = {s.span_id: s for s in collector.wait_for_spans(len(ours))}
    assert set(received) >= set(ours)
    for span_id, event in ours.items():
        span = received[span_id]
        assert span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert span.parent_id == (event.parent_span_id or "")
        assert span.resource["service.name"] == "weather-agent"
    root = next(s for s in received.values() if s.parent_id == "00f067aa0ba902b7")
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    chats = [s for s in received.values() if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(chats) == 2
    for chat in chats:
        assert chat.attributes["gen_ai.request.model"] == "scripted-model"
        assert chat.attributes["gen_ai.provider.name"] == "fake"
        assert int(chat.attributes["gen_ai.usage.input_tokens"]) > 0
        assert chat.attributes["gen_ai.conversation.id"] == "conv-1"
        assert chat.kind == "SPAN_KIND_CLIENT"
    assert sum("tool.selection" in c.events for c in chats) == 1
    (tool,) = [s for s in received.values()
               if s.attributes.get("gen_ai.operation.name") == "execute_tool"]
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_w1"
    assert tool.attributes["llm_audit.event_type"] == "tool.result"


def test_failed_tool_arrives_with_error_status_and_exception_event(
    collector: Collector,
) -> None:
    from graphs import react_agent, tool_call
    from langchain_core.messages import AIMessage

    memory = MemoryExporter()
    exporter = OtlpExporter(endpoint=f"{collector.endpoint}/v1/traces")
    handler = AuditCallbackHandler(exporters=[memory, exporter], config=fast_config())
    graph = react_agent([tool_call("get_weather", {"city": "Atlantis"}, "call_a"),
                         AIMessage("No weather there.")])
    graph.invoke({"messages": [HumanMessage("Weather in Atlantis?")]},
                 config={"callbacks": [handler]})
    assert handler.shutdown(10)
    count = len([e for e in memory.events if e.start_time is not None])
    spans = collector.wait_for_spans(count)
    (tool,) = [s for s in spans if s.attributes.get("gen_ai.tool.name") == "get_weather"]
    assert tool.status == "STATUS_CODE_ERROR"
    assert "unknown city: Atlantis" in tool.status_message
    assert "exception" in tool.events
