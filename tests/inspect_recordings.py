"""Recordings the inspection tests read: real LangGraph runs through the real handler, written
to JSONL, to the hash-chained audit log and to a MemoryExporter at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conftest import fast_config
from graphs import react_agent, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter, MemoryExporter
from llm_audit_langchain.audit import AuditLogExporter, record_override
from llm_audit_langchain.demo import build_agent

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
"""A prompt (and a tool argument) that would run code if a view forgot to escape it."""


@tool
def lookup(query: str) -> str:
    """Look something up (fails, echoing the query into its error)."""
    raise ValueError(f"no match for {query}")


@dataclass
class Recording:
    logs: Path
    chain: Path
    memory: MemoryExporter
    demo_trace: str
    hostile_trace: str
    thread_traces: list[str]


def record(base: Path) -> Recording:
    """The demo agent (a retried node, a failing tool) for user u-42; a two-turn conversation on
    thread ``t-7`` for user u-7; a run whose prompt and tool error carry HTML; an override."""
    memory = MemoryExporter()
    chain = AuditLogExporter(base / "chain")
    handler = AuditCallbackHandler(
        exporters=[JsonlExporter(base / "logs"), chain, memory], config=fast_config())
    build_agent().invoke(
        {"messages": [HumanMessage("Weather in Paris and Atlantis?")], "profile": {}},
        config={"callbacks": [handler], "metadata": {"user_id": "u-42"}})
    conversation = react_agent(
        [tool_call("get_time", {"city": "Lima"}, "call_t1"), AIMessage("12:00 in Lima."),
         AIMessage("You are welcome.")])
    conversation.checkpointer = InMemorySaver()
    for text in ("What time is it in Lima?", "Thanks!"):
        conversation.invoke({"messages": [HumanMessage(text)]}, config={
            "callbacks": [handler], "metadata": {"user_id": "u-7"},
            "configurable": {"thread_id": "t-7"}})
    react_agent([tool_call("lookup", {"query": HOSTILE}, "call_h1"),
                 AIMessage(HOSTILE)], tools=[lookup]).invoke(
        {"messages": [HumanMessage(f"Weather for {HOSTILE}")]},
        config={"callbacks": [handler], "metadata": {"user_id": "mallory"}})
    assert handler.flush(timeout=10)
    decision = next(e for e in memory.events if str(e.event_type) == "llm.invoke")
    record_override(chain, decision, overridden_by="ana@bank", reason="policy 7",
                    final_decision="ask a person")
    handler.shutdown(timeout=5)
    roots = [e for e in memory.events if e.data.get("run_root")]
    demo = next(e.trace_id for e in roots if e.data.get("metadata", {}).get("user_id") == "u-42")
    hostile = next(e.trace_id for e in roots
                   if e.data.get("metadata", {}).get("user_id") == "mallory")
    thread = [e.trace_id for e in roots if e.data.get("metadata", {}).get("user_id") == "u-7"]
    return Recording(base / "logs", base / "chain", memory, demo, hostile, thread)
