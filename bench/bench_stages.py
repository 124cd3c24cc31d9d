"""CPU cost of each stage per agent run (2 LLM calls + 1 tool call), measured in isolation.

    python bench/bench_stages.py [--runs 300] [--repeat 9]

The end-to-end benchmark (bench_overhead.py) is what users feel, but on a shared 2-core machine
its differences drown in noise. Here each stage runs alone on one thread, repeated, and the
*minimum* over repetitions is reported (the run least disturbed by the rest of the machine):

  hot path    our callbacks alone: the exact callback sequence of one agent run, recorded
              from LangGraph once and replayed into the handler (fresh run ids each time), so
              LangGraph's own noise is out of the measurement
  in graph    the same, measured inside real runs: (runs with the handler) minus (bare runs)
  enrich      usage, cost, prompt efficiency, environment
  sanitize    the default sanitizer over every event
  sample      the tail sampler (default policy)
  serialize   JSONL encoding
  write       JSONL write to a temp file

each over every event, then the whole worker as configured by default (the stages above apply
only to what tail sampling keeps, plus the LLM calls and root runs that decide it),

and the bare agent run for scale. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from graphs import weather_agent
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, AuditEvent
from llm_audit_langchain.exporters.jsonl import JsonlExporter
from llm_audit_langchain.pipeline.processors import default_processors, default_sanitizer
from llm_audit_langchain.pipeline.sampling import SamplingPolicy

INPUT = {"messages": [HumanMessage("What is the weather in Paris? Reply briefly.")]}


def _timed(fn: Callable[[Any], Any], arg: Any) -> float:
    start = time.process_time()
    fn(arg)
    return time.process_time() - start


def best(fn: Callable[[], Any], repeat: int) -> float:
    """Minimum CPU seconds of ``fn`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


_CALLBACKS = ("on_chain_start", "on_chain_end", "on_chain_error", "on_chat_model_start",
              "on_llm_end", "on_llm_error", "on_tool_start", "on_tool_end", "on_tool_error",
              "on_llm_new_token")


def record_callbacks(graph: Any) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """The callbacks one agent run makes, with their arguments."""
    from langchain_core.callbacks import BaseCallbackHandler

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    class Recorder(BaseCallbackHandler):
        run_inline = True

    for name in _CALLBACKS:
        setattr(Recorder, name,
                lambda self, *a, _n=name, **k: calls.append((_n, a, k)))  # type: ignore[misc]
    graph.invoke(INPUT, config={"callbacks": [Recorder()]})
    return calls


def replay_callbacks(handler: AuditCallbackHandler,
                     calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], runs: int) -> None:
    from uuid import uuid4

    run_ids = {k["run_id"] for _, _, k in calls}
    for _ in range(runs):
        fresh = {old: uuid4() for old in run_ids}
        for name, args, kwargs in calls:
            kw = {**kwargs, "run_id": fresh[kwargs["run_id"]]}
            if kwargs.get("parent_run_id") in fresh:
                kw["parent_run_id"] = fresh[kwargs["parent_run_id"]]
            getattr(handler, name)(*args, **kw)


def capture(graph: Any, runs: int) -> tuple[AuditCallbackHandler, list[Any]]:
    """A handler whose queue is a plain list: the hot path alone, no worker. The list holds
    what the callbacks queue: events still to be built by the worker."""
    handler = AuditCallbackHandler(exporters=[], config=AuditConfig(exporter="none"))
    events: list[Any] = []
    handler._pipeline.enqueue = events.append  # type: ignore[method-assign]
    config = {"callbacks": [handler]}
    for _ in range(runs):
        graph.invoke(INPUT, config=config)
    return handler, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    runs, repeat = args.runs, args.repeat
    graph = weather_agent()
    config = AuditConfig(exporter="none")

    bare = best(lambda: [graph.invoke(INPUT) for _ in range(runs)], repeat)
    in_graph = best(lambda: capture(graph, runs), repeat) - bare
    calls = record_callbacks(graph)
    null = AuditCallbackHandler(exporters=[], config=AuditConfig(exporter="none"))
    null._pipeline.enqueue = lambda event: None  # type: ignore[method-assign]
    hot = best(lambda: replay_callbacks(null, calls, runs), repeat)

    def fresh_queued() -> list[Any]:
        return capture(graph, runs)[1]

    def fresh_events() -> list[AuditEvent]:
        return [item.build() for item in fresh_queued()]

    processors = default_processors(config)
    sanitizer = default_sanitizer(config)

    def stage(prepare: Callable[[list[AuditEvent]], Any], work: Callable[[Any], Any]) -> float:
        samples = []
        for _ in range(repeat):
            data = prepare(fresh_events())
            start = time.process_time()
            work(data)
            samples.append(time.process_time() - start)
        return min(samples)

    def build(queued: list[Any]) -> None:
        for item in queued:
            item.build()

    def enriched(events: list[AuditEvent]) -> list[AuditEvent]:
        for event in events:
            for processor in processors:
                processor(event)
            event.data.pop("_raw", None)
        return events

    def sanitized(events: list[AuditEvent]) -> list[AuditEvent]:
        return [sanitizer(e) for e in enriched(events)]  # type: ignore[misc]

    def run_enrich(events: list[AuditEvent]) -> None:
        enriched(events)

    def run_sanitize(events: list[AuditEvent]) -> None:
        for event in events:
            sanitizer(event)

    def run_sample(events: list[AuditEvent]) -> None:
        sampler = SamplingPolicy().sampler()
        for event in events:
            sampler.offer(event)

    with tempfile.TemporaryDirectory() as tmp:
        exporter = JsonlExporter(tmp)

        def run_serialize(events: list[AuditEvent]) -> None:
            for event in events:
                exporter._line(event)

        def run_write(events: list[AuditEvent]) -> None:
            exporter.export(events)

        costs = {
            "hot path (replayed callbacks)": hot,
            "build events (worker)": min(
                _timed(build, fresh_queued()) for _ in range(repeat)),
            "enrich": stage(lambda e: e, run_enrich),
            "sanitize": stage(enriched, run_sanitize),
            "sample": stage(sanitized, run_sample),
            "serialize": stage(sanitized, run_serialize),
            "write (JSONL)": stage(sanitized, run_write),
        }
        exporter.shutdown()

        def default_worker() -> float:
            """The whole worker as configured by default (enrich, tail sampling at the default
            rates, sanitize and JSONL for kept traces); sampled-out events are never built."""
            queued = fresh_queued()
            handler = AuditCallbackHandler(exporters=[JsonlExporter(tmp)], config=AuditConfig(
                exporter="none", flush_interval_ms=3_600_000, batch_size=len(queued) + 1,
                queue_size=len(queued) + 1))
            pipeline = handler._pipeline
            start = time.process_time()
            for i in range(0, len(queued), 512):
                released = pipeline._process(queued[i:i + 512])
                if released:
                    pipeline._hand_over(released)
                pipeline._deliver()
            spent = time.process_time() - start
            handler.shutdown(5)
            return spent

        worker = min(default_worker() for _ in range(repeat))
    events_per_run = len(fresh_events()) / runs
    print(f"bare agent run: {bare / runs * 1e3:.3f} ms CPU; {events_per_run:.0f} events per run")
    print("| stage | CPU per run (ms) | per event (µs) |")
    print("|---|---:|---:|")
    for name, seconds in costs.items():
        per_run = seconds / runs
        print(f"| {name} | {per_run * 1e3:.3f} | {per_run / events_per_run * 1e6:.1f} |")
    total = sum(v for k, v in costs.items() if k != "serialize") / runs
    print(f"| **total** (serialize counted once, inside write) | **{total * 1e3:.3f}** | |")
    print(f"\nthe whole worker as configured by default (tail sampling first, so sampled-out "
          f"events are never built, enriched or sanitized): {worker / runs * 1e3:.3f} ms")
    print(f"hot path measured inside real runs instead (noisy): {in_graph / runs * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
