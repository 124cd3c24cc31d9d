"""We keep no user object alive, no thread running, and no trace waiting, past its use.

- A large object local to a failing LangGraph node is freed once the run is over: nothing of
  ours (a cached exception, its traceback, the frames it pins) outlives the error callbacks.
- A handler the program drops stops its worker thread (after exporting what it had queued).
- A trace whose root never ends cleanly is decided after the run TTL and released whole.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter


class _Ballast:
    """Stands for a large user object (a 50 MB buffer in the report); weakref-able."""

    def __init__(self) -> None:
        self.payload = bytearray(1024)


class _State(TypedDict):
    value: int


def _failing_graph(ballast_refs: list[weakref.ref[_Ballast]]) -> Any:
    def explode(state: _State) -> dict[str, Any]:
        ballast = _Ballast()  # a node local: only the failing frame holds it
        ballast_refs.append(weakref.ref(ballast))
        raise ValueError(f"node failed holding {len(ballast.payload)} bytes")

    builder = StateGraph(_State)
    builder.add_node("explode", explode)
    builder.add_edge(START, "explode")
    builder.add_edge("explode", END)
    return builder.compile()


def _assert_freed(refs: list[weakref.ref[_Ballast]]) -> None:
    gc.collect()
    assert len(refs) == 1
    assert refs[0]() is None, gc.get_referrers(refs[0]())


def test_a_failing_nodes_locals_are_freed_after_invoke(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    refs: list[weakref.ref[_Ballast]] = []
    graph = _failing_graph(refs)
    try:
        graph.invoke({"value": 1}, config={"callbacks": [handler]})
    except ValueError:
        pass
    assert handler.flush(timeout=10)
    _assert_freed(refs)
    errors = [e for e in memory.events if e.error is not None]
    assert errors and all("explode" in (e.error.traceback or "") for e in errors)


async def test_a_failing_nodes_locals_are_freed_after_ainvoke(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    refs: list[weakref.ref[_Ballast]] = []
    graph = _failing_graph(refs)
    try:
        await graph.ainvoke({"value": 1}, config={"callbacks": [handler]})
    except ValueError:
        pass
    assert handler.flush(timeout=10)
    _assert_freed(refs)
    assert any(e.error is not None for e in memory.events)
