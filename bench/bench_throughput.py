"""Events per second: what the worker exports, what busy threads produce, where drops start.

    python bench/bench_throughput.py [--runs 300] [--repeat 3] [--prompt-bytes 1500]
                                     [--threads 8] [--levels 1,2,4,8,16] [--seconds 2]
                                     [--queue-size 10000] [--parts worker,produce,saturate]

Full size: ``--runs 3000 --repeat 5 --seconds 10``. Every trace kept
(``SamplingPolicy(trace_rate=1.0, success_rate=1.0)``), capture ``redacted`` (the default).
The agent run is 2 LLM calls + 1 tool call whose question is ``--prompt-bytes`` of new text
each run (``workload.py``: varied words, a run counter, an email and a phone number in
``--pii-fraction`` of them), so the sanitizer scans for real instead of hitting its cache.

  worker     the worker alone on one thread: the callbacks of ``--runs`` real agent runs are
             captured without a worker (the queue replaced by a list, as
             ``bench_stages.capture``), then fed through a fresh keep-all pipeline's
             ``_process``/``_hand_over``/``_deliver`` 512 at a time, as its worker does (build,
             enrich, tail-sample, sanitize, JSONL to a temp file); events/s and MB/s of JSONL
             per CPU second, best of ``--repeat``
  produce    ``--threads`` threads running agent runs as fast as they can with a handler whose
             queue only counts (no worker): the events/s the callbacks can produce (and the
             run rate of the same threads with no callbacks, for scale)
  saturate   a real keep-all handler (``--queue-size``, JSONL to a temp dir), N threads of
             agent runs for ``--seconds`` per level: run rate, events/s enqueued and exported
             while it ran, ``stats()["dropped"]`` (``queue_full``: the oldest queued events
             given up), the queue left at the end and how long it then took to drain

Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import TextSource, agent

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter, SamplingPolicy

KEEP_ALL = SamplingPolicy(trace_rate=1.0, success_rate=1.0)


def keep_all(log_dir: str, **settings: Any) -> AuditCallbackHandler:
    config = AuditConfig(**{"exporter": "none", "flush_interval_ms": 200, "sampling": KEEP_ALL,
                            **settings})
    return AuditCallbackHandler(exporters=[JsonlExporter(log_dir)], config=config)


def capture(graph: Any, source: TextSource, prompt: int, runs: int) -> list[Any]:
    """What the callbacks of ``runs`` agent runs queue (events the worker still has to build)."""
    handler = AuditCallbackHandler(exporters=[], config=AuditConfig(exporter="none",
                                                                    sampling=KEEP_ALL))
    queued: list[Any] = []
    handler._pipeline.enqueue = queued.append  # type: ignore[method-assign]
    config = {"callbacks": [handler]}
    for _ in range(runs):
        graph.invoke(source.question(prompt), config=config)
    return queued


def worker_alone(queued: list[Any], log_dir: Path) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and JSONL bytes of the keep-all worker over ``queued``."""
    for old in log_dir.glob("*.jsonl"):
        old.unlink()
    handler = keep_all(str(log_dir), flush_interval_ms=3_600_000, batch_size=len(queued) + 1,
                       queue_size=len(queued) + 1)
    pipeline = handler._pipeline
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(queued), 512):
        released = pipeline._process(queued[i:i + 512])
        if released:
            pipeline._hand_over(released)
        pipeline._deliver()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    exported = pipeline.stats()["exported"]
    handler.shutdown(5)
    if exported != len(queued):
        print(f"(worker: {exported} of {len(queued)} events exported)")
    return cpu, wall, sum(path.stat().st_size for path in log_dir.glob("*.jsonl"))


def busy_threads(graph: Any, handler: AuditCallbackHandler | None, threads: int,
                 seconds: float, prompt: int, pii: float) -> tuple[int, float]:
    """Agent runs completed by ``threads`` threads running for ``seconds``, and the time."""
    counts = [0] * threads
    stop = threading.Event()
    config = {"callbacks": [handler] if handler is not None else []}
    start = threading.Barrier(threads + 1)

    def loop(index: int) -> None:
        source = TextSource(seed=100 + index, pii_fraction=pii)
        start.wait()
        while not stop.is_set():
            graph.invoke(source.question(prompt), config=config)
            counts[index] += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    return sum(counts), time.perf_counter() - began


def part_worker(args: argparse.Namespace, graph: Any) -> float:
    measured: list[tuple[float, float, int]] = []
    events = 0
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(max(1, args.repeat)):
            source = TextSource(seed=1 + repeat, pii_fraction=args.pii_fraction)
            queued = capture(graph, source, args.prompt_bytes, args.runs)
            events = len(queued)
            measured.append(worker_alone(queued, Path(tmp)))
    cpu, wall, written = min(measured)
    print(f"\nworker alone, one thread, keep-all, redacted: {args.runs} runs, {events} events "
          f"({events / args.runs:.0f} per run), question {args.prompt_bytes} B, "
          f"{written / events / 1e3:.2f} kB of JSONL per event (best of {args.repeat})\n")
    print("| events/s (CPU) | MB/s JSONL (CPU) | µs per event (CPU) | events/s (wall) "
          "| agent runs/s (CPU) |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {events / cpu:,.0f} | {written / cpu / 1e6:.1f} | {cpu / events * 1e6:.0f} | "
          f"{events / wall:,.0f} | {args.runs / cpu:,.0f} |")
    return events / cpu


