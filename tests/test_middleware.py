"""AuditMiddleware with a real Starlette app, its TestClient, and a LangGraph graph inside the
endpoint: the caller's trace is kept through the run, headers go back, a bad header starts anew."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from conftest import fast_config
from graphs import AgentState, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from trace_checks import assert_valid_tree

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditEventType,
    MemoryExporter,
    SamplingPolicy,
    current_traceparent,
)
from llm_audit_langchain.capture.middleware import AuditMiddleware
from llm_audit_langchain.testing import ScriptedChatModel

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"
UPSTREAM = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01"

outbound: list[str | None] = []


@tool
def call_backend(city: str) -> str:
    """Calls another service, propagating the trace."""
    outbound.append(current_traceparent())
    return f"ok {city}"


def _graph() -> Any:
    model = ScriptedChatModel(responses=[tool_call("call_backend", {"city": "Paris"}, "c1"),
                                         AIMessage("done")]).bind_tools([call_backend])

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: AgentState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([call_backend]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


def _app(handler: AuditCallbackHandler, status_after_run: int = 200) -> Starlette:
    graph = _graph()

    def chat(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread
        result = graph.invoke({"messages": [HumanMessage("Weather?")]},
                              config={"callbacks": [handler]})
        return JSONResponse({"answer": result["messages"][-1].content},
                            status_code=status_after_run)

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("endpoint failed")

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"]), Route("/boom", boom)])
    app.add_middleware(AuditMiddleware, handler=handler)
    return app


@pytest.fixture
def audit() -> Iterator[tuple[AuditCallbackHandler, MemoryExporter]]:
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory], config=fast_config())
    outbound.clear()
    yield handler, memory
    handler.shutdown(5)


def test_incoming_trace_is_kept_through_the_graph_run(
    audit: tuple[AuditCallbackHandler, MemoryExporter],
) -> None:
    handler, memory = audit
    with TestClient(_app(handler)) as client:
        response = client.post("/chat?email=ann@example.com", headers={"traceparent": UPSTREAM})
    assert response.status_code == 200 and response.json() == {"answer": "done"}
    assert handler.flush(5)
    events = memory.events
    assert {e.trace_id for e in events} == {UPSTREAM_TRACE}
    (start,) = memory.events_of(AuditEventType.REQUEST_START)
    (end,) = memory.events_of(AuditEventType.REQUEST_END)
    assert end.parent_span_id == UPSTREAM_SPAN and start.span_id == end.span_id
    assert end.data["trace_root"] is True
    assert end.data["method"] == "POST" and end.data["path"] == "/chat"
    assert end.data["route"] == "/chat" and end.data["status_code"] == 200
    assert "query" not in end.data and "ann@example.com" not in str(end.data)
    assert end.latency_ms is not None and end.latency_ms > 0
    assert response.headers["x-trace-id"] == UPSTREAM_TRACE
    assert response.headers["traceparent"] == f"00-{UPSTREAM_TRACE}-{end.span_id}-01"
    root = assert_valid_tree([e for e in events if e.event_type is not AuditEventType.REQUEST_START]
                             + [start])
    assert root is end  # the graph's spans hang under the request span
    graph_root = next(e for e in events if e.action == "LangGraph")
    assert graph_root.parent_span_id == end.span_id


def test_malformed_or_missing_header_starts_a_new_trace(
    audit: tuple[AuditCallbackHandler, MemoryExporter],
) -> None:
    handler, memory = audit
    before = handler.stats()["malformed_traceparent"]
    with TestClient(_app(handler)) as client:
        bad = client.post("/chat", headers={"traceparent": "00-xyz-bad-01"})
        fresh = client.post("/chat")
    assert handler.flush(5)
    assert handler.stats()["malformed_traceparent"] == before + 1
    ends = memory.events_of(AuditEventType.REQUEST_END)
    assert len(ends) == 2 and all(e.parent_span_id is None for e in ends)
    assert {bad.headers["x-trace-id"], fresh.headers["x-trace-id"]} == {e.trace_id for e in ends}
    assert len({e.trace_id for e in ends}) == 2
    for end in ends:
        trace = memory.trace(end.trace_id)
        assert len(trace) > 5  # the graph's events joined the request's new trace


def test_endpoint_exception_is_a_failed_request(
    audit: tuple[AuditCallbackHandler, MemoryExporter],
) -> None:
    handler, memory = audit
    with TestClient(_app(handler), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert handler.flush(5)
    (end,) = memory.events_of(AuditEventType.REQUEST_END)
    assert end.status == "error" and end.data["status_code"] == 500
    assert end.error is not None and end.error.type == "RuntimeError"
    assert "endpoint failed" in (end.error.traceback or "")


def test_outbound_traceparent_inside_a_tool_carries_the_run_trace(
    audit: tuple[AuditCallbackHandler, MemoryExporter],
) -> None:
    handler, _memory = audit
    with TestClient(_app(handler)) as client:
        client.post("/chat", headers={"traceparent": UPSTREAM})
    (header,) = outbound
    assert header is not None and header.split("-")[1] == UPSTREAM_TRACE


def test_outbound_traceparent_inside_a_tool_names_the_tool_span(
    audit: tuple[AuditCallbackHandler, MemoryExporter],
) -> None:
    handler, memory = audit
    with TestClient(_app(handler)) as client:
        client.post("/chat", headers={"traceparent": UPSTREAM})
    assert handler.flush(5)
    (tool_span,) = memory.events_of(AuditEventType.TOOL_RESULT)
    assert outbound[0] is not None and outbound[0].split("-")[2] == tool_span.span_id


def test_request_trace_is_sampled_whole_on_request_end() -> None:
    memory = MemoryExporter()
    policy = SamplingPolicy(success_rate=0.0, error_rate=1.0)
    handler = AuditCallbackHandler(exporters=[memory],
                                   config=fast_config(debug=False, sampling=policy))
    try:
        with TestClient(_app(handler, status_after_run=503)) as client:
            client.post("/chat")
        assert handler.flush(5)
    finally:
        handler.shutdown(5)
    kinds = {str(e.event_type) for e in memory.events}
    assert {"request.start", "request.end", "llm.invoke", "tool.result"} <= kinds
