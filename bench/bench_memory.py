"""Resident memory over many agent runs (2 LLM calls + 1 tool call), every trace kept.

    python bench/bench_memory.py [--runs 3000] [--checkpoints 500,1000,2000,3000]
                                 [--mode keep-all|default] [--kind sync|async] [--warmup 500]

Full size: ``--runs 200000 --checkpoints 10000,50000,100000,200000 --warmup 2000``.

One handler for the whole process, as an application has: ``keep-all`` is the default config
with every trace kept (``SamplingPolicy(trace_rate=1.0, success_rate=1.0)``, as
``bench_overhead.ours("keep-all")``), ``default`` the shipped one; JSONL export to a temp dir.
Every run's question is a new message of new text (``workload.py``: the sanitizer's caches
are keyed by text and by message object, and a repeated prompt would only ever hit them).

After ``--warmup`` runs, a flush and ``gc.collect()``, the baseline RSS is read
(``/proc/self/status``, else psutil, else the peak from ``resource``). Then the runs, sequential
(``--kind sync``) or 10 at a time under ``asyncio.gather`` (``--kind async``); at each
checkpoint the handler is flushed, the JSONL written so far is deleted (the exporter reopens
its file; open descriptors are counted to show none pile up), ``gc.collect()`` runs and a row
is printed: RSS, growth since the baseline, Python's allocated blocks, open descriptors and
``stats()`` counts. A second table gives the sizes of the handler's internal maps at each
checkpoint (sanitizer caches, sampler, run tracker...), read from private attributes ("?"
when one is not there), so that a growth can be attributed. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import ours
from workload import TextSource, agent

from llm_audit_langchain import AuditCallbackHandler
from llm_audit_langchain.privacy.sanitizer import Sanitizer

ASYNC_CONCURRENCY = 10


def rss_mb() -> float:
    """Current resident set size in MiB (peak, with only ``resource`` available)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_fds() -> int | str:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return "?"


def sanitizer_of(handler: AuditCallbackHandler) -> Sanitizer | None:
    """The ``Sanitizer`` inside the pipeline's sanitize step (a closure of
    ``processors.event_sanitizer``)."""
    step = handler._pipeline._sanitizer
    for cell in getattr(step, "__closure__", None) or ():
        if isinstance(cell.cell_contents, Sanitizer):
            return cell.cell_contents
    return None


def _size(read: Callable[[], Any]) -> int | str:
    try:
        value = read()
        return value if isinstance(value, int) else len(value)
    except Exception:  # a private attribute renamed: say so, do not fail the benchmark
        return "?"


def _mb(*maps: dict[Any, Any]) -> str:
    """Bytes held by dicts of strings, ints and the like (keys and values; a value that is its
    key, None or a bool counted once): an estimate in MB with ``sys.getsizeof``."""
    try:
        size = 0
        for table in maps:
            size += sys.getsizeof(table)
            for key, value in table.items():
                size += sys.getsizeof(key)
                if value is not key and value is not None and type(value) is not bool:
                    size += sys.getsizeof(value)
        return f"{size / 2**20:.2f}"
    except Exception:
        return "?"


