"""AuditMetrics: exact counts for real graph runs, sampled-out traces still counted, gauges from
handler.stats(), requests through the middleware, and a Prometheus endpoint scraped over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from collector import free_port
from conftest import fast_config
from graphs import react_agent, tool_call, weather_agent
from langchain_core.messages import AIMessage, HumanMessage

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter, SamplingPolicy
from llm_audit_langchain.otel import AuditMetrics


@pytest.fixture
def metrics() -> Iterator[AuditMetrics]:
    collected = AuditMetrics(otlp=False)
    yield collected
    collected.shutdown()


def _handler(metrics: AuditMetrics, memory: MemoryExporter, **config: object
             ) -> AuditCallbackHandler:
    handler = AuditCallbackHandler(exporters=[memory], config=fast_config(**config),
                                   observers=[metrics.observe])
    metrics.bind(handler)
    return handler


def test_counts_are_exact_for_a_graph_run_even_when_the_trace_is_sampled_out(
    metrics: AuditMetrics,
) -> None:
    memory = MemoryExporter()
    drop_all = SamplingPolicy(success_rate=0.0)
    handler = _handler(metrics, memory, debug=False, sampling=drop_all)
    try:
        for _ in range(3):
            weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                                   config={"callbacks": [handler]})
        assert handler.flush(5)
    finally:
        handler.shutdown(5)
    assert memory.events == []  # every trace was sampled out...
    assert metrics.value("llm_calls_total") == 6  # ...and still counted
    assert metrics.value("tool_calls_total") == 3
    assert metrics.value("tool_calls_total", **{"gen_ai.tool.name": "get_weather"}) == 3
    assert metrics.value("agent_runs_total") == 3
    assert metrics.value("requests_total") == 0
    assert metrics.value("errors_total") == 0
    assert metrics.value("retries_total") == 0
    assert metrics.value("llm_latency") == 6  # histogram: number of recordings
    assert metrics.value("tool_latency") == 3
    snap = metrics.snapshot()
    assert snap["llm_latency"]["min"] > 0
    assert metrics.value("tokens_total", **{"gen_ai.token.type": "input"}) > 0
    assert metrics.value("tokens_total", **{"gen_ai.token.type": "output"}) > 0
    assert metrics.value("llm_calls_total", **{"gen_ai.request.model": "scripted-model"}) == 6


def test_errors_and_gauges(metrics: AuditMetrics) -> None:
    memory = MemoryExporter()
    handler = _handler(metrics, memory)
    try:
        graph = react_agent([tool_call("get_weather", {"city": "Atlantis"}, "c1"),
                             AIMessage("No weather there.")])
        graph.invoke({"messages": [HumanMessage("Weather in Atlantis?")]},
                     config={"callbacks": [handler]})
        assert handler.flush(5)
        snap = metrics.snapshot()
    finally:
        handler.shutdown(5)
    assert metrics.value("errors_total", **{"llm_audit.event_type": "tool.error"}) == 1
    assert metrics.value("tool_calls_total", **{"llm_audit.status": "error"}) == 1
    assert snap["queue_size"]["total"] == 0
    assert snap["memory_buffer_usage"]["total"] == 0
    assert snap["active_traces"]["total"] == 0


def test_requests_through_the_middleware_are_counted(metrics: AuditMetrics) -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from llm_audit_langchain.capture.middleware import AuditMiddleware

    memory = MemoryExporter()
    handler = _handler(metrics, memory)

    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/ok", ok)])
    app.add_middleware(AuditMiddleware, handler=handler)
    try:
        with TestClient(app) as client:
            for _ in range(4):
                client.get("/ok")
            client.get("/missing")
        assert handler.flush(5)
    finally:
        handler.shutdown(5)
    assert metrics.value("requests_total") == 5
    assert metrics.value("requests_total", **{"http.response.status_code": 404}) == 1
    assert metrics.value("request_latency") == 5


def test_prometheus_endpoint_is_scraped_over_http() -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus",
                        reason="opentelemetry-exporter-prometheus is not installed")
    import httpx

    port = free_port()
    metrics = AuditMetrics(otlp=False, prometheus_port=port)
    memory = MemoryExporter()
    handler = _handler(metrics, memory)
    try:
        weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                               config={"callbacks": [handler]})
        assert handler.flush(5)
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        handler.shutdown(5)
        metrics.shutdown()
    lines = [line for line in body.splitlines() if line.startswith("llm_calls_total{")]
    assert lines and float(lines[0].rsplit(" ", 1)[1]) == 2.0
    assert "tool_latency_milliseconds_count{" in body
