"""An offline LangGraph agent, audited end to end: ``python -m llm_audit_langchain.demo``.

The agent loads a user profile (a flaky step LangGraph retries), asks a scripted chat model which
tools to call, runs them in parallel (one fails and the ToolNode hands the error back to the
model), and answers. No network: the model is ``ScriptedChatModel``. The audit record goes to
``logs/audit-YYYY-MM-DD.jsonl``; the demo reads it back and prints the trace tree.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import RetryPolicy

from . import AuditCallbackHandler, AuditEvent, JsonlExporter, TraceContext
from .context import new_span_id, new_trace_id
from .inspect.tree import render_trace, trace_totals
from .testing import ScriptedChatModel

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    profile: dict[str, Any]


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    if city == "Atlantis":
        raise ValueError("weather service has no station in Atlantis")
    return f"sunny, 21C in {city}"


@tool
def get_local_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city}"


def build_agent() -> Any:
    """profile (retried once) → agent ⇄ tools → END."""
    tools = [get_weather, get_local_time]
    model = ScriptedChatModel(
        model_name=MODEL_ID,
        provider="amazon_bedrock",
        responses=[
            AIMessage("", tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_paris"},
                {"name": "get_weather", "args": {"city": "Atlantis"}, "id": "call_atlantis"},
            ]),
            AIMessage("Paris is sunny at 21C. I could not get the weather for Atlantis."),
        ],
    ).bind_tools(tools)
    attempts = {"profile": 0}

    def load_profile(state: State) -> dict[str, Any]:
        attempts["profile"] += 1
        if attempts["profile"] == 1:
            raise ConnectionError("profile service timed out")
        return {"profile": {"user_id": "u-42", "units": "metric"}}

    def agent(state: State) -> dict[str, Any]:
        prompt = [SystemMessage("You are a concise travel assistant."), *state["messages"]]
        return {"messages": [model.invoke(prompt)]}

    def route(state: State) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(State)
    builder.add_node("profile", load_profile,
                     retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False,
                                              retry_on=ConnectionError))
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    builder.add_edge(START, "profile")
    builder.add_edge("profile", "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


def read_events(path: Path, trace_id: str) -> list[AuditEvent]:
    """The events of one trace in a JSONL file."""
    events = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("trace_id") == trace_id:
                events.append(AuditEvent.model_validate(record))
    return events


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", default="logs", help="where the JSONL files go")
    args = parser.parse_args(argv)
    jsonl = JsonlExporter(args.log_dir)
    handler = AuditCallbackHandler(exporters=[jsonl])
    question = "What's the weather in Paris and in Atlantis? My email is ana@example.com."
    # An incoming W3C traceparent, as a web framework would pass it on: the run joins its trace.
    incoming = f"00-{new_trace_id()}-{new_span_id()}-01"
    with TraceContext.from_traceparent(incoming) as ctx:
        result = build_agent().invoke(
            {"messages": [HumanMessage(question)], "profile": {}},
            config={"callbacks": [handler], "metadata": {"user_id": "u-42"}},
        )
    if not handler.flush(timeout=10):
        print("warning: not every event was exported in time", file=sys.stderr)
    path = jsonl.path_for(datetime.now(UTC))
    events = read_events(path, ctx.trace_id)
    print(f"Answer: {result['messages'][-1].content}\n")
    print(f"Trace {ctx.trace_id} ({len(events)} events)\n")
    print(render_trace(events))
    totals = trace_totals(events)
    cost = totals["cost_usd"]
    print(f"\nTotal: {totals['tokens_input']} input + {totals['tokens_output']} output tokens, "
          f"cost {'unknown' if cost is None else f'${cost:.6f}'}")
    print(f"Pipeline: {json.dumps({k: v for k, v in handler.stats().items() if k != 'exporters'})}")
    print(f"\nAudit log: {path.resolve()}")
    print(f"Try: jq -c 'select(.trace_id == \"{ctx.trace_id}\") | "
          "[.event_type, .action, .status]' " + str(path))
    handler.shutdown(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
