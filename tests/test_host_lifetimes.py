"""We keep no user object alive, no thread running, and no trace waiting, past its use.

- A large object local to a failing LangGraph node is freed once the run is over: nothing of
  ours (a cached exception, its traceback, the frames it pins) outlives the error callbacks.
- A handler the program drops stops its worker thread (after exporting what it had queued).
- A trace whose root never ends cleanly is decided after the run TTL and released whole.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import fast_config
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    AuditEvent,
    AuditEventType,
    MemoryExporter,
    SamplingPolicy,
)
from llm_audit_langchain.pipeline.worker import Pipeline


class _Ballast:
    """Stands for a large user object (a 50 MB buffer in the report); weakref-able."""

    def __init__(self) -> None:
        self.payload = bytearray(1024)


class _State(TypedDict):
    value: int


def _failing_graph(ballast_refs: list[weakref.ref[_Ballast]]) -> Any:
    def explode(state: _State) -> dict[str, Any]:
        ballast = _Ballast()  # a node local: only the failing frame holds it
        ballast_refs.append(weakref.ref(ballast))
        raise ValueError(f"node failed holding {len(ballast.payload)} bytes")

    builder = StateGraph(_State)
    builder.add_node("explode", explode)
    builder.add_edge(START, "explode")
    builder.add_edge("explode", END)
    return builder.compile()


def _assert_freed(refs: list[weakref.ref[_Ballast]]) -> None:
    gc.collect()
    assert len(refs) == 1
    assert refs[0]() is None, gc.get_referrers(refs[0]())


def test_a_failing_nodes_locals_are_freed_after_invoke(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    refs: list[weakref.ref[_Ballast]] = []
    graph = _failing_graph(refs)
    try:
        graph.invoke({"value": 1}, config={"callbacks": [handler]})
    except ValueError:
        pass
    assert handler.flush(timeout=10)
    _assert_freed(refs)
    errors = [e for e in memory.events if e.error is not None]
    assert errors and all("explode" in (e.error.traceback or "") for e in errors)


async def test_a_failing_nodes_locals_are_freed_after_ainvoke(
    handler: AuditCallbackHandler, memory: MemoryExporter
) -> None:
    refs: list[weakref.ref[_Ballast]] = []
    graph = _failing_graph(refs)
    try:
        await graph.ainvoke({"value": 1}, config={"callbacks": [handler]})
    except ValueError:
        pass
    assert handler.flush(timeout=10)
    _assert_freed(refs)
    assert any(e.error is not None for e in memory.events)


def _sampled_config(**overrides: object) -> AuditConfig:
    """Tail sampling on (traces wait for their root) and every trace kept: as slow (any root
    latency is over a 0 ms threshold), since keeping everything by rate holds nothing."""
    policy = SamplingPolicy(success_rate=0.0, slow_threshold_ms=0.0)
    return fast_config(debug=False, sampling=policy, **overrides)


def _flush_forever(handler: AuditCallbackHandler | Pipeline) -> bool | None:
    """``flush(timeout=None)`` on a thread: None if it has not returned within a minute."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(handler.flush(timeout=None)),
                              daemon=True)
    thread.start()
    thread.join(60)
    return result[0] if result else None


async def test_a_child_reusing_its_parents_run_id_does_not_hold_the_trace() -> None:
    """As langchain-core's own ``test_bad_parent_ids``: the child is given the parent's run id."""
    memory = MemoryExporter()
    audit = AuditCallbackHandler(exporters=[memory], config=_sampled_config())
    reused = uuid.UUID(int=7)
    child = RunnableLambda(lambda x: x, name="child")

    async def parent_fn(x: str, config: RunnableConfig) -> str:
        config["run_id"] = reused
        return await child.ainvoke(x, config)

    parent = RunnableLambda(parent_fn, name="parent")
    assert await parent.ainvoke("hello", {"run_id": reused, "callbacks": [audit]}) == "hello"
    assert audit.flush(timeout=10)
    stats = audit.stats()
    assert stats["held"] == 0 and stats["pending"] == 0
    assert stats["duplicate_callbacks"] == 0
    ends = {e.action: e for e in memory.events if e.event_type.value == "chain.end"}
    assert set(ends) == {"parent", "child"}
    assert ends["parent"].data.get("trace_root") is True
    assert ends["child"].parent_span_id == ends["parent"].span_id
    audit.shutdown(timeout=5)


def test_an_abandoned_stream_is_decided_after_the_run_ttl() -> None:
    memory = MemoryExporter()
    audit = AuditCallbackHandler(exporters=[memory], config=_sampled_config(run_ttl_s=0.3))
    first = RunnableLambda(lambda x: x, name="first")

    def chunks(x: str) -> Any:
        yield from ("a", "b", "c")

    stream = (first | RunnableLambda(chunks, name="chunks")).stream(
        "x", config={"callbacks": [audit]})
    assert next(stream) == "a"  # the caller walks away: the root never ends
    assert _flush_forever(audit) is True
    stats = audit.stats()
    assert stats["held"] == 0 and stats["pending"] == 0
    assert any(e.status == "timeout" for e in memory.events)  # the root, evicted
    assert any(e.action == "first" for e in memory.events)  # released with its trace
    stream.close()
    audit.shutdown(timeout=5)


