"""Overhead per agent run (2 LLM calls + 1 tool call), sync and async, as ratios in one run.

    python bench/bench_overhead.py [--runs 20] [--rounds 60]

Modes, interleaved round by round so machine noise hits them alike:
  bare       no callbacks
  noop       a BaseCallbackHandler that does nothing (run_inline=True, the cheapest shape)
  hot-path   our handler, worker does nothing (no processors, no sanitizer, no exporter)
  +enrich    ... plus usage/cost/environment enrichment
  +sanitize  ... plus the default sanitizer
  default    everything on by default: enrich, sanitize, sampling, JSONL export to a temp dir
  keep-all   the default with every trace kept (SUCCESS_SAMPLE_RATE=1, TRACE_SAMPLE_RATE=1)

Async runs share one scripted model that answers in call order, so under ``gather`` a single run
may get 1, 2, 3 or 5 LLM calls; every 10 runs still make 20 LLM calls and 10 tool calls in all
(``bench_payload.py`` and ``bench_throughput.py`` use a model answering from the prompt).

Each measurement includes the final ``flush()``, so worker-thread work is paid inside the timing
(on 2 cores the worker competes with the agent for the GIL). Reported per run: wall time and
process CPU time (all threads, so the worker's work counts; far less noisy than wall time on a
shared machine), their medians over rounds, the overhead against ``bare`` measured in the same
round with the interquartile range of those paired overheads (wide on these machines: read
medians over many rounds, never one round), and the CPU ratio to ``bare``. Not a test: no
assertion, just numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from graphs import weather_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter, SamplingPolicy
from llm_audit_langchain.pipeline.processors import default_processors, default_sanitizer
from llm_audit_langchain.pipeline.worker import Pipeline

INPUT = {"messages": [HumanMessage("What is the weather in Paris? Reply briefly.")]}


class NoopHandler(BaseCallbackHandler):
    run_inline = True


def ours(stage: str, log_dir: str) -> AuditCallbackHandler:
    config = AuditConfig(exporter="none", flush_interval_ms=200)
    if stage == "default":
        return AuditCallbackHandler(exporters=[JsonlExporter(log_dir)], config=config)
    if stage == "keep-all":
        keep = SamplingPolicy(trace_rate=1.0, success_rate=1.0)
        config = AuditConfig(exporter="none", flush_interval_ms=200, sampling=keep)
        return AuditCallbackHandler(exporters=[JsonlExporter(log_dir)], config=config)
    handler = AuditCallbackHandler(exporters=[], config=config)
    processors = default_processors(config) if stage in ("+enrich", "+sanitize") else []
    sanitizer = default_sanitizer(config) if stage == "+sanitize" else None
    handler._pipeline = Pipeline([], processors, sanitizer=sanitizer, flush_interval_s=0.2)
    return handler


STAGES = ("hot-path", "+enrich", "+sanitize", "default", "keep-all")


def make_modes(log_dir: str, wanted: list[str]) -> dict[str, Callable[[], list[Any]]]:
    modes: dict[str, Callable[[], list[Any]]] = {
        "bare": lambda: [],
        "noop": lambda: [NoopHandler()],
        **{stage: (lambda s=stage: [ours(s, log_dir)]) for stage in STAGES},
    }
    return {name: make for name, make in modes.items() if name == "bare" or name in wanted}


Timing = tuple[float, float]  # (wall seconds, process CPU seconds) per run


def flush_all(callbacks: list[Any]) -> None:
    for cb in callbacks:
        if isinstance(cb, AuditCallbackHandler):
            cb.flush(timeout=60)


def time_sync(graph: Any, callbacks: list[Any], runs: int) -> Timing:
    config = {"callbacks": callbacks}
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        graph.invoke(INPUT, config=config)
    flush_all(callbacks)
    return (time.perf_counter() - start) / runs, (time.process_time() - cpu) / runs


def time_async(graph: Any, callbacks: list[Any], runs: int, concurrency: int = 10) -> Timing:
    config = {"callbacks": callbacks}

    async def rounds() -> None:
        for _ in range(runs // concurrency):
            await asyncio.gather(*(graph.ainvoke(INPUT, config=config)
                                   for _ in range(concurrency)))

    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(rounds())
    flush_all(callbacks)
    return (time.perf_counter() - start) / runs, (time.process_time() - cpu) / runs


def measure(kind: str, runs: int, rounds: int, log_dir: str,
            wanted: list[str]) -> dict[str, list[Timing]]:
    """Short measurements, interleaved mode by mode and round by round: the machine's slow
    drifts then hit every mode alike, and each round's overhead is paired with that round's
    bare run. Each mode keeps one handler for the whole benchmark, as an application would."""
    timer = time_sync if kind == "sync" else time_async
    graph = weather_agent()
    modes = {name: make() for name, make in make_modes(log_dir, wanted).items()}
    for callbacks in modes.values():  # warm up every path
        timer(graph, callbacks, 30)
    samples: dict[str, list[Timing]] = {name: [] for name in modes}
    for _ in range(rounds):
        for name, callbacks in modes.items():
            samples[name].append(timer(graph, callbacks, runs))
    for callbacks in modes.values():
        for cb in callbacks:
            if isinstance(cb, AuditCallbackHandler):
                cb.shutdown(timeout=10)
    return samples


def report(kind: str, samples: dict[str, list[Timing]]) -> None:
    bare_wall = statistics.median(w for w, _ in samples["bare"])
    bare_cpu = statistics.median(c for _, c in samples["bare"])
    print(f"\n{kind}: bare run {bare_wall * 1e3:.2f} ms wall, {bare_cpu * 1e3:.2f} ms CPU "
          f"(medians of {len(samples['bare'])} rounds)")
    print("| mode | wall (ms) | wall overhead (ms) | CPU (ms) | CPU overhead (ms) "
          "| CPU overhead IQR (ms) | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, values in samples.items():
        wall = [w - b for (w, _), (b, _) in zip(values, samples["bare"], strict=True)]
        cpu = sorted(c - b for (_, c), (_, b) in zip(values, samples["bare"], strict=True))
        q1, q3 = cpu[len(cpu) // 4], cpu[3 * len(cpu) // 4]
        median_cpu = statistics.median(c for _, c in values)
        print(f"| {name} | {statistics.median(w for w, _ in values) * 1e3:.3f} | "
              f"{statistics.median(wall) * 1e3:.3f} | {median_cpu * 1e3:.3f} | "
              f"{statistics.median(cpu) * 1e3:.3f} | {q1 * 1e3:.2f}..{q3 * 1e3:.2f} | "
              f"{median_cpu / bare_cpu:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="agent runs per measurement")
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds per mode")
    parser.add_argument("--modes", default="noop," + ",".join(STAGES),
                        help="comma list of modes to compare with bare (default: all)")
    parser.add_argument("--kinds", default="sync,async", help="sync, async or both")
    args = parser.parse_args()
    wanted = args.modes.split(",")
    with tempfile.TemporaryDirectory() as log_dir:
        for kind in args.kinds.split(","):
            report(kind, measure(kind, args.runs, args.rounds, log_dir, wanted))


if __name__ == "__main__":
    main()
