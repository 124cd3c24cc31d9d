"""What the alert engine costs: per event on the worker, and per evaluation with 10,000 users.

    python bench/bench_alerts.py [--events 200000] [--users 10000]

1. Per event: ``AlertEngine.observe`` over the events of real agent runs (a normal run, a failing
   one, a tool failure, a retried one), against a no-op observer and ``AuditMetrics.observe``
   measured in the same process (ratios, not absolute promises).
2. Per evaluation: ``engine.check()`` with every built-in rule after ``--users`` users (each with
   a thread of its own) sent requests every hour for a day, so the per-user budgets and the
   anomaly baselines are full.

3. Per agent run (``--rounds``): the default handler with and without an engine, interleaved
   round by round like ``bench/bench_overhead.py``, process CPU per run (worker included).

Not a test: no assertion, just numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from alert_streams import Clock, Runs

from llm_audit_langchain.alerts import AlertEngine
from llm_audit_langchain.alerts.signals import EVENT_TYPES
from llm_audit_langchain.events import AuditEvent
from llm_audit_langchain.otel.metrics import AuditMetrics


def per_event(observe: Callable[[AuditEvent], Any], events: list[AuditEvent], clock: Clock,
              count: int) -> float:
    """Seconds per ``observe`` call over ``count`` events, the clock moving 10 ms each."""
    start = time.perf_counter()
    n = len(events)
    for i in range(count):
        clock.now += 0.01
        observe(events[i % n])
    return (time.perf_counter() - start) / count


def bench_events(runs: Runs, count: int) -> None:
    events = runs.ok * 4 + runs.llm_error + runs.tool_error + runs.retried
    modes: dict[str, Callable[[], Callable[[AuditEvent], Any]]] = {
        "no-op observer": lambda: (lambda event: None),
        "AuditMetrics.observe": lambda: AuditMetrics().observe,
        "AlertEngine.observe": lambda: AlertEngine(clock=clock).observe,
    }
    clock = Clock()
    results: dict[str, list[float]] = {name: [] for name in modes}
    observers = {name: make() for name, make in modes.items()}
    for _ in range(5):  # interleaved rounds
        for name, observe in observers.items():
            results[name].append(per_event(observe, events, clock, count // 5))
    base = statistics.median(results["no-op observer"])
    metrics = statistics.median(results["AuditMetrics.observe"])
    # what the pipeline hands an observer with event_types for a normal run: the declared
    # types, errors and the root's end (the other events of sampled-out traces stay unbuilt)
    per_run = sum(1 for e in runs.ok if e.event_type in EVENT_TYPES or e.status != "ok"
                  or e.data.get("trace_root"))
    print(f"\nper event on the worker ({count} events from real runs; a normal agent run has "
          f"{len(runs.ok)} events, {per_run} of which reach an observer that names its types)")
    print("| observer | µs per event | µs over no-op | µs per agent run | vs metrics |")
    print("|---|---:|---:|---:|---:|")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"| {name} | {value * 1e6:.2f} | {(value - base) * 1e6:.2f} | "
              f"{(value - base) * per_run * 1e6:.1f} | {(value - base) / (metrics - base):.2f} |")


def bench_evaluation(runs: Runs, users: int) -> None:
    clock = Clock()
    engine = AlertEngine(clock=clock)
    root = next(e for e in runs.ok if e.start_time is not None and e.data.get("trace_root"))
    copies = []
    for i in range(users):
        data = dict(root.data)
        data["metadata"] = {"user_id": f"user-{i}", "thread_id": f"thread-{i}"}
        copies.append(root.model_copy(update={"data": data}))
    start = clock.now
    fill = time.perf_counter()
    for hour in range(24):
        for i, event in enumerate(copies):
            clock.now = start + hour * 3_600 + i * 3_000 / users
            engine.observe(event)
    filled = time.perf_counter() - fill
    clock.now = start + 24 * 3_600 - 1
    timings = []
    for _ in range(5):
        begin = time.perf_counter()
        engine.check()
        timings.append(time.perf_counter() - begin)
    status = time.perf_counter()
    engine.slo_status()
    slo = time.perf_counter() - status
    print(f"\nevaluation with {users} users and {users} threads, a day of hourly requests "
          f"({24 * users} requests observed in {filled:.1f} s), {len(engine.rules)} rules")
    print(f"check(): median {statistics.median(timings) * 1e3:.1f} ms, min "
          f"{min(timings) * 1e3:.1f} ms over 5; slo_status(): {slo * 1e3:.1f} ms")
    print(f"alerts announced: {engine.stats()['fired']} fired (budget and anomaly rules see "
          f"every user)")


def bench_agent_runs(rounds: int, runs: int = 20) -> None:
    import tempfile

    from graphs import weather_agent
    from langchain_core.messages import HumanMessage

    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter

    question = {"messages": [HumanMessage("What is the weather in Paris? Reply briefly.")]}
    graph = weather_agent()
    with tempfile.TemporaryDirectory() as log_dir:
        config = AuditConfig(exporter="none", flush_interval_ms=200)
        handlers = {
            "default": AuditCallbackHandler(exporters=[JsonlExporter(log_dir)], config=config),
            "+alerts": AuditCallbackHandler(exporters=[JsonlExporter(log_dir)], config=config,
                                            alerts=AlertEngine()),
        }

        def cpu_per_run(handler: AuditCallbackHandler) -> float:
            start = time.process_time()
            for _ in range(runs):
                graph.invoke(question, config={"callbacks": [handler]})
            handler.flush(timeout=60)
            return (time.process_time() - start) / runs

        for handler in handlers.values():
            cpu_per_run(handler)  # warm up
        samples: dict[str, list[float]] = {name: [] for name in handlers}
        for _ in range(rounds):
            for name, handler in handlers.items():
                samples[name].append(cpu_per_run(handler))
        for handler in handlers.values():
            handler.shutdown(timeout=10)
    diffs = sorted(a - d for a, d in zip(samples["+alerts"], samples["default"], strict=True))
    print(f"\nper agent run, process CPU (medians of {rounds} interleaved rounds of {runs} runs): "
          f"default {statistics.median(samples['default']) * 1e3:.3f} ms, +alerts "
          f"{statistics.median(samples['+alerts']) * 1e3:.3f} ms, paired difference "
          f"{statistics.median(diffs) * 1e3:+.3f} ms (IQR {diffs[len(diffs) // 4] * 1e3:+.2f}.."
          f"{diffs[3 * len(diffs) // 4] * 1e3:+.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=40, help="0 skips the per-run comparison")
    args = parser.parse_args()
    runs = Runs.record()
    bench_events(runs, args.events)
    bench_evaluation(runs, args.users)
    if args.rounds:
        bench_agent_runs(args.rounds)


if __name__ == "__main__":
    main()
