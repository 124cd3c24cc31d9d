"""Overhead per agent run (2 LLM calls + 1 tool call), sync and async, as ratios in one run.

    python bench/bench_overhead.py [--runs 300] [--rounds 7]

Modes, interleaved round by round so machine noise hits them alike:
  bare       no callbacks
  noop       a BaseCallbackHandler that does nothing (run_inline=True, the cheapest shape)
  hot-path   our handler, worker does nothing (no processors, no sanitizer, no exporter)
  +enrich    ... plus usage/cost/environment enrichment
  +sanitize  ... plus the default sanitizer
  default    everything on by default: enrich, sanitize, sampling, JSONL export to a temp dir

Each measurement includes the final ``flush()``, so worker-thread work is paid inside the timing
(on 2 cores the worker competes with the agent for the GIL). Reported: median overhead per run
in ms against ``bare``, and the ratio to ``bare``. Not a test: no assertion, just numbers.
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

from graphs import weather_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter
from llm_audit_langchain.pipeline import Pipeline
from llm_audit_langchain.processors import default_processors, default_sanitizer

INPUT = {"messages": [HumanMessage("What is the weather in Paris? Reply briefly.")]}


class NoopHandler(BaseCallbackHandler):
    run_inline = True


def ours(stage: str, log_dir: str) -> AuditCallbackHandler:
    config = AuditConfig(exporter="none", flush_interval_ms=200)
    if stage == "default":
        return AuditCallbackHandler(exporters=[JsonlExporter(log_dir)], config=config)
    handler = AuditCallbackHandler(exporters=[], config=config)
    processors = default_processors(config) if stage in ("+enrich", "+sanitize") else []
    sanitizer = default_sanitizer(config) if stage == "+sanitize" else None
    handler._pipeline = Pipeline([], processors, sanitizer=sanitizer, flush_interval_s=0.2)
    return handler


def make_modes(log_dir: str) -> dict[str, Callable[[], list[Any]]]:
    return {
        "bare": lambda: [],
        "noop": lambda: [NoopHandler()],
        **{stage: (lambda s=stage: [ours(s, log_dir)])
           for stage in ("hot-path", "+enrich", "+sanitize", "default")},
    }


def time_sync(graph: Any, callbacks: list[Any], runs: int) -> float:
    config = {"callbacks": callbacks}
    start = time.perf_counter()
    for _ in range(runs):
        graph.invoke(INPUT, config=config)
    for cb in callbacks:
        if isinstance(cb, AuditCallbackHandler):
            cb.flush(timeout=60)
    return (time.perf_counter() - start) / runs


def time_async(graph: Any, callbacks: list[Any], runs: int, concurrency: int = 10) -> float:
    config = {"callbacks": callbacks}

    async def main() -> None:
        for _ in range(runs // concurrency):
            await asyncio.gather(*(graph.ainvoke(INPUT, config=config)
                                   for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(main())
    for cb in callbacks:
        if isinstance(cb, AuditCallbackHandler):
            cb.flush(timeout=60)
    return (time.perf_counter() - start) / runs


def measure(kind: str, runs: int, rounds: int, log_dir: str) -> dict[str, list[float]]:
    modes = make_modes(log_dir)
    timer = time_sync if kind == "sync" else time_async
    graph = weather_agent()
    for callbacks in (m() for m in modes.values()):  # warm up every path once
        timer(graph, callbacks, 20)
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(rounds):
        for name, make in modes.items():
            callbacks = make()
            samples[name].append(timer(graph, callbacks, runs))
            for cb in callbacks:
                if isinstance(cb, AuditCallbackHandler):
                    cb.shutdown(timeout=10)
    return samples


def report(kind: str, samples: dict[str, list[float]]) -> None:
    bare = statistics.median(samples["bare"])
    print(f"\n{kind}: bare run {bare * 1e3:.2f} ms (median of {len(samples['bare'])} rounds)")
    print(f"| {'mode':<10} | {'per run (ms)':>12} | {'overhead (ms)':>13} | {'ratio':>6} |")
    print(f"|{'-' * 12}|{'-' * 14}:|{'-' * 15}:|{'-' * 7}:|")
    for name, values in samples.items():
        overheads = [v - b for v, b in zip(values, samples["bare"], strict=True)]
        median = statistics.median(values)
        print(f"| {name:<10} | {median * 1e3:>12.3f} | "
              f"{statistics.median(overheads) * 1e3:>13.3f} | {median / bare:>6.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="agent runs per measurement")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as log_dir:
        for kind in ("sync", "async"):
            report(kind, measure(kind, args.runs, args.rounds, log_dir))


if __name__ == "__main__":
    main()
