"""audit_span / audit_node / emit: plain functions and custom events in the same trace."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from trace_checks import assert_valid_tree, by_trace

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditEvent,
    MemoryExporter,
    audit_node,
    audit_span,
    emit,
    set_default_handler,
)


class State(TypedDict):
    query: str
    answer: str


@audit_span("benefits", "search")
def search(query: str, limit: int = 3) -> list[str]:
    emit("llm.hallucination_detected", {"claim": "made-up benefit", "score": 0.91})
    return [f"{query}-{i}" for i in range(limit)]


@audit_span("benefits", "fetch", capture_result=False)
async def fetch(query: str) -> str:
    return f"secret payload for {query}"


@audit_span("benefits")
def explode(query: str) -> str:
    raise LookupError(f"no benefit matches {query}")


@audit_node
def answer(state: State) -> dict[str, Any]:
    return {"answer": ", ".join(search(state["query"], limit=2))}


def graph() -> Any:
    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


def recorded(handler: AuditCallbackHandler, memory: MemoryExporter) -> list[AuditEvent]:
    assert handler.flush(timeout=10), handler.stats()
    return memory.events


def test_spans_nest_inside_a_langgraph_run(handler: AuditCallbackHandler,
                                           memory: MemoryExporter) -> None:
    result = graph().invoke({"query": "dental", "answer": ""}, config={"callbacks": [handler]})
    assert result["answer"] == "dental-0, dental-1"
    events = recorded(handler, memory)
    assert_valid_tree(events)
    spans = {e.action: e for e in events if e.start_time is not None}
    assert set(spans) == {"LangGraph", "answer", "search"}
    node_runs = [e for e in events if e.action == "answer"]
    assert len(node_runs) == 2  # the LangGraph node and the audit_node span inside it
    inner = next(e for e in node_runs if e.parent_span_id != spans["LangGraph"].span_id)
    assert spans["search"].parent_span_id == inner.span_id
    assert spans["search"].agent == "benefits" and inner.agent == "answer"
    assert spans["search"].data["outputs"] == ["dental-0", "dental-1"]
    [hallucination] = [e for e in events if e.event_type == "llm.hallucination_detected"]
    assert hallucination.span_id == spans["search"].span_id
    assert hallucination.data["payload"] == {"claim": "made-up benefit", "score": 0.91}


def test_error_is_recorded_with_arguments_and_reraised(handler: AuditCallbackHandler,
                                                       memory: MemoryExporter) -> None:
    set_default_handler(handler)
    with pytest.raises(LookupError, match="no benefit matches vision"):
        explode("vision")
    [event] = recorded(handler, memory)
    assert event.event_type == "chain.error" and event.action == "explode"
    assert event.error is not None and event.error.type == "LookupError"
    assert event.error.input_snapshot == {"args": ["vision"], "kwargs": {}}


async def test_async_span_outside_any_run_uses_the_default_handler(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    set_default_handler(handler)
    assert await fetch("glasses") == "secret payload for glasses"
    [event] = recorded(handler, memory)
    assert (event.agent, event.action, event.status) == ("benefits", "fetch", "ok")
    assert "outputs" not in event.data and event.parent_span_id is None


def test_emit_outside_a_run_starts_its_own_trace(handler: AuditCallbackHandler,
                                                 memory: MemoryExporter) -> None:
    emit("cache.miss", {"key": "user:42"}, agent="cache", handler=handler)
    emit("my.metric", {"value": 3}, handler=handler)
    events = recorded(handler, memory)
    assert [str(e.event_type) for e in events] == ["cache.miss", "custom"]
    assert events[1].action == "my.metric"
    assert len(by_trace(events)) == 2


def test_emit_without_any_handler_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    set_default_handler(None)
    emit("custom", {"x": 1})  # must not raise
    assert "dropped" in caplog.text
