"""Synthetic event streams for the alert tests, built from REAL agent runs.

Each kind of run (a normal one, one whose model fails, one whose tool fails, one the model
retries) is recorded once with a real LangGraph graph and a deterministic chat model; a test then
replays copies of those events into an ``AlertEngine`` at the moments it chooses on an injected
clock (a fresh trace id per copy, and where a test needs it a longer latency or a scaled cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphs import get_time, get_weather, tool_call, tool_loop
from langchain_core.messages import AIMessage, HumanMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, AuditEvent, MemoryExporter
from llm_audit_langchain.alerts import AlertEngine
from llm_audit_langchain.context import new_trace_id
from llm_audit_langchain.testing import ScriptedChatModel

QUESTION = "What is the weather in Paris? " + "Please answer precisely. " * 300
"""Long enough (about 1,200 words) that a run with gpt-4o costs about a cent."""


class Clock:
    """The injected clock: seconds since the epoch, moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:  # 2027-01-15, aligned to 10 s
        self.now = now

    def __call__(self) -> float:
        return self.now


def _graph(model: Any, *, retries: int = 0) -> Any:
    tools = [get_weather, get_time]
    bound = model.bind_tools(tools)
    if retries:
        bound = bound.with_retry(stop_after_attempt=retries + 1, wait_exponential_jitter=False,
                                 retry_if_exception_type=(ConnectionError,))
    return tool_loop(bound, tools)


def _model(city: str, fail_on: dict[int, BaseException] | None = None) -> ScriptedChatModel:
    return ScriptedChatModel(
        responses=[tool_call("get_weather", {"city": city}, "call_1"), AIMessage("Sunny.")],
        model_name="gpt-4o", provider="openai", fail_on=fail_on or {})


def _record(graph: Any, user: str = "alice", thread: str = "thread-1") -> list[AuditEvent]:
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory], config=AuditConfig(
        flush_interval_ms=20, debug=True, exporter="none"))
    config: Any = {"callbacks": [handler], "metadata": {"user_id": user},
                   "configurable": {"thread_id": thread}}
    try:
        graph.invoke({"messages": [HumanMessage(QUESTION)]}, config=config)
    except RuntimeError:
        pass  # the failing run: its error is what we record
    handler.shutdown(timeout=10)
    return memory.events


@dataclass
class Runs:
    """One recorded run of each kind (the events of one trace each)."""

    ok: list[AuditEvent]
    llm_error: list[AuditEvent]
    tool_error: list[AuditEvent]
    retried: list[AuditEvent]

    @classmethod
    def record(cls) -> Runs:
        """Run the four real agents once."""
        down = RuntimeError("provider unavailable")
        flaky = {i: ConnectionError(f"attempt {i + 1} refused") for i in range(3)}
        return cls(
            ok=_record(_graph(_model("Paris"))),
            llm_error=_record(_graph(_model("Paris", {0: down}))),
            tool_error=_record(_graph(_model("Atlantis"))),
            retried=_record(_graph(_model("Paris", flaky), retries=3)),
        )


def replay(engine: AlertEngine, events: list[AuditEvent], clock: Clock, *, at: float | None = None,
           latency_ms: float | None = None, scale: float = 1.0, user: str | None = None,
           thread: str | None = None, roots_only: bool = False) -> str:
    """Feed one copy of a recorded trace to ``engine`` at ``at`` (default: the clock's now).

    ``latency_ms`` replaces the root run's latency; ``scale`` multiplies cost and tokens;
    ``user``/``thread`` re-attribute the request. Returns the copy's trace id."""
    if at is not None:
        clock.now = at
    trace_id = new_trace_id()
    for event in events:
        root = event.start_time is not None and event.data.get("trace_root")
        if roots_only and not root:
            continue
        update: dict[str, Any] = {"trace_id": trace_id}
        if event.cost_usd is not None:
            update["cost_usd"] = event.cost_usd * scale
            update["tokens_input"] = int((event.tokens_input or 0) * scale)
            update["tokens_output"] = int((event.tokens_output or 0) * scale)
        if root:
            data = dict(event.data)
            rollup = dict(data.get("cost_rollup") or {})
            rollup["cost_usd"] = (rollup.get("cost_usd") or 0.0) * scale
            for key in ("tokens_input", "tokens_output"):
                rollup[key] = int((rollup.get(key) or 0) * scale)
            metadata = dict(data.get("metadata") or {})
            if user is not None:
                metadata["user_id"] = user
            if thread is not None:
                metadata["thread_id"] = thread
            data.update(cost_rollup=rollup, metadata=metadata)
            update["data"] = data
            if latency_ms is not None:
                update["latency_ms"] = latency_ms
        engine.observe(event.model_copy(update=update))
    return trace_id


def spread(engine: AlertEngine, events: list[AuditEvent], clock: Clock, count: int,
           start: float, every: float, **kwargs: Any) -> None:
    """``count`` copies, one every ``every`` seconds from ``start``."""
    for i in range(count):
        replay(engine, events, clock, at=start + i * every, **kwargs)
