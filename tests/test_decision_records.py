"""Decision records built from events a real LangGraph run recorded (not hand-made events): every
field of the record is checked, including the tools offered (which the handler moves out of the
invocation parameters) and the checkpoint the decision was made from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from conftest import fast_config
from graphs import AgentState, get_time, get_weather, tool_call
from langchain_core.messages import AIMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from llm_audit_langchain import AuditCallbackHandler, AuditedCheckpointSaver, JsonlExporter
from llm_audit_langchain.audit import canonical_json, decision_record, prompt_version
from llm_audit_langchain.inspect.context_versions import ContextHistory
from llm_audit_langchain.replay.reading import scan
from llm_audit_langchain.testing import ScriptedChatModel

SYSTEM = "You are a weather assistant. Use tools."


def sha(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def record_a_run(logs: Path) -> InMemorySaver:
    model = ScriptedChatModel(responses=[
        tool_call("get_weather", {"city": "Oslo"}, "call_o1"), AIMessage("Cold in Oslo."),
    ]).bind_tools([get_weather, get_time]).bind(temperature=0.3, max_tokens=64)

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [model.invoke([SystemMessage(SYSTEM), *state["messages"]])]}

    def route(state: AgentState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([get_weather, get_time]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    saver = InMemorySaver()
    audit = AuditCallbackHandler(exporters=[JsonlExporter(logs)], config=fast_config())
    graph = builder.compile(checkpointer=AuditedCheckpointSaver(saver, handler=audit))
    try:
        graph.invoke({"messages": [("user", "Weather in Oslo?")]},
                     {"configurable": {"thread_id": "th-1"}, "callbacks": [audit],
                      "metadata": {"prompt_version": "weather-v4"}})
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    return saver


def test_every_field_of_a_record_from_recorded_events(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    saver = record_a_run(logs)
    events = list(scan(logs))
    history = ContextHistory(events)
    first, second = sorted((e for e in events if e.event_type == "llm.invoke"),
                           key=lambda e: e.timestamp)
    record = decision_record(first, checkpoints=history.task_checkpoints)

    node = next(e for e in events if e.event_type == "chain.end" and e.action == "agent"
                and e.span_id == first.parent_span_id)
    stored = list(saver.list({"configurable": {"thread_id": "th-1"}}))
    step_zero = next(t for t in stored if t.metadata["step"] == 0)  # what the agent ran from
    expected = {
        "decision_id": first.event_id,
        "decision_type": "llm.invoke",
        "timestamp": first.timestamp.isoformat(),
        "trace_id": first.trace_id,
        "span_id": first.span_id,
        "parent_span_id": node.span_id,
        "agent": "agent",
        "action": "ScriptedChatModel",
        "status": "ok",
        "input_hash": sha(first.data["messages"]),
        "prompt_hash": sha(SYSTEM),
        "prompt_version": prompt_version(SYSTEM),
        "template_version": "weather-v4",
        "model_id": "scripted-model",
        "model_version": "scripted-model",
        "generation_params": {"temperature": 0.3, "max_tokens": 64, "stop": None},
        "tools_offered": ["get_weather", "get_time"],
        "output_hash": sha(first.data["output"]),
        "tools_chosen": [{"name": "get_weather", "id": "call_o1"}],
        "hashed_from": "event",
        "thread_id": "th-1",
        "task_id": first.data["langgraph"]["checkpoint_ns"].split(":", 1)[1],
        "checkpoint_id": step_zero.config["configurable"]["checkpoint_id"],
        "was_overridden": False,
        "overridden_by": None,
        "override_reason": None,
        "final_decision": None,
    }
    assert record == expected

    later = decision_record(second, checkpoints=history.task_checkpoints)
    assert later["tools_chosen"] == [] and later["tools_offered"] == ["get_weather", "get_time"]
    assert later["checkpoint_id"] != record["checkpoint_id"]
    version = history.versions[later["checkpoint_id"]]
    assert version.changed_by == ["tools"]  # decided after the tool's result entered the state
    assert decision_record(second)["checkpoint_id"] is None  # without the history: unknown
