"""Real LangGraph graphs driven by deterministic scripted chat models (no network)."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

from llm_audit_langchain.testing import ScriptedChatModel


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    if city == "Atlantis":
        raise ValueError(f"unknown city: {city}")
    return f"sunny, 21C in {city}"


@tool
def get_time(city: str) -> str:
    """Local time in a city."""
    return f"12:00 in {city}"


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def react_agent(responses: list[AIMessage] | None = None, *, handle_tool_errors: bool = True,
                responder: Any = None, tools: list[Any] | None = None) -> Any:
    """agent → (tools → agent)* → END, the classic ReAct loop."""
    tools = tools or [get_weather, get_time]
    model = ScriptedChatModel(responses=responses or [], responder=responder).bind_tools(tools)
    return tool_loop(model, tools, handle_tool_errors=handle_tool_errors)


def tool_loop(model: Any, tools: list[Any], *, handle_tool_errors: bool = True) -> Any:
    """The ReAct graph around ``model`` (any runnable over messages, tools already bound)."""

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def should_continue(state: AgentState) -> str:
        last = state["messages"][-1]
        return "tools" if getattr(last, "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=handle_tool_errors))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", should_continue, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


def weather_agent() -> Any:
    """Two LLM calls and one tool call: the benchmark's and most scenarios' agent run."""
    return react_agent(
        [tool_call("get_weather", {"city": "Paris"}, "call_w1"), AIMessage("Sunny in Paris.")]
    )


def weather_responder(messages: list[Any]) -> AIMessage:
    """Asks for the weather of the city in the question, then answers with the tool's output:
    a deterministic function of the prompt, so one graph can serve concurrent requests."""
    question = next(m for m in messages if m.type == "human").content
    city = str(question).rstrip("?").split()[-1]
    if messages[-1].type == "tool":
        return AIMessage(f"It is sunny in {city}.")
    return tool_call("get_weather", {"city": city}, f"call_{city}")
