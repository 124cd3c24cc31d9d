"""Overhead per agent run against the size of the conversation history it carries.

    python bench/bench_payload.py [--sizes 1,10,100] [--messages 8] [--runs 10] [--rounds 5]
                                  [--modes default,keep-all] [--kinds sync]

Full size: ``--runs 20 --rounds 60 --kinds sync,async``.

The agent run (2 LLM calls + 1 tool call, ``workload.agent``) gets as input a prior
conversation of ``--sizes`` kB (``--messages`` alternating Human/AI messages of new, varied
text every run: the sanitizer's caches are keyed by text and by message object) and the
question. That history is in both LLM calls' prompts and in the chain inputs and outputs.
Modes as in ``bench_overhead.py``: ``bare`` (no callbacks), ``default`` and ``keep-all``
(``SamplingPolicy(trace_rate=1.0, success_rate=1.0)``), JSONL to a temp dir, each measurement
ending with ``flush()``; sizes and modes interleaved round by round. The inputs are made before
each measurement starts, outside the timing.

Reported per size and mode: median CPU per run, the median over rounds of the overhead against
``bare`` of the same size and round (with its interquartile range), that overhead per kB of
history, and its ratio to the smallest size's: cost linear in bytes gives ratios near the size
ratios (10x, 100x) and a per-kB cost that falls towards a constant; a constant part (the events
themselves) makes both smaller; the cost of each kB above the smallest size (the slope)
stays about constant when the growth is linear.

Then, for ``keep-all``, one untimed measurement per size with the sanitizer's scan wrapped
(``Sanitizer._redact_all`` on the handler's instance, reached through the pipeline's sanitize
closure): text scans per run, characters scanned per run against the history's size, and scans
of a text already scanned in the same run (a message seen before in the trace should come from
the sanitizer's caches, not be scanned again), plus the JSONL bytes per run. Not a test:
numbers only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import sanitizer_of
from bench_overhead import flush_all, ours
from langchain_core.messages import HumanMessage
from workload import TextSource, agent

Timing = tuple[float, float]  # (wall seconds, process CPU seconds) per run
SANITIZER_MAX_STRING = 16_384  # Sanitizer(max_string_length=...) default: longer is cut


def inputs(source: TextSource, size_kb: int, messages: int, runs: int) -> list[dict[str, Any]]:
    """``runs`` graph inputs: a new history of ``size_kb`` kB, then a new question."""
    return [{"messages": [*source.conversation(size_kb * 1000, messages),
                          HumanMessage(source.text(40) + " What is the weather in Paris?")]}
            for _ in range(runs)]


def time_sync(graph: Any, callbacks: list[Any], batch: list[dict[str, Any]]) -> Timing:
    """``bench_overhead.time_sync`` with one input per run instead of one for all."""
    config = {"callbacks": callbacks}
    start, cpu = time.perf_counter(), time.process_time()
    for value in batch:
        graph.invoke(value, config=config)
    flush_all(callbacks)
    return (time.perf_counter() - start) / len(batch), (time.process_time() - cpu) / len(batch)


def time_async(graph: Any, callbacks: list[Any], batch: list[dict[str, Any]],
               concurrency: int = 10) -> Timing:
    """``bench_overhead.time_async`` (``concurrency`` runs at a time) over these inputs."""
    config = {"callbacks": callbacks}

    async def rounds() -> None:
        for i in range(0, len(batch), concurrency):
            await asyncio.gather(*(graph.ainvoke(value, config=config)
                                   for value in batch[i:i + concurrency]))

    start, cpu = time.perf_counter(), time.process_time()
    asyncio.run(rounds())
    flush_all(callbacks)
    return (time.perf_counter() - start) / len(batch), (time.process_time() - cpu) / len(batch)


def measure(kind: str, args: argparse.Namespace, sizes: list[int], modes: list[str],
            log_dir: str) -> dict[tuple[int, str], list[Timing]]:
    timer = time_sync if kind == "sync" else time_async
    graph = agent()
    source = TextSource(pii_fraction=args.pii_fraction)
    handlers = {mode: [] if mode == "bare" else [ours(mode, log_dir)] for mode in modes}
    for size in sizes:  # warm up every path
        for callbacks in handlers.values():
            timer(graph, callbacks, inputs(source, size, args.messages, 10))
    samples: dict[tuple[int, str], list[Timing]] = {(s, m): [] for s in sizes for m in modes}
    for _ in range(args.rounds):
        for size in sizes:
            for mode, callbacks in handlers.items():
                batch = inputs(source, size, args.messages, args.runs)
                samples[size, mode].append(timer(graph, callbacks, batch))
    for callbacks in handlers.values():
        for cb in callbacks:
            cb.shutdown(timeout=10)
    return samples


def report(kind: str, sizes: list[int], modes: list[str],
           samples: dict[tuple[int, str], list[Timing]]) -> None:
    print(f"\n{kind}: medians of {len(samples[sizes[0], 'bare'])} rounds, CPU time of the "
          f"process per run (worker included)\n")
    print("| history (kB) | mode | CPU (ms) | overhead (ms) | overhead IQR (ms) "
          "| overhead per kB (µs) | each kB above the smallest (µs) "
          "| overhead ÷ smallest size's | wall (ms) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    first: dict[str, float] = {}
    for size in sizes:
        bare = samples[size, "bare"]
        for mode in modes:
            values = samples[size, mode]
            cpu = sorted(c - b for (_, c), (_, b) in zip(values, bare, strict=True))
            overhead = statistics.median(cpu)
            q1, q3 = cpu[len(cpu) // 4], cpu[3 * len(cpu) // 4]
            wall = statistics.median(w for w, _ in values)
            median_cpu = statistics.median(c for _, c in values)
            if mode == "bare":
                print(f"| {size} | bare | {median_cpu * 1e3:.3f} | | | | | | "
                      f"{wall * 1e3:.3f} |")
                continue
            first.setdefault(mode, overhead)
            ratio = f"{overhead / first[mode]:.1f}" if first[mode] > 0 else "-"
            extra = (f"{(overhead - first[mode]) / (size - sizes[0]) * 1e6:.1f}"
                     if size > sizes[0] else "")
            print(f"| {size} | {mode} | {median_cpu * 1e3:.3f} | {overhead * 1e3:.3f} | "
                  f"{q1 * 1e3:.2f}..{q3 * 1e3:.2f} | {overhead / size * 1e6:.1f} | {extra} | "
                  f"{ratio} | {wall * 1e3:.3f} |")


def count_scans(args: argparse.Namespace, sizes: list[int], log_dir: str) -> None:
    """Scans the keep-all sanitizer makes per run, counted by wrapping its instance's scan."""
    print(f"\nkeep-all, sanitizer scans per run ({args.scan_runs} runs per size, untimed; a "
          f"'repeat' is a scan of a text already scanned in the same run)\n")
    print("| history (kB) | history chars per run | scans per run | chars scanned per run "
          "| scanned ÷ history | repeated scans per run | chars rescanned per run "
          "| JSONL bytes per run | JSONL ÷ history |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    graph = agent()
    source = TextSource(seed=99, pii_fraction=args.pii_fraction)
    by_type: dict[int, Counter[str]] = {}
    for size in sizes:
        run_dir = Path(log_dir) / f"scan-{size}"
        handler = ours("keep-all", str(run_dir))
        sanitizer = sanitizer_of(handler)
        if sanitizer is None:
            print(f"| {size} | sanitizer not found in the pipeline | | | | | | | |")
            continue
        scanned: list[Counter[str]] = []
        scan = sanitizer._redact_all

        def counted(text: str, scan: Any = scan, scanned: list[Counter[str]] = scanned) -> str:
            scanned[-1][text] += 1
            return str(scan(text))

        sanitizer._redact_all = counted  # type: ignore[method-assign]
        batch = inputs(source, size, args.messages, args.scan_runs)
        history = sum(len(str(m.content)) for value in batch for m in value["messages"][:-1])
        for value in batch:  # one run at a time: its events all sanitized before the next
            scanned.append(Counter())
            graph.invoke(value, config={"callbacks": [handler]})
            handler.flush(timeout=60)
        handler.shutdown(timeout=10)
        runs = len(batch)
        scans = sum(sum(c.values()) for c in scanned)
        chars = sum(len(t) * n for c in scanned for t, n in c.items())
        repeats = sum(n - 1 for c in scanned for n in c.values())
        rescanned = sum(len(t) * (n - 1) for c in scanned for t, n in c.items())
        written = 0
        by_type[size] = Counter()
        for path in run_dir.glob("*.jsonl"):
            for line in path.read_bytes().splitlines(keepends=True):
                written += len(line)
                by_type[size][orjson.loads(line)["event_type"]] += len(line) // runs
        print(f"| {size} | {history / runs:,.0f} | {scans / runs:.1f} | {chars / runs:,.0f} | "
              f"{chars / history:.2f} | {repeats / runs:.1f} | {rescanned / runs:,.0f} | "
              f"{written / runs:,.0f} | {written / history:.1f} |")
    if not by_type:
        return
    print("\nkeep-all, JSONL bytes per run by event type (where the history is written)\n")
    print("| event type | " + " | ".join(f"{size} kB" for size in by_type) + " |")
    print("|---|" + "---:|" * len(by_type))
    largest = by_type[max(by_type)]
    for event_type, _ in largest.most_common():
        print(f"| {event_type} | "
              + " | ".join(f"{counts[event_type]:,}" for counts in by_type.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="comma list of history sizes (kB)")
    parser.add_argument("--messages", type=int, default=8,
                        help="Human/AI messages the history is split into")
    parser.add_argument("--runs", type=int, default=10, help="agent runs per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--modes", default="default,keep-all",
                        help="comma list of modes to compare with bare")
    parser.add_argument("--kinds", default="sync", help="sync, async or both")
    parser.add_argument("--pii-fraction", type=float, default=0.2,
                        help="share of messages holding an email and a phone number")
    parser.add_argument("--scan-runs", type=int, default=5,
                        help="runs per size for the scan count (0: skip it)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    modes = ["bare", *(m for m in args.modes.split(",") if m != "bare")]
    if max(sizes) * 1000 // args.messages > SANITIZER_MAX_STRING:
        print(f"note: messages over {SANITIZER_MAX_STRING} characters are cut by the sanitizer "
              f"(only their head is scanned): raise --messages to keep the scan whole")
    with tempfile.TemporaryDirectory() as log_dir:
        for kind in args.kinds.split(","):
            report(kind, sizes, modes, measure(kind, args, sizes, modes, log_dir))
        if args.scan_runs > 0:
            count_scans(args, sizes, log_dir)


if __name__ == "__main__":
    main()
