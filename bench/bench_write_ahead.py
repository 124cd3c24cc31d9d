"""What a write-ahead tool call costs: the weather agent (2 LLM calls, 1 tool call) with the
audit chain as its only sink, the tool plain or marked write-ahead, interleaved round by round.

    python bench/bench_write_ahead.py [--runs 10] [--rounds 15]

Modes:
  chain        tool.call recorded, no wait (the default for every tool)
  write-ahead  the tool waits until its tool.call is appended and fsync'd in the chain
               (AUDIT_WRITE_AHEAD_TIMEOUT_S=5); one worker round trip + append + fsync per call

Reported per run: median wall time and its difference to ``chain`` (the wait is on the caller's
thread, so wall time is what the caller pays). Not a test: just numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from graphs import get_weather, react_agent, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import StructuredTool

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, AuditLogExporter

INPUT = {"messages": [HumanMessage("What is the weather in Paris?")]}


def agent(write_ahead: bool) -> Any:
    weather = StructuredTool.from_function(get_weather.func, name="get_weather",
                                           description="Current weather for a city.")
    if write_ahead:
        weather.metadata = {"audit": "write_ahead"}
    return react_agent([tool_call("get_weather", {"city": "Paris"}, "call_w1"),
                        AIMessage("Sunny in Paris.")], tools=[weather])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    config = AuditConfig(exporter="none", flush_interval_ms=200, debug=True,
                         write_ahead_timeout_s=5.0)
    modes = {}
    for name in ("chain", "write-ahead"):
        directory = tempfile.mkdtemp(prefix=f"bench-{name}-")
        handler = AuditCallbackHandler(exporters=[AuditLogExporter(directory)], config=config)
        modes[name] = (agent(name == "write-ahead"), handler)
    samples: dict[str, list[float]] = {name: [] for name in modes}
    for graph, handler in modes.values():  # warm up
        graph.invoke(INPUT, config={"callbacks": [handler]})
        handler.flush(10)
    for _ in range(args.rounds):
        for name, (graph, handler) in modes.items():
            start = time.perf_counter()
            for _ in range(args.runs):
                graph.invoke(INPUT, config={"callbacks": [handler]})
            samples[name].append((time.perf_counter() - start) / args.runs)
            handler.flush(10)
    base = statistics.median(samples["chain"])
    print("| mode | wall per run (ms) | vs chain (ms) |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e3:.2f} | {(median - base) * 1e3:+.2f} |")
    for _, handler in modes.values():
        print(f"# {handler.stats()['write_ahead_timeouts']} write-ahead timeouts")
        handler.shutdown(10)


if __name__ == "__main__":
    main()
