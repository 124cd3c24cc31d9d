"""Agent decisions recorded as first-class events: retries, fallbacks, routes, guardrails."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, TypedDict
from uuid import uuid4

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy, Send
from trace_checks import assert_valid_tree, by_trace

from llm_audit_langchain import AuditCallbackHandler, AuditEvent, MemoryExporter
from llm_audit_langchain.testing import ScriptedChatModel


def recorded(handler: AuditCallbackHandler, memory: MemoryExporter) -> list[AuditEvent]:
    assert handler.flush(timeout=10), handler.stats()
    return memory.events


def of_type(events: list[AuditEvent], kind: str) -> list[AuditEvent]:
    return sorted((e for e in events if e.event_type == kind), key=lambda e: e.timestamp)


def test_with_retry_attempts_are_agent_retry_events(handler: AuditCallbackHandler,
                                                    memory: MemoryExporter) -> None:
    calls = {"n": 0}

    def flaky(x: int) -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError(f"attempt {calls['n']} failed")
        return x * 2

    runnable = RunnableLambda(flaky).with_retry(stop_after_attempt=4,
                                                wait_exponential_jitter=False)
    assert runnable.invoke(21, config={"callbacks": [handler]}) == 42
    events = recorded(handler, memory)
    assert_valid_tree(events)
    retries = of_type(events, "agent.retry")
    assert [r.data["attempt"] for r in retries] == [2, 3]
    assert [r.error.message for r in retries if r.error] == ["attempt 1 failed", "attempt 2 failed"]
    failed = {e.span_id: e for e in of_type(events, "chain.error")}
    assert [failed[r.data["failed_span_id"]].error.message for r in retries  # type: ignore[union-attr]
            ] == ["attempt 1 failed", "attempt 2 failed"]
    assert all(r.status == "retry" and r.data["source"] == "with_retry" for r in retries)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "batch", "stream"])
def test_fallback_names_primary_error_and_backup(mode: str, handler: AuditCallbackHandler,
                                                 memory: MemoryExporter) -> None:
    primary = ScriptedChatModel(responses=[AIMessage("never")], model_name="primary-model",
                                fail_on={0: ConnectionError("primary is down")})
    backup = ScriptedChatModel(responses=[AIMessage("backup answer")], model_name="backup-model")
    chain = primary.with_fallbacks([backup])
    config: Any = {"callbacks": [handler]}
    if mode == "invoke":
        answer = chain.invoke("hi", config=config)
    elif mode == "ainvoke":
        answer = asyncio.run(chain.ainvoke("hi", config=config))
    elif mode == "batch":
        [answer] = chain.batch(["hi"], config=config)
    else:
        chunks = list(chain.stream("hi", config=config))
        answer = AIMessage("".join(str(c.content) for c in chunks))
    assert answer.content == "backup answer"
    events = recorded(handler, memory)
    assert len(by_trace(events)) == 1, "the fallback's children must stay in its trace"
    root = assert_valid_tree(events)
    assert root.action == "RunnableWithFallbacks" and root.status == "ok"
    [fallback] = of_type(events, "agent.fallback")
    llm_error = of_type(events, "llm.error")[0]
    backup_call = of_type(events, "llm.invoke")[0]
    assert fallback.data["primary"] == llm_error.action
    assert fallback.data["failed_span_id"] == llm_error.span_id
    assert fallback.span_id == backup_call.span_id and backup_call.model == "backup-model"
    assert fallback.error is not None and fallback.error.message == "primary is down"


class Counter(TypedDict):
    value: int


def test_retry_policy_reruns_are_agent_retry_events(handler: AuditCallbackHandler,
                                                    memory: MemoryExporter) -> None:
    attempts = {"n": 0}

    def flaky(state: Counter) -> dict[str, int]:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError(f"service busy ({attempts['n']})")
        return {"value": state["value"] + 1}

    builder = StateGraph(Counter)
    builder.add_node("flaky", flaky, retry_policy=RetryPolicy(
        max_attempts=5, initial_interval=0.001, jitter=False, retry_on=ConnectionError))
    builder.add_edge(START, "flaky")
    builder.add_edge("flaky", END)
    assert builder.compile().invoke({"value": 1}, config={"callbacks": [handler]}) == {"value": 2}
    events = recorded(handler, memory)
    retries = of_type(events, "agent.retry")
    assert [(r.data["attempt"], r.data["source"]) for r in retries] == [
        (2, "retry_policy"), (3, "retry_policy")]
    assert [r.error.message for r in retries if r.error] == ["service busy (1)",
                                                             "service busy (2)"]
    assert all(r.agent == "flaky" for r in retries)
    root = next(e for e in events if e.action == "LangGraph")
    assert root.status == "ok"


def _merge(left: list[str], right: list[str]) -> list[str]:
    return left + right


class FanOut(TypedDict):
    items: list[str]
    done: Annotated[list[str], _merge]


def _plan(state: FanOut) -> Command[Literal["fan_out"]]:
    return Command(goto="fan_out", update={"items": ["a", "b", "c"]})


def _fan_out(state: FanOut) -> dict[str, Any]:
    return {}


def _dispatch(state: FanOut) -> list[Send]:
    return [Send("work", {"items": [item], "done": []}) for item in state["items"]]


def _work(state: FanOut) -> dict[str, Any]:
    return {"done": state["items"]}


def test_command_goto_and_send_fan_out_are_routes(handler: AuditCallbackHandler,
                                                  memory: MemoryExporter) -> None:
    builder = StateGraph(FanOut)
    builder.add_node("plan", _plan)
    builder.add_node("fan_out", _fan_out)
    builder.add_node("work", _work)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("fan_out", _dispatch, ["work"])
    builder.add_edge("work", END)
    result = builder.compile().invoke({"items": [], "done": []}, config={"callbacks": [handler]})
    assert sorted(result["done"]) == ["a", "b", "c"]
    events = recorded(handler, memory)
    assert_valid_tree(events)
    routes = of_type(events, "agent.route")
    command = next(r for r in routes if r.data.get("via") == "command")
    assert (command.data["from_node"], command.data["destination"]) == ("plan", "fan_out")
    sends = next(r for r in routes if r.data["from_node"] == "fan_out")
    assert sends.data["destination"] == [{"send": "work"}] * 3
    assert len([e for e in events if e.event_type == "chain.end" and e.action == "work"]) == 3


def test_duplicate_error_callbacks_are_emitted_once(handler: AuditCallbackHandler,
                                                    memory: MemoryExporter) -> None:
    run_id = uuid4()
    handler.on_chat_model_start({"name": "ChatBedrock"}, [[]], run_id=run_id)
    error = RuntimeError("ThrottlingException")
    handler.on_llm_error(error, run_id=run_id)
    handler.on_llm_error(error, run_id=run_id)  # ChatBedrock reports one failure twice
    events = recorded(handler, memory)
    assert len(of_type(events, "llm.error")) == 1
    assert handler.stats()["duplicate_callbacks"] == 1


def test_guardrail_intervention_is_its_own_event(handler: AuditCallbackHandler,
                                                 memory: MemoryExporter) -> None:
    from langchain_core.outputs import ChatGeneration, LLMResult

    run_id = uuid4()
    handler.on_chat_model_start({"name": "ChatBedrock"}, [[]], run_id=run_id)
    handler.on_llm_error(ValueError("blocked by guardrail"), run_id=run_id,
                         reason="GUARDRAIL_INTERVENED")
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=AIMessage("sorry"))]]),
                       run_id=run_id)
    events = recorded(handler, memory)
    [guardrail] = of_type(events, "llm.guardrail")
    [call] = of_type(events, "llm.invoke")
    assert guardrail.span_id == call.span_id
    assert guardrail.data["reason"] == "GUARDRAIL_INTERVENED"
    assert guardrail.error is not None and guardrail.error.message == "blocked by guardrail"
    assert not of_type(events, "llm.error")


def test_cost_is_rolled_up_per_trace_node_model_thread_and_user(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    from graphs import weather_agent
    from langchain_core.messages import HumanMessage

    from llm_audit_langchain.enrich.pricing import set_price_overrides

    set_price_overrides({"scripted-model": {"input": 2.0, "output": 4.0}})
    try:
        config: Any = {"callbacks": [handler], "configurable": {"thread_id": "t-9"},
                       "metadata": {"user_id": "u-7"}}
        for _ in range(2):
            weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                                   config=config)
        events = recorded(handler, memory)
    finally:
        set_price_overrides(None)
    for trace in by_trace(events).values():
        calls = [e for e in trace if e.event_type == "llm.invoke"]
        [root] = [e for e in trace if e.data.get("trace_root")]
        rollup = root.data["cost_rollup"]
        expected = sum(c.cost_usd or 0 for c in calls)
        assert rollup["cost_usd"] == pytest.approx(expected) and expected > 0
        assert rollup["tokens_input"] == sum(c.tokens_input or 0 for c in calls)
        assert rollup["by_node"]["agent"]["calls"] == 2
        assert rollup["by_model"]["scripted-model"]["cost_usd"] == pytest.approx(expected)
        assert (rollup["thread_id"], rollup["user_id"]) == ("t-9", "u-7")
    live = handler.costs.live()
    total = sum(e.cost_usd or 0 for e in events if e.event_type == "llm.invoke")
    assert live["by_thread"]["t-9"]["cost_usd"] == pytest.approx(total)
    assert live["by_user"]["u-7"]["calls"] == 4
