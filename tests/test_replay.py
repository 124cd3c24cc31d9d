"""Record → replay: real LangGraph graphs recorded to JSONL by the real handler, then re-run
offline from the JSONL alone with the replay chat model and replay tools."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import AgentState, tool_call
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter, TraceNotFoundError
from llm_audit_langchain.events import ErrorDetail
from llm_audit_langchain.replay import (
    ReplayDivergence,
    ReplayedToolError,
    ReplayFixture,
    ScanStats,
    rebuild_exception,
    replay_trace,
    scan,
)
from llm_audit_langchain.testing import ScriptedChatModel


class StationMissingError(Exception):
    """A user-defined exception: replay must rebuild this very class."""


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    if city == "Atlantis":
        raise StationMissingError(f"no station in {city}")
    return f"sunny, 21C in {city}"


@tool
def get_time(city: str) -> str:
    """Local time in a city."""
    return f"12:00 in {city}"


@tool("get_weather")
def fixed_get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"fixed: sunny in {city}"


TOOLS = [get_weather, get_time]


def has_tool_calls(state: AgentState) -> str:
    return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END


def build_graph(model: BaseChatModel, tools: list[BaseTool], *, route: Any = has_tool_calls,
                system: str | None = None, tools_node: Any = None) -> Any:
    """agent ⇄ tools, with a routing function; the pieces a changed graph changes."""
    bound = model.bind_tools(tools)

    def agent(state: AgentState) -> dict[str, Any]:
        prompt = list(state["messages"])
        if system is not None:
            prompt = [SystemMessage(system), *prompt]
        return {"messages": [bound.invoke(prompt)]}

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools_node or ToolNode(tools, handle_tool_errors=False))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


def record(tmp_path: Path, responses: list[AIMessage], question: str, **model: Any) -> str:
    """Run the graph once with the real handler writing JSONL; returns the trace id."""
    handler = AuditCallbackHandler(exporters=[JsonlExporter(tmp_path)], config=fast_config())
    graph = build_graph(ScriptedChatModel(responses=responses, **model), TOOLS)
    with contextlib.suppress(Exception):  # the failing runs raise: that is what is recorded
        graph.invoke({"messages": [HumanMessage(question)]}, config={"callbacks": [handler]})
    assert handler.flush(timeout=10)
    handler.shutdown(timeout=5)
    roots = [e for e in scan(tmp_path) if e.data.get("trace_root")]
    return max(roots, key=lambda e: e.timestamp).trace_id


@pytest.fixture
def failed_run(tmp_path: Path) -> str:
    """A run where the tool fails and the graph raises (handle_tool_errors=False)."""
    return record(tmp_path, [tool_call("get_weather", {"city": "Atlantis"}, "call_a"),
                             AIMessage("never reached")],
                  "Weather in Atlantis? Mail me at bob@example.com")


@pytest.fixture
def routed_run(tmp_path: Path) -> str:
    """A run with routing decisions: agent → tools → agent → END."""
    return record(tmp_path, [tool_call("get_weather", {"city": "Paris"}, "call_p"),
                             AIMessage("Sunny in Paris.")], "Weather in Paris?")


def test_replay_reproduces_the_recorded_tool_failure(tmp_path: Path, failed_run: str) -> None:
    with replay_trace(tmp_path, failed_run) as replay:
        assert replay.expected_error is not None
        assert replay.expected_error.type == "test_replay.StationMissingError"
        # The tool as it is now would succeed: the replay must not run it.
        graph = build_graph(replay.chat_model, replay.tools([fixed_get_weather, get_time]))
        result = replay.run(graph)
    assert type(result.error) is StationMissingError
    assert str(result.error) == "no station in Atlantis"
    assert "[REDACTED_EMAIL]" in replay.inputs["messages"][0].content  # replayed as recorded
    routes = [e.data["destination"] for e in result.events if e.event_type == "agent.route"]
    assert routes == ["tools"]
    failed = [e for e in result.events if e.event_type == "tool.error"]
    assert [(e.action, e.error.type, e.error.message) for e in failed if e.error] == [
        ("get_weather", "test_replay.StationMissingError", "no station in Atlantis")]


def test_replay_reaches_the_same_decisions_and_answer(tmp_path: Path, routed_run: str) -> None:
    recorded = ReplayFixture.full_trace(tmp_path, routed_run)
    with replay_trace(tmp_path, routed_run) as replay:
        graph = build_graph(replay.chat_model, replay.tools(TOOLS))
        result = replay.run(graph)
    assert result.error is None
    assert result.output["messages"][-1].content == "Sunny in Paris."
    tool_message = result.output["messages"][2]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.content == "sunny, 21C in Paris" and tool_message.tool_call_id == "call_p"

    def decisions(events: list[Any]) -> list[Any]:
        return [(str(e.event_type), e.data.get("destination") or e.data.get("calls"))
                for e in sorted(events, key=lambda e: e.timestamp)
                if e.event_type in ("agent.route", "tool.selection")]

    assert decisions(result.events) == decisions(recorded) == [
        ("tool.selection", [{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_p"}]),
        ("agent.route", "tools"),
        ("agent.route", "__end__"),
    ]

    def tokens(events: list[Any]) -> list[Any]:
        return [(e.model, e.tokens_input, e.tokens_output) for e in
                sorted(events, key=lambda e: e.timestamp) if e.event_type == "llm.invoke"]

    assert tokens(result.events) == tokens(recorded)


def test_changed_routing_function_is_a_route_divergence(tmp_path: Path, routed_run: str) -> None:
    with replay_trace(tmp_path, routed_run) as replay:
        graph = build_graph(replay.chat_model, replay.tools(TOOLS), route=lambda state: END)
        with pytest.raises(ReplayDivergence) as caught:
            replay.run(graph)
    by_kind = {d.kind: d for d in caught.value.differences}
    route = by_kind["route"]
    assert route.where == "route #1 from node 'agent' (step 1)"
    assert (route.expected, route.actual) == ("tools", "__end__")
    assert (by_kind["llm_call_count"].expected, by_kind["llm_call_count"].actual) == (2, 1)
    assert "route #1 from node 'agent' (step 1): expected 'tools', got '__end__'" in str(
        caught.value)


def test_tool_called_with_other_args_is_a_divergence(tmp_path: Path, routed_run: str) -> None:
    with replay_trace(tmp_path, routed_run) as replay:
        tools = replay.tools(TOOLS)

        def lowercase_tools(state: AgentState) -> dict[str, Any]:
            calls = state["messages"][-1].tool_calls  # type: ignore[union-attr]
            by_name = {t.name: t for t in tools}
            return {"messages": [
                ToolMessage(by_name[c["name"]].invoke({"city": c["args"]["city"].lower()}),
                            tool_call_id=c["id"]) for c in calls]}

        graph = build_graph(replay.chat_model, tools, tools_node=lowercase_tools)
        with pytest.raises(ReplayDivergence) as caught:
            replay.run(graph)
    [difference] = caught.value.differences
    assert difference.kind == "tool_call"
    assert difference.where == "tool call #1 of 'get_weather' args"
    assert (difference.expected, difference.actual) == ({"city": "Paris"}, {"city": "paris"})


def test_changed_prompt_is_a_divergence_at_that_llm_call(tmp_path: Path,
                                                         routed_run: str) -> None:
    with replay_trace(tmp_path, routed_run) as replay:
        graph = build_graph(replay.chat_model, replay.tools(TOOLS), system="Be brief.")
        with pytest.raises(ReplayDivergence) as caught:
            replay.run(graph)
    [difference] = caught.value.differences
    assert difference.kind == "prompt"
    assert difference.where == "LLM call #1 (node 'agent', step 1) prompt messages"
    assert (difference.expected, difference.actual) == (["human"], ["system", "human"])


def test_fixed_tool_run_live_against_the_recording(tmp_path: Path, failed_run: str) -> None:
    """Validating a fix: the fixed tool runs for real, everything else is replayed."""
    with replay_trace(tmp_path, failed_run) as replay:
        graph = build_graph(replay.chat_model,
                            replay.tools([fixed_get_weather, get_time], live={"get_weather"}))
        result = replay.run(graph, check=False)
    # The tool no longer fails, so the graph asks the model again: the recording ends there.
    assert isinstance(result.error, ReplayDivergence)
    [difference] = result.error.differences
    assert (difference.kind, difference.where) == ("llm_call_count", "LLM call #2")
    tool_results = [e for e in result.events if e.event_type == "tool.result"]
    assert "fixed: sunny in Atlantis" in str(tool_results[0].data["output"])


def test_recorded_llm_error_is_raised_again(tmp_path: Path) -> None:
    trace_id = record(tmp_path, [AIMessage("unused")], "hello",
                      fail_on={0: TimeoutError("provider timed out")})
    with replay_trace(tmp_path, trace_id) as replay:
        result = replay.run(build_graph(replay.chat_model, replay.tools(TOOLS)))
    assert type(result.error) is TimeoutError and str(result.error) == "provider timed out"


def test_fixture_reads_errors_results_and_traces(tmp_path: Path, failed_run: str) -> None:
    routed = record(tmp_path, [tool_call("get_weather", {"city": "Paris"}, "call_p"),
                               AIMessage("Sunny in Paris.")], "Weather in Paris?")
    [log] = tmp_path.glob("audit-*.jsonl")
    with log.open("a") as handle:
        handle.write('{"truncated": \n')
        handle.write('{"event_type": "llm.invoke", "trace_id": "nothex"}\n')
    stats = ScanStats()
    errors = ReplayFixture.errors_from_jsonl(tmp_path, action="get_weather", stats=stats)
    assert stats.corrupt == 2
    assert [(e["type"], e["message"], e["input_snapshot"], e["trace_id"]) for e in errors] == [
        ("test_replay.StationMissingError", "no station in Atlantis", {"city": "Atlantis"},
         failed_run)]
    assert "Traceback" in errors[0]["traceback"] and errors[0]["environment"]["python"]
    assert len(ReplayFixture.errors_from_jsonl(log)) == 3  # tool, its node, the graph
    result = ReplayFixture.successful_result(tmp_path, "get_weather")
    assert result is not None and result["trace_id"] == routed
    assert result["input"] == {"city": "Paris"}
    assert result["output"]["content"] == "sunny, 21C in Paris"
    assert ReplayFixture.successful_result(tmp_path, "no_such_tool") is None
    trace = ReplayFixture.full_trace(tmp_path, routed[:10])
    assert {e.trace_id for e in trace} == {routed}
    assert [e.timestamp for e in trace] == sorted(e.timestamp for e in trace)
    with pytest.raises(TraceNotFoundError, match="no events for trace 'f00d'"):
        ReplayFixture.full_trace(tmp_path, "f00d")


@pytest.mark.parametrize(("recorded", "expected_class"), [
    ("ValueError", ValueError),
    ("KeyError", KeyError),
    ("test_replay.StationMissingError", StationMissingError),
])
def test_rebuild_exception_finds_the_recorded_class(recorded: str, expected_class: type) -> None:
    message = "'city'" if recorded == "KeyError" else "boom"
    exc = rebuild_exception(ErrorDetail(type=recorded, message=message))
    assert type(exc) is expected_class and str(exc) == message


def test_rebuild_exception_stands_in_for_classes_it_cannot_load() -> None:
    exc = rebuild_exception(ErrorDetail(type="botocore.exceptions.ReadTimeoutError",
                                        message="Read timeout on endpoint"))
    assert isinstance(exc, ReplayedToolError)
    assert type(exc).__name__ == "ReadTimeoutError"
    assert type(exc).__module__ == "botocore.exceptions"
    assert repr(exc) == "ReadTimeoutError('Read timeout on endpoint')"
    assert exc.recorded_type == "botocore.exceptions.ReadTimeoutError"
    not_an_exception = rebuild_exception(ErrorDetail(type="print", message="x"))
    assert isinstance(not_an_exception, ReplayedToolError)


def test_unknown_trace_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(TraceNotFoundError):
        replay_trace(tmp_path, "0" * 32)
    with pytest.raises(FileNotFoundError):
        replay_trace(tmp_path / "missing", "0" * 32)
