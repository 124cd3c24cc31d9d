"""``AuditedCheckpointSaver``: one ``context.version`` per checkpoint and per task's writes, with
nothing changed in what the wrapped saver stores or returns (in-memory and SQLite savers, sync
and async graphs), and the recorded versions answer "context at time T" and "lineage"."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import react_agent, tool_call
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditedCheckpointSaver,
    AuditEvent,
    JsonlExporter,
    MemoryExporter,
)
from llm_audit_langchain.capture.checkpoints import task_node, user_channels
from llm_audit_langchain.inspect.context_versions import ContextHistory, context_at, lineage


def question() -> dict[str, Any]:
    """A fresh input each run: LangGraph gives the caller's message objects ids in place."""
    return {"messages": [HumanMessage("What is the weather in Paris?")]}


def weather_graph(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    graph = react_agent([tool_call("get_weather", {"city": "Paris"}, "call_w1"),
                         AIMessage("Sunny in Paris.")])
    graph.checkpointer = checkpointer
    return graph


@contextmanager
def sync_saver(kind: str, path: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    if kind == "memory":
        yield InMemorySaver()
        return
    connection = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(connection)
    finally:
        connection.close()


@asynccontextmanager
async def async_saver(kind: str, path: Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    if kind == "memory":
        yield InMemorySaver()
        return
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


def message_shape(value: Any) -> Any:
    """Messages without their random ids, inside any lists and dicts."""
    if isinstance(value, BaseMessage):
        return (value.type, value.content, [(c["name"], c["args"], c["id"])
                                            for c in getattr(value, "tool_calls", [])])
    if isinstance(value, list):
        return [message_shape(v) for v in value]
    if isinstance(value, dict):
        return {k: message_shape(v) for k, v in value.items()}
    return value


def stored_shape(tuples: list[CheckpointTuple]) -> list[Any]:
    """What a saver stored, without the ids and times that differ from run to run."""
    shape = []
    for item in tuples:
        values = item.checkpoint["channel_values"]
        shape.append((
            item.metadata.get("source"), item.metadata.get("step"),
            sorted(item.checkpoint["channel_versions"]),
            message_shape(values),
            item.parent_config is None,
            sorted(channel for _task, channel, _value in item.pending_writes or ()),
        ))
    return shape


def result_shape(result: dict[str, Any]) -> list[Any]:
    return [message_shape(m) for m in result["messages"]]


def context_events(events: list[AuditEvent], kind: str) -> list[AuditEvent]:
    return [e for e in events if e.event_type == "context.version" and e.data["kind"] == kind]


def check_recorded(events: list[AuditEvent], stored: list[CheckpointTuple]) -> None:
    """Every stored checkpoint was recorded once, with its parent; writes name their node."""
    checkpoints = context_events(events, "checkpoint")
    recorded = {e.data["checkpoint_id"]: e for e in checkpoints}
    assert len(recorded) == len(checkpoints) == len(stored)
    for item in stored:
        event = recorded[item.config["configurable"]["checkpoint_id"]]
        parent = item.parent_config["configurable"]["checkpoint_id"] if item.parent_config else None
        assert event.data["parent_checkpoint_id"] == parent
        assert event.data["step"] == item.metadata["step"]
        assert len(event.data["state_hash"]) == 64 and "state" not in event.data
    trace_ids = {e.trace_id for e in events}
    assert len(trace_ids) == 1, "checkpoints join the run's trace"
    nodes = {e.data["changed_by"][0] for e in context_events(events, "writes")
             if e.data["changed_by"]}
    assert {"agent", "tools"} <= nodes
    by_step = sorted(checkpoints, key=lambda e: e.data["step"])
    assert [e.data["changed_by"] for e in by_step[1:]] == [
        ["__start__"], ["agent"], ["tools"], ["agent"]]
    assert all(e.data["changed_channels"] == ["messages"] for e in by_step[1:])


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_sync_graph_stores_the_same_with_and_without_the_wrapper(
        kind: str, tmp_path: Path, handler: AuditCallbackHandler, memory: MemoryExporter) -> None:
    config = {"configurable": {"thread_id": "t-1"}, "callbacks": [handler]}
    with sync_saver(kind, tmp_path / "plain.db") as plain, \
            sync_saver(kind, tmp_path / "audited.db") as inner:
        audited = AuditedCheckpointSaver(inner, handler=handler)
        plain_result = weather_graph(plain).invoke(question(), config)
        audited_result = weather_graph(audited).invoke(question(), config)
        assert result_shape(plain_result) == result_shape(audited_result)
        plain_stored = list(plain.list({"configurable": {"thread_id": "t-1"}}))
        inner_stored = list(inner.list({"configurable": {"thread_id": "t-1"}}))
        via_wrapper = list(audited.list({"configurable": {"thread_id": "t-1"}}))
        assert stored_shape(plain_stored) == stored_shape(inner_stored)
        assert via_wrapper == inner_stored  # reads go through unchanged
        latest = {"configurable": {"thread_id": "t-1"}}
        assert audited.get_tuple(latest) == inner.get_tuple(latest)
        assert handler.flush(10)
    events = [e for e in memory.events
              if e.trace_id == next(x.trace_id for x in memory.events
                                    if x.event_type == "context.version")]
    check_recorded([e for e in events if e.event_type == "context.version"], inner_stored)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_async_graph_stores_the_same_with_and_without_the_wrapper(
        kind: str, tmp_path: Path, handler: AuditCallbackHandler, memory: MemoryExporter) -> None:
    config = {"configurable": {"thread_id": "t-2"}, "callbacks": [handler]}
    async with async_saver(kind, tmp_path / "plain.db") as plain, \
            async_saver(kind, tmp_path / "audited.db") as inner:
        audited = AuditedCheckpointSaver(inner, handler=handler)
        plain_result = await weather_graph(plain).ainvoke(question(), config)
        audited_result = await weather_graph(audited).ainvoke(question(), config)
        assert result_shape(plain_result) == result_shape(audited_result)
        thread = {"configurable": {"thread_id": "t-2"}}
        plain_stored = [t async for t in plain.alist(thread)]
        inner_stored = [t async for t in inner.alist(thread)]
        assert stored_shape(plain_stored) == stored_shape(inner_stored)
        assert [t async for t in audited.alist(thread)] == inner_stored
        assert await audited.aget_tuple(thread) == await inner.aget_tuple(thread)
        assert handler.flush(10)
    check_recorded([e for e in memory.events if e.event_type == "context.version"],
                   inner_stored)


def test_lineage_and_context_at_from_the_recorded_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    audit = AuditCallbackHandler(exporters=[JsonlExporter(logs)], config=fast_config())
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t-3"}, "callbacks": [audit],
              "metadata": {"change_description": "customer asked for the weather"}}
    try:
        weather_graph(AuditedCheckpointSaver(saver, handler=audit)).invoke(question(), config)
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    latest = saver.get_tuple({"configurable": {"thread_id": "t-3"}})
    assert latest is not None
    chain = lineage(latest.config["configurable"]["checkpoint_id"], logs)
    assert [v.step for v in chain] == [-1, 0, 1, 2, 3]
    assert chain[0].parent_checkpoint_id is None and chain[0].source == "input"
    assert all(b.parent_checkpoint_id == a.checkpoint_id for a, b in itertools.pairwise(chain))
    assert chain[-1].change_description == "customer asked for the weather"

    history = ContextHistory.load(logs)
    middle = chain[2]
    assert history.context_at("t-3", middle.timestamp).checkpoint_id == middle.checkpoint_id
    assert context_at("t-3", chain[-1].timestamp.isoformat(), logs) == chain[-1]
    assert history.context_at("t-3", chain[0].timestamp.timestamp() - 60) is None
    assert history.context_at("other-thread", chain[-1].timestamp) is None
    assert lineage("no-such-checkpoint", logs) == []
    # every task names the checkpoint it ran from: the context its decisions were made from
    assert set(history.task_checkpoints.values()) <= {v.checkpoint_id for v in chain}
    assert len(history.task_checkpoints) >= 4


def test_recording_problems_never_reach_the_graph(memory: MemoryExporter) -> None:
    saver = AuditedCheckpointSaver(InMemorySaver(), handler=None)
    from llm_audit_langchain.capture import handler as handler_module

    handler_module.set_default_handler(None)
    result = weather_graph(saver).invoke(question(), {"configurable": {"thread_id": "t-4"}})
    assert result["messages"][-1].content == "Sunny in Paris."  # nothing to record with: fine
    assert saver.recording_errors == 0
    broken = AuditedCheckpointSaver(InMemorySaver(), handler="not a handler")  # type: ignore
    result = weather_graph(broken).invoke(question(), {"configurable": {"thread_id": "t-5"}})
    assert result["messages"][-1].content == "Sunny in Paris."
    assert broken.recording_errors > 0


def test_helpers() -> None:
    assert task_node("~__pregel_pull, agent") == "agent"
    assert task_node("") is None
    assert user_channels(["messages", "branch:to:agent", "__start__", "plan"]) == [
        "messages", "plan"]


def test_a_node_describes_its_change(handler: AuditCallbackHandler,
                                     memory: MemoryExporter) -> None:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from llm_audit_langchain.capture.checkpoints import describe_change

    class Limits(TypedDict):
        limit: int

    def raise_limit(state: Limits) -> dict[str, Any]:
        describe_change("limit raised after the income check")
        return {"limit": state["limit"] * 2}

    builder = StateGraph(Limits)
    builder.add_node("raise_limit", raise_limit)
    builder.add_edge(START, "raise_limit")
    builder.add_edge("raise_limit", END)
    graph = builder.compile(checkpointer=AuditedCheckpointSaver(InMemorySaver(), handler=handler))
    graph.invoke({"limit": 500}, {"configurable": {"thread_id": "t-6"}, "callbacks": [handler]})
    describe_change("outside a graph: ignored")
    assert handler.flush(10)
    last = max(context_events(memory.events, "checkpoint"), key=lambda e: e.data["step"])
    assert last.data["changed_by"] == ["raise_limit"]
    assert last.data["changed_channels"] == ["limit"]
    assert last.data["change_description"] == "limit raised after the income check"
    (writes,) = [e for e in context_events(memory.events, "writes")
                 if e.data["changed_by"] == ["raise_limit"]]
    assert writes.data["writes"] == {"limit": 1000}
