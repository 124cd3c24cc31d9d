"""Tail sampling: failing traces always kept whole, normal traffic at the configured rate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from graphs import react_agent, tool_call, weather_responder
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableLambda

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    AuditEvent,
    AuditEventType,
    MemoryExporter,
    SamplingPolicy,
    TraceContext,
)
from llm_audit_langchain.context import new_trace_id
from llm_audit_langchain.errors import ConfigError
from llm_audit_langchain.pipeline.sampling import trace_fraction


def audited(policy: SamplingPolicy, memory: MemoryExporter, **config: Any) -> AuditCallbackHandler:
    return AuditCallbackHandler(exporters=[memory], config=AuditConfig(
        flush_interval_ms=20, sampling=policy, **config))


def nested_chain(fail: bool) -> Any:
    """A three-run trace (outer → inner → leaf); the leaf fails when asked."""
    def leaf(x: int) -> int:
        if fail:
            raise ValueError("leaf failed")
        return x + 1

    inner = RunnableLambda(lambda x: RunnableLambda(leaf).invoke(x), name="inner")
    return RunnableLambda(lambda x: inner.invoke(x), name="outer")  # noqa: PLW0108


def run_many(handler: AuditCallbackHandler, n: int, fail_every: int) -> set[int]:
    """Run ``n`` traces, every ``fail_every``-th failing; return the failing indices."""
    failing = set()
    for i in range(n):
        fail = fail_every > 0 and i % fail_every == 0
        try:
            nested_chain(fail).invoke(i, config={"callbacks": [handler]})
        except ValueError:
            failing.add(i)
    return failing


def traces(events: Sequence[AuditEvent]) -> dict[str, list[AuditEvent]]:
    out: dict[str, list[AuditEvent]] = {}
    for event in events:
        out.setdefault(event.trace_id, []).append(event)
    return out


def test_errors_always_kept_whole_and_successes_near_the_rate() -> None:
    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=0.25), memory)
    n = 2_000
    failing = run_many(handler, n, fail_every=10)
    assert handler.flush(30)
    kept = traces(memory.events)
    failed_traces = [t for t in kept.values() if any(e.status == "error" for e in t)]
    ok_traces = [t for t in kept.values() if all(e.status == "ok" for e in t)]
    assert len(failed_traces) == len(failing) == 200  # 100 % of failing traces
    for trace in kept.values():  # no partial trace: every kept trace has its 3 spans
        assert sorted(e.action for e in trace) == ["inner", "leaf", "outer"]
    # 1,800 successes at 25 %: binomial sd ≈ 18, so ±4 sd is 378..522
    assert 378 <= len(ok_traces) <= 522, len(ok_traces)
    stats = handler.stats()
    assert stats["dropped"]["sampled_out"] == 3 * (1_800 - len(ok_traces))
    assert stats["enqueued"] == stats["exported"] + sum(stats["dropped"].values())
    handler.shutdown(5)


def test_decisions_are_a_function_of_the_trace_id() -> None:
    policy = SamplingPolicy(success_rate=0.5)
    ids = [new_trace_id() for _ in range(200)]
    kept = [trace_fraction(t) < 0.5 for t in ids]
    assert kept == [trace_fraction(t) < 0.5 for t in ids]  # deterministic
    assert 60 < sum(kept) < 140
    assert policy.head_sampled(ids[0]) == (trace_fraction(ids[0]) < policy.trace_rate)


def test_debug_keeps_everything() -> None:
    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=0.0, debug=True), memory)
    run_many(handler, 50, fail_every=0)
    assert handler.flush(10)
    assert len(traces(memory.events)) == 50
    handler.shutdown(5)


def test_slow_retried_and_costly_traces_are_kept() -> None:
    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=0.0, slow_threshold_ms=0.0), memory)
    run_many(handler, 5, fail_every=0)  # every root is "slow" with a 0 ms threshold
    assert handler.flush(10)
    roots = [e for e in memory.events if e.data.get("trace_root")]
    assert len(roots) == 5 and {r.data["sampling"]["reason"] for r in roots} == {"slow"}
    handler.shutdown(5)

    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=0.0), memory)
    calls = {"n": 0}

    def flaky(x: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("once")
        return x

    RunnableLambda(flaky).with_retry(wait_exponential_jitter=False).invoke(
        1, config={"callbacks": [handler]})
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [handler]})  # normal: dropped
    assert handler.flush(10)
    kept = traces(memory.events)
    assert len(kept) == 1
    [trace] = kept.values()
    assert {str(e.event_type) for e in trace} >= {"agent.retry", "chain.error", "chain.end"}
    handler.shutdown(5)


def test_cost_threshold_keeps_expensive_traces() -> None:
    from llm_audit_langchain.enrich.pricing import set_price_overrides

    set_price_overrides({"scripted-model": {"input": 1_000_000.0, "output": 0.0}})
    try:
        memory = MemoryExporter()
        handler = audited(SamplingPolicy(success_rate=0.0, cost_threshold_usd=0.5), memory)
        graph = react_agent([AIMessage("fine")])
        graph.invoke({"messages": [HumanMessage("hi")]}, config={"callbacks": [handler]})
        assert handler.flush(10)
    finally:
        set_price_overrides(None)
    roots = [e for e in memory.events if e.data.get("trace_root")]
    assert [r.data["sampling"]["reason"] for r in roots] == ["cost"]
    handler.shutdown(5)


@pytest.mark.parametrize("flag,expected", [("01", 1), ("00", 0)])
def test_upstream_sampled_flag_is_honoured(flag: str, expected: int) -> None:
    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=0.5), memory)
    for i in range(20):
        header = f"00-{i + 1:032x}-{i + 1:016x}-{flag}"
        with TraceContext.from_traceparent(header):
            nested_chain(False).invoke(i, config={"callbacks": [handler]})
    assert handler.flush(10)
    assert len(traces(memory.events)) == 20 * expected
    handler.shutdown(5)


def test_keeping_everything_holds_nothing_and_keeps_unsampled_upstreams() -> None:
    """Compliance: with successes and errors both kept at rate 1, every trace is kept (an
    upstream ``sampled=0`` too) and events go out as they come, not when their root ends."""
    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=1.0), memory)
    assert handler.stats()["sampling"]["keeps_everything"] == 1  # known before any trace
    sampled = audited(SamplingPolicy(), MemoryExporter())
    assert sampled.stats()["sampling"]["keeps_everything"] == 0
    sampled.shutdown(5)

    def chunks(x: int) -> Any:
        yield from (x, x + 1)

    stream = (RunnableLambda(lambda x: x, name="first") | RunnableLambda(chunks)).stream(
        1, config={"callbacks": [handler]})
    next(stream)  # the root is still open
    assert handler.flush(10)
    assert [e.action for e in memory.events] == ["first"]
    assert handler.stats()["sampling"]["held"] == 0
    stream.close()
    memory.clear()
    for i in range(4):
        with TraceContext.from_traceparent(f"00-{i + 1:032x}-{i + 1:016x}-00"):
            nested_chain(False).invoke(i, config={"callbacks": [handler]})
    assert handler.flush(10)
    upstream = {f"{i + 1:032x}" for i in range(4)}
    roots = [e for e in memory.events if e.data.get("trace_root") and e.trace_id in upstream]
    assert len(roots) == 4
    assert all(r.data["sampling"] == {"reason": "all", "rate": 1.0} for r in roots)
    assert handler.stats()["dropped"].get("sampled_out", 0) == 0
    handler.shutdown(5)


def test_unsampled_upstream_still_keeps_errors() -> None:
    memory = MemoryExporter()
    handler = audited(SamplingPolicy(success_rate=1.0), memory)
    with TraceContext.from_traceparent(f"00-{7:032x}-{7:016x}-00"), pytest.raises(ValueError):
        nested_chain(True).invoke(1, config={"callbacks": [handler]})
    assert handler.flush(10)
    assert len(memory.events) == 3
    handler.shutdown(5)


def test_held_buffer_overflow_decides_early_and_favours_errors() -> None:
    memory = MemoryExporter()
    policy = SamplingPolicy(success_rate=0.0, max_held_events=5)
    handler = audited(policy, memory)
    graph = react_agent([tool_call("get_weather", {"city": "Atlantis"}, "c1"),
                         AIMessage("no weather there")])
    graph.invoke({"messages": [HumanMessage("Atlantis?")]}, config={"callbacks": [handler]})
    assert handler.flush(10)
    kept = traces(memory.events)
    assert len(kept) == 1  # the handled tool error keeps the trace despite overflowing
    [trace] = kept.values()
    assert any(e.event_type == "tool.error" for e in trace)
    assert handler._pipeline._sampler.stats()["early_decisions"] >= 1  # type: ignore[union-attr]
    handler.shutdown(5)


def test_open_traces_that_hold_nothing_are_bounded_too() -> None:
    """A review (or a write-ahead tool call) is released at once, so its trace holds no event;
    traces whose root never comes must still not accumulate past ``max_held_events``."""
    sampler = SamplingPolicy(success_rate=0.0, max_held_events=10).sampler()
    released = 0
    for _ in range(100):
        review = AuditEvent(event_id=new_trace_id(), trace_id=new_trace_id(),
                            span_id=new_trace_id()[:16], timestamp=datetime.now(UTC),
                            event_type=AuditEventType.HUMAN_REVIEW, agent="a", action="review")
        out, dropped = sampler.offer(review)
        assert out == [review] and dropped == 0  # never held, never dropped
        released += len(out)
        assert sampler.stats()["open_traces"] <= 10
    assert released == 100 and sampler.stats()["early_decisions"] == 90
    assert sampler.stats()["held"] == 0


def test_metrics_observers_see_sampled_out_events() -> None:
    seen: list[AuditEvent] = []
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory], observers=[seen.append],
                                   config=AuditConfig(flush_interval_ms=20,
                                                      sampling=SamplingPolicy(success_rate=0.0)))
    run_many(handler, 10, fail_every=0)
    assert handler.flush(10)
    assert memory.events == [] and len(seen) == 30
    handler.shutdown(5)


@pytest.mark.parametrize("name,value", [("SUCCESS_SAMPLE_RATE", "1.5"),
                                        ("ERROR_SAMPLE_RATE", "lots")])
def test_bad_rates_are_clear_errors(monkeypatch: pytest.MonkeyPatch, name: str,
                                    value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        SamplingPolicy.from_env()


def test_env_rates_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_SAMPLE_RATE", "0.3")
    monkeypatch.setenv("SUCCESS_SAMPLE_RATE", "0.05")
    monkeypatch.setenv("ERROR_SAMPLE_RATE", "0.9")
    monkeypatch.setenv("SLOW_REQUEST_THRESHOLD_MS", "250")
    monkeypatch.setenv("AUDIT_DEBUG", "true")
    policy = SamplingPolicy.from_env()
    assert (policy.trace_rate, policy.success_rate, policy.error_rate,
            policy.slow_threshold_ms, policy.debug) == (0.3, 0.05, 0.9, 250.0, True)


def test_kept_traces_are_the_same_whether_sampled_out_events_are_built_or_not() -> None:
    """The default handler builds and enriches an event only once its trace is kept; a handler
    with a processor of its own builds every event. Kept traces must not tell them apart."""
    lazy_memory, eager_memory = MemoryExporter(), MemoryExporter()
    policy = SamplingPolicy(success_rate=0.5)
    lazy = audited(policy, lazy_memory)
    eager = AuditCallbackHandler(exporters=[eager_memory], processors=[lambda event: event],
                                 config=AuditConfig(flush_interval_ms=20, sampling=policy))
    graph = react_agent(responder=weather_responder)
    for i in range(12):  # the upstream flag decides, so both handlers decide alike
        with TraceContext.from_traceparent(f"00-{i + 1:032x}-{i + 1:016x}-0{i % 2}"):
            graph.invoke({"messages": [HumanMessage(f"Weather in city {i}?")]},
                         config={"callbacks": [lazy, eager]})
    assert lazy.flush(10) and eager.flush(10)

    def shape(events: Sequence[AuditEvent]) -> list[tuple[Any, ...]]:
        return sorted((e.trace_id, e.event_type, e.action, e.status, e.model, e.tokens_input,
                       e.tokens_output, e.cost_usd, sorted(e.data), str(e.data.get("langgraph")))
                      for e in events)

    assert len(traces(lazy_memory.events)) == 6
    assert shape(lazy_memory.events) == shape(eager_memory.events)
    efficiency = [e for e in lazy_memory.events if e.event_type == "prompt.efficiency"]
    assert len(efficiency) == 12 and all(e.data["input_tokens"] for e in efficiency)
    assert lazy.stats()["dropped"] == eager.stats()["dropped"]
    lazy.shutdown(5)
    eager.shutdown(5)