def part_produce(args: argparse.Namespace, graph: Any, worker_rate: float | None) -> None:
    handler = AuditCallbackHandler(exporters=[], config=AuditConfig(exporter="none",
                                                                    sampling=KEEP_ALL))
    counter = itertools.count()
    handler._pipeline.enqueue = lambda item: next(counter)  # type: ignore[method-assign]
    runs, seconds = busy_threads(graph, handler, args.threads, args.seconds,
                                 args.prompt_bytes, args.pii_fraction)
    events = next(counter)
    bare_runs, bare_seconds = busy_threads(graph, None, args.threads, args.seconds,
                                           args.prompt_bytes, args.pii_fraction)
    print(f"\nproduction: {args.threads} busy threads, {args.seconds:g} s each\n")
    print("| callbacks | agent runs/s | events/s enqueued | worker events/s ÷ produced |")
    print("|---|---:|---:|---:|")
    ratio = f"{worker_rate / (events / seconds):.2f}" if worker_rate else "-"
    print(f"| none (bare runs) | {bare_runs / bare_seconds:,.0f} | | |")
    print(f"| ours, queue that only counts | {runs / seconds:,.0f} | {events / seconds:,.0f} "
          f"| {ratio} |")


def part_saturate(args: argparse.Namespace, graph: Any) -> None:
    print(f"\nsaturation: keep-all handler, queue_size {args.queue_size}, JSONL, "
          f"{args.seconds:g} s per level\n")
    print("| threads | agent runs/s | events/s enqueued | events/s exported | dropped "
          "| dropped % | queued at end | drain after (s) | held after drain "
          "| open traces after |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    first_drop: tuple[int, float] | None = None
    best_clean = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (int(n) for n in args.levels.split(",")):
            handler = keep_all(tmp, queue_size=args.queue_size)
            runs, seconds = busy_threads(graph, handler, threads, args.seconds,
                                         args.prompt_bytes, args.pii_fraction)
            stats = handler.stats()
            drained = time.perf_counter()
            settled = handler.flush(timeout=args.drain_timeout)
            drained = time.perf_counter() - drained
            after = handler.stats()
            handler.shutdown(10)
            for old in Path(tmp).glob("*.jsonl"):
                old.unlink()
            dropped = stats["dropped"]
            full = dropped.get("queue_full", 0)
            shown = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "0"
            rate = runs / seconds
            print(f"| {threads} | {rate:,.0f} | {stats['enqueued'] / seconds:,.0f} | "
                  f"{stats['exported'] / seconds:,.0f} | {shown} | "
                  f"{100 * full / max(1, stats['enqueued']):.1f} | {stats['queue_size']} | "
                  f"{drained:.2f}{'' if settled else ' (timed out)'} | {after['held']} | "
                  f"{after['sampling'].get('open_traces', '?')} |", flush=True)
            if full and first_drop is None:
                first_drop = (threads, rate)
            elif not full:
                best_clean = max(best_clean, rate)
    if first_drop is None:
        print(f"\nno queue_full drops at any level; highest run rate {best_clean:,.0f}/s")
    else:
        print(f"\nqueue_full drops from {first_drop[0]} threads on, at {first_drop[1]:,.0f} "
              f"runs/s; highest run rate without drops {best_clean:,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="captured runs for the worker")
    parser.add_argument("--repeat", type=int, default=3, help="worker: best of this many")
    parser.add_argument("--prompt-bytes", type=int, default=1500,
                        help="size of each run's (new) question")
    parser.add_argument("--pii-fraction", type=float, default=0.2,
                        help="share of questions holding an email and a phone number")
    parser.add_argument("--threads", type=int, default=8, help="produce: busy threads")
    parser.add_argument("--levels", default="1,2,4,8,16", help="saturate: thread counts")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="produce and saturate: seconds per level")
    parser.add_argument("--queue-size", type=int, default=10_000, help="saturate: queue bound")
    parser.add_argument("--drain-timeout", type=float, default=30.0,
                        help="saturate: flush timeout after each level")
    parser.add_argument("--parts", default="worker,produce,saturate")
    args = parser.parse_args()
    parts = args.parts.split(",")
    graph = agent()
    graph.invoke(TextSource().question(10))  # imports and caches warm before any timing
    worker_rate = part_worker(args, graph) if "worker" in parts else None
    if "produce" in parts:
        part_produce(args, graph, worker_rate)
    if "saturate" in parts:
        part_saturate(args, graph)


if __name__ == "__main__":
    main()
