"""How often the host's garbage collector runs because of us, per 1,000 agent runs.

    python bench/bench_gc.py [--modes bare,default,keep-all] [--runs 3000] [--kinds sync,async]

A bare LangGraph run frees what it allocates, so the collector almost never runs. Our handler
keeps each run's objects until the worker drains; those push the youngest generation over its
threshold, the ones still alive at a gen1 collection are promoted, and enough promotions make
Python collect the whole heap (~140,000 objects of LangChain, LangGraph and pydantic: tens of
milliseconds each time). Collection counts depend on the allocation pattern, not on the
machine's speed, so they show the direction of a change where timings (``bench_overhead.py``)
move by tens of percent between runs. Shape as in ``bench_overhead.py``: 20 runs, then
``flush()``; async runs 10 concurrent ``ainvoke``s. Reported per 1,000 runs: collections of
each generation, and time spent collecting per run (``gc.callbacks``). Modes run one after
another in one process (the old generation carries over, as in an application). Not a test:
numbers only.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import ours, time_async, time_sync
from graphs import weather_agent


class CollectorLog:
    """Counts and times the collections of each generation while attached to ``gc.callbacks``."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.count[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started


def measure(mode: str, kind: str, runs: int, log_dir: str) -> CollectorLog:
    timer = time_sync if kind == "sync" else time_async
    graph = weather_agent()
    callbacks = [] if mode == "bare" else [ours(mode, log_dir)]
    timer(graph, callbacks, 200)  # warm up: imports, caches, the worker thread
    log = CollectorLog()
    gc.callbacks.append(log)
    try:
        for _ in range(runs // 20):
            timer(graph, callbacks, 20)
    finally:
        gc.callbacks.remove(log)
        for handler in callbacks:
            handler.shutdown(timeout=10)
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="bare,default,keep-all")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--kinds", default="sync,async")
    args = parser.parse_args()
    print("| kind | mode | gen0 | gen1 | gen2 (full) | collecting (ms/run) | of it, full |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as log_dir:
        for kind in args.kinds.split(","):
            for mode in args.modes.split(","):
                log = measure(mode, kind, args.runs, log_dir)
                per = 1000 / args.runs
                print(f"| {kind} | {mode} | {log.count[0] * per:.0f} | {log.count[1] * per:.1f} "
                      f"| {log.count[2] * per:.2f} | {sum(log.seconds) / args.runs * 1e3:.3f} "
                      f"| {log.seconds[2] / args.runs * 1e3:.3f} |")


if __name__ == "__main__":
    main()