async def test_a_cancelled_task_leaves_no_trace_held() -> None:
    memory = MemoryExporter()
    audit = AuditCallbackHandler(exporters=[memory], config=_sampled_config(run_ttl_s=0.3))
    started = asyncio.Event()

    async def slow(x: str) -> str:
        started.set()
        await asyncio.sleep(3600)
        return x

    chain = RunnableLambda(lambda x: x, name="first") | RunnableLambda(slow, name="slow")
    task = asyncio.ensure_future(chain.ainvoke("x", config={"callbacks": [audit]}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(_flush_forever, audit) is True
    stats = audit.stats()
    assert stats["held"] == 0 and stats["pending"] == 0
    assert {"first", "slow"} <= {e.action for e in memory.events}
    audit.shutdown(timeout=5)


def test_a_trace_whose_root_event_never_arrives_is_released_after_the_run_ttl() -> None:
    """The root's event lost (the bounded queue dropped it): the rest of the trace is decided
    on what it showed, once it has waited the run TTL, and released whole."""
    memory = MemoryExporter()
    pipeline = Pipeline([memory], sampler=SamplingPolicy(success_rate=1.0).sampler(),
                        flush_interval_s=0.02, hold_limit_s=0.3)
    trace_id = "ab" * 16
    for number in range(3):
        pipeline.enqueue(AuditEvent(event_id=uuid.uuid4().hex, trace_id=trace_id,
                                    span_id=f"{number + 1:016x}", timestamp=datetime.now(UTC),
                                    event_type=AuditEventType.CHAIN_END, agent="graph",
                                    action=f"step{number}", status="ok"))
    assert _flush_forever(pipeline) is True
    assert [e.action for e in memory.events] == ["step0", "step1", "step2"]
    assert pipeline.stats()["held"] == 0
    pipeline.shutdown(timeout=5)


class _CountingExporter(MemoryExporter):
    """Remembers whether it was shut down (a dropped handler's pipeline must do it)."""

    def __init__(self) -> None:
        super().__init__()
        self.shut_down = False

    def shutdown(self, timeout: float | None = None) -> None:
        self.shut_down = True
        super().shutdown(timeout)


def _export_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llm-audit-export"]


def test_a_dropped_handler_exports_what_it_had_and_stops_its_worker() -> None:
    before = set(_export_threads())
    exporters = [_CountingExporter() for _ in range(50)]
    chain = RunnableLambda(lambda x: x, name="echo")
    for exporter in exporters:
        audit = AuditCallbackHandler(exporters=[exporter], config=fast_config())
        chain.invoke("hello", config={"callbacks": [audit]})  # starts its worker
        del audit  # dropped without shutdown()
    gc.collect()
    ours = [thread for thread in _export_threads() if thread not in before]
    give_up = time.monotonic() + 60  # a bound on the wait, not a measurement
    for thread in ours:
        thread.join(max(0.0, give_up - time.monotonic()))
    assert [thread for thread in ours if thread.is_alive()] == []
    assert all(exporter.shut_down for exporter in exporters)
    assert all(len(exporter.events) == 1 for exporter in exporters)  # nothing queued was lost


_EXIT_SCRIPT = """
import atexit, threading, time
exit_started = []
atexit.register(lambda: print(f"exit_hooks_s={time.monotonic() - exit_started[0]:.2f}"))

from langchain_core.runnables import RunnableLambda
from llm_audit_langchain import AuditCallbackHandler, AuditConfig


class Unanswering:
    name = "unanswering"  # a sink that never answers until it is shut down

    def __init__(self):
        self.released = threading.Event()

    def export(self, batch):
        self.released.wait()

    def force_flush(self, timeout=None):
        return False

    def shutdown(self, timeout=None):
        self.released.set()


config = AuditConfig(shutdown_timeout_s=TIMEOUT, debug=True, flush_interval_ms=20)
handlers = [AuditCallbackHandler(exporters=[Unanswering()], config=config) for _ in range(COUNT)]
for handler in handlers:
    RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [handler]})
exit_started.append(time.monotonic())
"""


def test_exit_with_several_handlers_waits_one_shared_deadline(tmp_path: Path) -> None:
    """Exit waits for the handlers' last exports together, up to the shutdown timeout once,
    not once per handler (six stuck sinks at 2 s each used to take 12 s)."""
    count, timeout = 6, 2.0
    script = tmp_path / "exit_with_handlers.py"
    script.write_text(_EXIT_SCRIPT.replace("TIMEOUT", str(timeout)).replace("COUNT", str(count)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=True)
    waited = float(done.stdout.strip().rsplit("exit_hooks_s=", 1)[1])
    # a bound (one timeout plus generous slack for a loaded machine), not a measurement
    assert waited < timeout * count / 2


def test_a_queued_llm_call_does_not_keep_the_models_response_alive() -> None:
    """Until the worker drains, a queued LLM call holds what usage and cost are read from, not
    LangChain's ``LLMResult`` (its generations and their objects); the usage still arrives."""
    from graphs import weather_agent
    from langchain_core.callbacks import BaseCallbackHandler

    responses: list[weakref.ref[Any]] = []

    class Recorder(BaseCallbackHandler):
        run_inline = True

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            responses.append(weakref.ref(response))

    memory = MemoryExporter()
    # the worker waits for its (hour-long) interval: everything stays queued until flush()
    handler = AuditCallbackHandler(exporters=[memory], config=fast_config(
        flush_interval_ms=3_600_000, batch_size=10_000, queue_size=10_000))
    try:
        weather_agent().invoke({"messages": [("user", "Weather in Paris?")]},
                               config={"callbacks": [handler, Recorder()]})
        gc.collect()
        assert len(responses) == 2 and handler.stats()["queue_size"] > 0
        assert all(ref() is None for ref in responses)
        assert handler.flush(timeout=10)
        calls = [e for e in memory.events if e.event_type is AuditEventType.LLM_INVOKE]
        assert len(calls) == 2 and all(e.tokens_input and e.tokens_output for e in calls)
        selection = [e for e in memory.events if e.event_type is AuditEventType.TOOL_SELECTION]
        assert [c["name"] for c in selection[0].data["calls"]] == ["get_weather"]
    finally:
        handler.shutdown(timeout=10)