def internal_sizes(handler: AuditCallbackHandler) -> dict[str, int | str]:
    """Entries in the maps that live as long as the handler (each one is bounded by design),
    and for the biggest ones an estimate of their memory."""
    san = sanitizer_of(handler)
    sampler = handler._pipeline._sampler
    decided = getattr(sampler, "_decided", None)
    return {
        "sanitizer texts": _size(lambda: san._cache),  # type: ignore[union-attr]
        "sanitizer text chars (k)": _size(
            lambda: san._cache_chars // 1000),  # type: ignore[union-attr]
        "sanitizer texts (MB)": _mb(getattr(san, "_cache", {})),
        "sanitizer messages": _size(lambda: san._messages),  # type: ignore[union-attr]
        "sanitizer names": _size(lambda: san._names),  # type: ignore[union-attr]
        "sanitizer names (MB)": _mb(getattr(san, "_names", {})),
        "sampler open traces": _size(lambda: sampler._open),  # type: ignore[union-attr]
        "sampler decided": _size(lambda: sampler._decided),  # type: ignore[union-attr]
        "sampler decided (MB)": _mb(getattr(decided, "_new", {}), getattr(decided, "_old", {})),
        "open runs": _size(lambda: handler._runs),
        "closed run ids": _size(lambda: handler._closed),
        "closed run ids (MB)": _mb(getattr(handler, "_closed", {})),
        "tool call ids": _size(lambda: handler._tool_calls),
        "cost traces": _size(lambda: handler.costs._traces),
        "thread traces": _size(lambda: handler._thread_traces._traces),
        "failed children": _size(lambda: handler._decisions._failed_child),
        "exporter files": _size(lambda: handler._pipeline._slots[0].exporter._files),
    }


def run_sync(graph: Any, handler: AuditCallbackHandler, source: TextSource, prompt: int,
             runs: int) -> None:
    config = {"callbacks": [handler]}
    for _ in range(runs):
        graph.invoke(source.question(prompt), config=config)


def run_async(loop: asyncio.AbstractEventLoop, graph: Any, handler: AuditCallbackHandler,
              source: TextSource, prompt: int, runs: int) -> None:
    config = {"callbacks": [handler]}

    async def batches() -> None:
        for start in range(0, runs, ASYNC_CONCURRENCY):
            count = min(ASYNC_CONCURRENCY, runs - start)
            await asyncio.gather(*(graph.ainvoke(source.question(prompt), config=config)
                                   for _ in range(count)))

    loop.run_until_complete(batches())


def settle(handler: AuditCallbackHandler, log_dir: Path) -> int:
    """Flush, delete the JSONL written so far (its bytes returned), collect garbage."""
    handler.flush(timeout=300)
    written = 0
    for path in log_dir.glob("*.jsonl"):
        written += path.stat().st_size
        path.unlink()
    gc.collect()
    return written


def _dropped(stats: dict[str, Any]) -> str:
    dropped = stats["dropped"]
    return ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000, help="agent runs after the warm-up")
    parser.add_argument("--checkpoints", default=None,
                        help="comma list of run counts to report at (default: 4 even steps)")
    parser.add_argument("--mode", choices=("keep-all", "default"), default="keep-all")
    parser.add_argument("--kind", choices=("sync", "async"), default="sync")
    parser.add_argument("--warmup", type=int, default=500, help="runs before the baseline")
    parser.add_argument("--prompt-bytes", type=int, default=300,
                        help="size of each run's (new) question")
    parser.add_argument("--pii-fraction", type=float, default=0.2,
                        help="share of questions holding an email and a phone number")
    parser.add_argument("--limit-mb", type=float, default=5.0,
                        help="growth called flat in the last line")
    args = parser.parse_args()
    if args.checkpoints:
        checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    else:
        checkpoints = [args.runs * i // 4 for i in range(1, 5)]
    checkpoints = [c for c in checkpoints if 0 < c <= args.runs] or [args.runs]

    graph = agent()
    source = TextSource(pii_fraction=args.pii_fraction)
    loop = asyncio.new_event_loop() if args.kind == "async" else None

    def run(handler: AuditCallbackHandler, count: int) -> None:
        if loop is None:
            run_sync(graph, handler, source, args.prompt_bytes, count)
        else:
            run_async(loop, graph, handler, source, args.prompt_bytes, count)

    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        handler = ours(args.mode, tmp)
        started = time.perf_counter()
        run(handler, args.warmup)
        written = settle(handler, log_dir)
        baseline, blocks0 = rss_mb(), sys.getallocatedblocks()
        print(f"{args.mode}, {args.kind}: {args.warmup} warm-up runs, then {args.runs}; "
              f"question {args.prompt_bytes} B; baseline RSS {baseline:.1f} MB, "
              f"{blocks0 / 1e3:.0f} k Python blocks, {open_fds()} open descriptors "
              f"(warm-up {time.perf_counter() - started:.1f} s)\n")
        print("| runs | RSS (MB) | growth (MB) | Python blocks Δ (k) | open fds | enqueued "
              "| exported | dropped | held | JSONL written (MB) | s since start |")
        print("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
        maps: list[tuple[int, dict[str, int | str]]] = []
        done, started = 0, time.perf_counter()
        growth = 0.0
        for checkpoint in checkpoints:
            run(handler, checkpoint - done)
            done = checkpoint
            written += settle(handler, log_dir)
            rss = rss_mb()
            growth = rss - baseline
            stats = handler.stats()
            maps.append((done, internal_sizes(handler)))
            print(f"| {done} | {rss:.1f} | {growth:+.1f} | "
                  f"{(sys.getallocatedblocks() - blocks0) / 1e3:+.1f} | {open_fds()} | "
                  f"{stats['enqueued']} | {stats['exported']} | {_dropped(stats)} | "
                  f"{stats['held']} | {written / 2**20:.0f} | "
                  f"{time.perf_counter() - started:.0f} |", flush=True)
        handler.shutdown(timeout=60)
    if loop is not None:
        loop.close()

    names = list(maps[0][1])
    print("\nInternal maps (entries) at each checkpoint:\n")
    print("| map | " + " | ".join(str(done) for done, _ in maps) + " |")
    print("|---|" + "---:|" * len(maps))
    for name in names:
        print(f"| {name} | " + " | ".join(str(sizes[name]) for _, sizes in maps) + " |")
    verdict = "within" if abs(growth) <= args.limit_mb else "NOT within"
    print(f"\nRSS growth over {done} runs after the warm-up: {growth:+.1f} MB, {verdict} "
          f"{args.limit_mb:g} MB")


if __name__ == "__main__":
    main()
