"""Memory stays flat: 10,000 runs (some of them abandoned streams) leave nothing behind."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import psutil
from conftest import fast_config
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

from llm_audit_langchain import AuditCallbackHandler, AuditEvent
from llm_audit_langchain.testing import ScriptedChatModel


class CountingExporter:
    """Counts what it receives and keeps nothing, so RSS reflects the package alone."""

    name = "counting"

    def __init__(self) -> None:
        self.count = 0
        self.timeouts = 0

    def export(self, batch: Sequence[AuditEvent]) -> None:
        self.count += len(batch)
        self.timeouts += sum(1 for e in batch if e.status == "timeout")

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        return None


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def one_node_graph() -> Any:
    model = ScriptedChatModel(responses=[AIMessage("fine, thanks for asking")])

    def chat(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"][-1:])]}

    builder = StateGraph(State)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile()


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def test_ten_thousand_runs_leave_the_run_map_empty_and_rss_flat() -> None:
    exporter = CountingExporter()
    handler = AuditCallbackHandler(exporters=[exporter],
                                   config=fast_config(run_ttl_s=0.3, queue_size=2_000))
    graph = one_node_graph()
    config: Any = {"callbacks": [handler]}
    inputs = {"messages": [HumanMessage("how are you?")]}

    def run(i: int) -> None:
        if i % 10 == 0:  # an abandoned stream: the caller stops reading after one chunk
            stream = graph.stream(inputs, config=config, stream_mode="messages")
            next(iter(stream))
            del stream
        else:
            graph.invoke(inputs, config=config)

    for i in range(1_000):
        run(i)
    handler.flush(10)
    baseline = rss_mb()
    for i in range(1_000, 10_000):
        run(i)
    deadline = time.monotonic() + 10
    while handler.stats()["active_runs"] and time.monotonic() < deadline:
        time.sleep(0.1)  # abandoned streams are evicted by the TTL sweep on the worker
    assert handler.flush(10)
    growth = rss_mb() - baseline

    stats = handler.stats()
    assert stats["active_runs"] == 0
    assert len(handler._tool_calls) == 0
    assert stats["internal_errors"] == 0
    assert stats["enqueued"] == exporter.count + sum(stats["dropped"].values())
    assert growth < 25, f"RSS grew {growth:.1f} MB over 9,000 runs"
    handler.shutdown(5)
