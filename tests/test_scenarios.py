"""End-to-end scenarios: real LangGraph graphs, scripted chat models, the real handler."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from graphs import react_agent, tool_call, weather_agent, weather_responder
from langchain_core.messages import AIMessage, HumanMessage
from trace_checks import assert_valid_tree, by_trace, type_counts

from llm_audit_langchain import AuditCallbackHandler, AuditEvent, MemoryExporter, TraceContext

CITIES = ["Paris", "Lima", "Oslo", "Quito", "Cairo", "Seoul", "Perth", "Dakar", "Sofia", "Turin",
          "Hanoi", "Porto", "Bern", "Riga", "Baku", "Doha", "Kyiv", "Lagos", "Minsk", "Accra"]


def ask(city: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(f"What is the weather in {city}?")]}


def city_agent(city: str) -> Any:
    return react_agent([tool_call("get_weather", {"city": city}, f"call_{city}"),
                        AIMessage(f"It is sunny in {city}.")])


def recorded(handler: AuditCallbackHandler, memory: MemoryExporter) -> list[AuditEvent]:
    assert handler.flush(timeout=10), handler.stats()
    return memory.events


def assert_weather_trace(events: list[AuditEvent], result: dict[str, Any], city: str) -> None:
    """The trace of one weather_agent/city_agent run, checked against what the graph returned."""
    root = assert_valid_tree(events)
    assert root.action == "LangGraph" and root.status == "ok" and root.parent_span_id is None
    counts = type_counts(events)
    assert counts == {"chain.end": 4, "llm.invoke": 2, "tool.selection": 1, "tool.call": 1,
                      "tool.result": 1, "agent.route": 2, "agent.decision": 2,
                      "prompt.efficiency": 2}
    llm_events = sorted((e for e in events if e.event_type == "llm.invoke"),
                        key=lambda e: e.timestamp)
    answers = [m for m in result["messages"] if isinstance(m, AIMessage)]
    assert [(e.tokens_input, e.tokens_output) for e in llm_events] == [
        (m.usage_metadata["input_tokens"], m.usage_metadata["output_tokens"]) for m in answers
    ]
    assert all(e.model == "scripted-model" for e in llm_events)
    selection = next(e for e in events if e.event_type == "tool.selection")
    tool_run = next(e for e in events if e.event_type == "tool.result")
    assert selection.data["calls"] == [
        {"name": "get_weather", "args": {"city": city}, "id": tool_run.data["tool_call_id"]}
    ]
    assert tool_run.data["selected_by_span_id"] == selection.span_id == llm_events[0].span_id
    assert tool_run.data["input"] == {"city": city}
    assert city in str(tool_run.data["output"])
    decisions = sorted((e for e in events if e.event_type == "agent.decision"),
                       key=lambda e: e.timestamp)
    assert [(d.data["decision"], d.data["tools"]) for d in decisions] == [
        ("call_tools", ["get_weather"]), ("respond", [])]
    assert [d.span_id for d in decisions] == [e.span_id for e in llm_events]
    efficiency = sorted((e for e in events if e.event_type == "prompt.efficiency"),
                        key=lambda e: e.timestamp)
    assert [e.data["input_tokens"] for e in efficiency] == [e.tokens_input for e in llm_events]
    assert all(sum(e.data["prompt_tokens_by_role"].values()) in
               range(e.data["input_tokens"] - 2, e.data["input_tokens"] + 3) for e in efficiency)
    routes = [e.data["destination"] for e in sorted(
        (e for e in events if e.event_type == "agent.route"), key=lambda e: e.timestamp)]
    assert routes == ["tools", "__end__"]
    nodes = [e.action for e in sorted(events, key=lambda e: e.start_time or e.timestamp)
             if e.event_type == "chain.end" and e is not root]
    assert nodes == ["agent", "tools", "agent"]


def test_invoke_records_one_complete_trace(handler: AuditCallbackHandler,
                                           memory: MemoryExporter) -> None:
    result = weather_agent().invoke(ask("Paris"), config={"callbacks": [handler]})
    events = recorded(handler, memory)
    assert_weather_trace(events, result, "Paris")
    stats = handler.stats()
    assert stats["active_runs"] == 0 and stats["internal_errors"] == 0
    assert stats["enqueued"] == stats["exported"] == len(events)


async def test_twenty_concurrent_ainvokes_do_not_cross_talk(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    results = await asyncio.gather(
        *(city_agent(c).ainvoke(ask(c), config={"callbacks": [handler]}) for c in CITIES)
    )
    traces = by_trace(recorded(handler, memory))
    assert len(traces) == len(CITIES)
    for events in traces.values():
        root = next(e for e in events if e.parent_span_id is None)
        city = root.data["inputs"]["messages"][0]["content"].split()[-1].rstrip("?")
        assert_weather_trace(events, results[CITIES.index(city)], city)
        for llm in (e for e in events if e.event_type == "llm.invoke"):
            assert city in llm.data["messages"][0]["content"]


def test_stream_records_the_same_trace_and_streaming_facts(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    graph = weather_agent()
    chunks = list(graph.stream(ask("Paris"), config={"callbacks": [handler]},
                               stream_mode=["updates", "messages", "values"]))
    assert chunks
    result = chunks[-1][1] if chunks[-1][0] == "values" else graph.invoke(ask("Paris"))
    events = recorded(handler, memory)
    assert_weather_trace(events, result, "Paris")
    final_answer = next(e for e in events if e.event_type == "llm.invoke" and not
                        e.data["output"].get("tool_calls"))
    assert final_answer.data["streamed"] is True
    assert final_answer.data["chunks"] >= 3  # "Sunny", " in", " Paris."
    assert 0 <= final_answer.data["time_to_first_token_ms"] <= final_answer.latency_ms


def test_batch_gives_one_trace_per_input(handler: AuditCallbackHandler,
                                         memory: MemoryExporter) -> None:
    cities = CITIES[:5]
    graph = react_agent(responder=weather_responder)
    results = graph.batch([ask(c) for c in cities], config={"callbacks": [handler]})
    traces = by_trace(recorded(handler, memory))
    assert len(traces) == len(cities)
    for events in traces.values():
        city = next(e for e in events if e.event_type == "tool.result").data["input"]["city"]
        assert_weather_trace(events, results[cities.index(city)], city)


async def test_abatch_and_astream_on_one_shared_graph(handler: AuditCallbackHandler,
                                                      memory: MemoryExporter) -> None:
    graph = react_agent(responder=weather_responder)
    results = await graph.abatch([ask(c) for c in CITIES[:4]], config={"callbacks": [handler]})
    streamed = [chunk async for chunk in graph.astream(ask("Lagos"), stream_mode="values",
                                                       config={"callbacks": [handler]})]
    traces = by_trace(recorded(handler, memory))
    assert len(traces) == 5
    expected = {**{c: r for c, r in zip(CITIES[:4], results)}, "Lagos": streamed[-1]}
    for events in traces.values():
        city = next(e for e in events if e.event_type == "tool.result").data["input"]["city"]
        assert_weather_trace(events, expected[city], city)


def test_invokes_from_many_threads_stay_separate(handler: AuditCallbackHandler,
                                                 memory: MemoryExporter) -> None:
    results: dict[str, Any] = {}

    def run(city: str) -> None:
        results[city] = city_agent(city).invoke(ask(city), config={"callbacks": [handler]})

    threads = [threading.Thread(target=run, args=(c,)) for c in CITIES[:8]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    traces = by_trace(recorded(handler, memory))
    assert len(traces) == 8
    for events in traces.values():
        city = next(e for e in events if e.event_type == "tool.result").data["input"]["city"]
        assert_weather_trace(events, results[city], city)


def test_incoming_traceparent_is_joined(handler: AuditCallbackHandler,
                                        memory: MemoryExporter) -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with TraceContext.from_traceparent(header):
        weather_agent().invoke(ask("Paris"), config={"callbacks": [handler]})
    weather_agent().invoke(ask("Paris"), config={"callbacks": [handler]})  # outside: new trace
    traces = by_trace(recorded(handler, memory))
    assert len(traces) == 2
    joined = traces["0af7651916cd43dd8448eb211c80319c"]
    root = next(e for e in joined if e.action == "LangGraph")
    assert root.parent_span_id == "b7ad6b7169203331"


def test_malformed_traceparent_starts_a_new_trace_and_is_counted(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    before = handler.stats()["malformed_traceparent"]
    with TraceContext.from_traceparent("00-not-a-trace-01") as ctx:
        result = weather_agent().invoke(ask("Paris"), config={"callbacks": [handler]})
    events = recorded(handler, memory)
    assert {e.trace_id for e in events} == {ctx.trace_id}
    assert_weather_trace(events, result, "Paris")
    assert handler.stats()["malformed_traceparent"] == before + 1


def test_graph_without_handler_and_with_it_give_the_same_result(
    handler: AuditCallbackHandler,
) -> None:
    bare = weather_agent().invoke(ask("Paris"))
    audited = weather_agent().invoke(ask("Paris"), config={"callbacks": [handler]})
    assert [m.content for m in bare["messages"]] == [m.content for m in audited["messages"]]


@pytest.mark.parametrize("kind", ["invoke", "ainvoke"])
async def test_unhandled_tool_error_reaches_caller_unchanged_and_is_recorded(
    kind: str, handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    def failing() -> Any:
        return react_agent([tool_call("get_weather", {"city": "Atlantis"}, "call_a"),
                            AIMessage("unreachable")], handle_tool_errors=False)

    async def run(config: dict[str, Any] | None) -> BaseException:
        with pytest.raises(ValueError) as caught:
            if kind == "invoke":
                failing().invoke(ask("Atlantis"), config=config)
            else:
                await failing().ainvoke(ask("Atlantis"), config=config)
        return caught.value

    bare = await run(None)
    audited = await run({"callbacks": [handler]})
    assert type(audited) is type(bare) and str(audited) == str(bare) == "unknown city: Atlantis"
    events = recorded(handler, memory)
    assert_valid_tree(events)
    tool_error = next(e for e in events if e.event_type == "tool.error")
    assert tool_error.status == "error"
    assert tool_error.error is not None
    assert tool_error.error.type == "ValueError"
    assert tool_error.error.message == "unknown city: Atlantis"
    assert "get_weather" in (tool_error.error.traceback or "")
    assert tool_error.error.input_snapshot == {"city": "Atlantis"}
    env = tool_error.error.environment or {}
    assert env["python"].count(".") == 2 and env["packages"]["langgraph"]
    errors = {e.action for e in events if e.event_type == "chain.error"}
    assert errors == {"tools", "LangGraph"}


def test_handled_tool_error_is_recorded_and_the_graph_completes(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    graph = react_agent([tool_call("get_weather", {"city": "Atlantis"}, "call_a"),
                         AIMessage("Atlantis has no weather station.")])
    result = graph.invoke(ask("Atlantis"), config={"callbacks": [handler]})
    assert result["messages"][-1].content == "Atlantis has no weather station."
    events = recorded(handler, memory)
    root = assert_valid_tree(events)
    assert root.status == "ok"
    tool_error = next(e for e in events if e.event_type == "tool.error")
    assert tool_error.data["tool_call_id"] == "call_a"
    assert tool_error.error is not None and tool_error.error.type == "ValueError"
    assert not [e for e in events if e.event_type == "chain.error"]


def test_interrupt_is_control_flow_not_an_error(handler: AuditCallbackHandler,
                                                memory: MemoryExporter) -> None:
    from typing import TypedDict

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    class State(TypedDict):
        answer: str

    def ask_human(state: State) -> dict[str, str]:
        return {"answer": interrupt("approve?")}

    builder = StateGraph(State)
    builder.add_node("ask_human", ask_human)
    builder.add_edge(START, "ask_human")
    builder.add_edge("ask_human", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "t-1"}}
    graph.invoke({"answer": ""}, config=config)
    resumed = graph.invoke(Command(resume="yes"), config=config)
    assert resumed == {"answer": "yes"}
    events = recorded(handler, memory)
    assert not [e for e in events if e.status == "error"]
    interrupt_event, resume_event = sorted(
        (e for e in events if e.event_type == "agent.interrupt"), key=lambda e: e.timestamp)
    assert resume_event.data["phase"] == "resume" and resume_event.data["resume"] == "yes"
    assert interrupt_event.data["phase"] == "interrupt"
    assert interrupt_event.action == "ask_human"
    assert "approve?" in str(interrupt_event.data["interrupts"])
    assert interrupt_event.data["thread_id"] == "t-1"
    assert len(by_trace(events)) == 2  # the first run and the resume


def test_legacy_on_retry_becomes_agent_retry(handler: AuditCallbackHandler,
                                             memory: MemoryExporter,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import tenacity
    from langchain_core.language_models import llms
    from langchain_core.language_models.llms import LLM, create_base_retry_decorator

    # the real retry decorator, without its 4-10 s exponential waits
    monkeypatch.setattr(llms, "wait_exponential", lambda **_: tenacity.wait_none())

    class FlakyLLM(LLM):
        failures: int = 2

        @property
        def _llm_type(self) -> str:
            return "flaky"

        def _call(self, prompt: str, stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> str:
            retry = create_base_retry_decorator([ConnectionError], max_retries=4,
                                                run_manager=run_manager)

            @retry
            def attempt() -> str:
                if self.failures:
                    self.failures -= 1
                    raise ConnectionError("provider busy")
                return "ok"

            return attempt()

    assert FlakyLLM().invoke("hi", config={"callbacks": [handler]}) == "ok"
    events = recorded(handler, memory)
    retries = [e for e in events if e.event_type == "agent.retry"]
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert all(e.status == "retry" and e.error and e.error.type == "ConnectionError"
               for e in retries)
    [llm] = [e for e in events if e.event_type == "llm.invoke"]
    assert {e.span_id for e in retries} == {llm.span_id}


def test_custom_events_are_recorded_in_their_run(handler: AuditCallbackHandler,
                                                 memory: MemoryExporter) -> None:
    from langchain_core.callbacks import dispatch_custom_event
    from langchain_core.runnables import RunnableLambda

    def step(x: int) -> int:
        dispatch_custom_event("cache.hit", {"key": "k1"})
        dispatch_custom_event("my_metric", {"value": x})
        return x + 1

    assert RunnableLambda(step).invoke(1, config={"callbacks": [handler]}) == 2
    events = recorded(handler, memory)
    [run] = [e for e in events if e.event_type == "chain.end"]
    hit = next(e for e in events if e.event_type == "cache.hit")
    custom = next(e for e in events if e.event_type == "custom")
    assert custom.action == "my_metric" and custom.data["payload"] == {"value": 1}
    assert hit.span_id == custom.span_id == run.span_id


def test_an_end_without_a_start_still_becomes_an_event(handler: AuditCallbackHandler,
                                                       memory: MemoryExporter) -> None:
    from uuid import uuid4

    handler.on_tool_end("result", run_id=uuid4(), name="lost_tool")
    events = recorded(handler, memory)
    [event] = events
    assert event.event_type == "tool.result" and event.action == "lost_tool"
    assert event.data["start_unknown"] is True and event.latency_ms is None
    assert handler.stats()["orphan_ends"] == 1


def test_a_broken_callback_input_never_reaches_the_caller(handler: AuditCallbackHandler) -> None:
    from uuid import uuid4

    handler.on_llm_end(object(), run_id=uuid4())  # type: ignore[arg-type]
    assert handler.stats()["internal_errors"] == 1


def test_disabled_handler_records_nothing(memory: MemoryExporter) -> None:
    from conftest import fast_config

    off = AuditCallbackHandler(exporters=[memory], config=fast_config(enabled=False))
    weather_agent().invoke(ask("Paris"), config={"callbacks": [off]})
    assert off.flush(5) and memory.events == []
    off.shutdown(5)


def test_llm_cache_hit_is_recorded_and_not_billed(handler: AuditCallbackHandler,
                                                  memory: MemoryExporter) -> None:
    from langchain_core.caches import InMemoryCache

    from llm_audit_langchain.enrich.pricing import set_price_overrides
    from llm_audit_langchain.testing import ScriptedChatModel

    set_price_overrides({"cached-model": {"input": 1.0, "output": 2.0}})
    try:
        model = ScriptedChatModel(responses=[AIMessage("forty-two")], model_name="cached-model",
                                  cache=InMemoryCache())
        first = model.invoke("the answer?", config={"callbacks": [handler]})
        second = model.invoke("the answer?", config={"callbacks": [handler]})
        assert first.content == second.content == "forty-two"
        events = recorded(handler, memory)
    finally:
        set_price_overrides(None)
    miss, hit = sorted((e for e in events if e.event_type == "llm.invoke"),
                       key=lambda e: e.timestamp)
    assert miss.tokens_input == 2 and miss.tokens_output == 1  # "the answer?" -> "forty-two"
    assert miss.cost_usd == pytest.approx((2 * 1.0 + 1 * 2.0) / 1e6)
    assert "cache_hit" not in miss.data
    assert hit.data["cache_hit"] is True
    assert (hit.tokens_input, hit.tokens_output, hit.cost_usd) == (0, 0, 0.0)
    [cache_event] = [e for e in events if e.event_type == "cache.hit"]
    assert cache_event.span_id == hit.span_id


async def test_ainvoke_callbacks_run_on_the_loop_thread_without_executor_hop(
    memory: MemoryExporter,
) -> None:
    # run_inline: under ainvoke LangChain would otherwise hop every sync callback to the loop's
    # executor (~160 µs each, DESIGN.md §5)
    from conftest import fast_config

    threads: set[int] = set()

    class Watching(AuditCallbackHandler):
        def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
            threads.add(threading.get_ident())
            super().on_chain_start(*args, **kwargs)

    handler = Watching(exporters=[memory], config=fast_config())
    await weather_agent().ainvoke(ask("Paris"), config={"callbacks": [handler]})
    assert threads == {threading.get_ident()}
    assert handler.flush(10) and memory.events
    handler.shutdown(5)


def test_a_run_id_the_caller_chose_as_a_string_is_recorded(handler: AuditCallbackHandler,
                                                           memory: MemoryExporter) -> None:
    """LangChain passes ``config["run_id"]`` through as given; a string must not cost the run."""
    from langchain_core.runnables import RunnableLambda

    inner = RunnableLambda(lambda x: x + 1, name="inner")
    outer = RunnableLambda(lambda x: inner.invoke(x), name="outer")  # noqa: PLW0108
    assert outer.invoke(1, config={"callbacks": [handler], "run_id": "order-42"}) == 2
    events = recorded(handler, memory)
    assert {e.action: e.run_id for e in events}["outer"] == "order-42"
    assert len({e.trace_id for e in events}) == 1 and len(events) == 2
    assert handler.stats()["internal_errors"] == 0 and handler.stats()["active_runs"] == 0
