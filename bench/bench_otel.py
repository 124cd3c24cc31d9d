"""Overhead per agent run of the OpenTelemetry sinks, as ratios in one run.

    python bench/bench_otel.py [--runs 200] [--rounds 5] [--sink rotel|noop]

Modes, interleaved round by round so machine noise hits them alike (agent run = 2 LLM calls +
1 tool call, scripted model; every trace kept, so every span is exported):
  bare            no callbacks
  jsonl           our handler, JSONL export
  jsonl+otlp      ... plus OtlpExporter over OTLP/HTTP to a local collector
  jsonl+otlp+met  ... plus AuditMetrics as an observer (in-memory reader)

The collector is a local rotel agent (``pip install rotel``; blackhole exporter, no debug log)
or, with ``--sink noop``, a local HTTP server that answers 200 to every POST. Each measurement
ends with ``flush()``, so the worker's mapping and the HTTP calls are paid inside the timing.
Not a test: no assertion, just numbers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from collector import free_port, rotel_binary
from graphs import weather_agent
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter
from llm_audit_langchain.otel import AuditMetrics, OtlpExporter

INPUT = {"messages": [HumanMessage("What is the weather in Paris? Reply briefly.")]}


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def start_sink(kind: str) -> tuple[str, Callable[[], None]]:
    """An OTLP/HTTP endpoint and how to stop it."""
    port = free_port()
    binary = rotel_binary() if kind == "rotel" else None
    if binary is not None:
        workdir = tempfile.mkdtemp()
        process = subprocess.Popen(
            [str(binary), "start", "--otlp-http-endpoint", f"127.0.0.1:{port}",
             "--otlp-grpc-endpoint", f"127.0.0.1:{free_port()}", "--exporter", "blackhole",
             "--pid-file", f"{workdir}/pid", "--log-file", f"{workdir}/log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return f"http://127.0.0.1:{port}/v1/traces", process.terminate
    server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}/v1/traces", server.shutdown


def make_modes(log_dir: str, endpoint: str) -> dict[str, Callable[[], list[Any]]]:
    config = AuditConfig(exporter="none", flush_interval_ms=200, debug=True)

    def handler(otlp: bool, metrics: bool) -> list[Any]:
        exporters: list[Any] = [JsonlExporter(log_dir)]
        if otlp:
            exporters.append(OtlpExporter(endpoint=endpoint, timeout=5))
        observers = [AuditMetrics(otlp=False).observe] if metrics else []
        return [AuditCallbackHandler(exporters=exporters, config=config, observers=observers)]

    return {
        "bare": lambda: [],
        "jsonl": lambda: handler(False, False),
        "jsonl+otlp": lambda: handler(True, False),
        "jsonl+otlp+met": lambda: handler(True, True),
    }


def time_runs(graph: Any, callbacks: list[Any], runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        graph.invoke(INPUT, config={"callbacks": callbacks})
    for callback in callbacks:
        callback.flush(30)
    elapsed = time.perf_counter() - start
    for callback in callbacks:
        callback.shutdown(30)
    return elapsed / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sink", choices=("rotel", "noop"), default="rotel")
    args = parser.parse_args()
    endpoint, stop = start_sink(args.sink)
    samples: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as log_dir:
            modes = make_modes(log_dir, endpoint)
            graph = weather_agent()
            time_runs(graph, modes["jsonl+otlp"](), 20)  # warm up imports and connections
            for _ in range(args.rounds):
                for name, make in modes.items():
                    samples.setdefault(name, []).append(time_runs(graph, make(), args.runs))
    finally:
        stop()
    bare = statistics.median(samples["bare"])
    jsonl = statistics.median(samples["jsonl"])
    print(f"agent run, {args.runs} runs x {args.rounds} rounds, sink={args.sink}, "
          f"every trace exported")
    print(f"{'mode':<16}{'ms/run':>9}{'overhead ms':>13}{'x bare':>9}{'x jsonl':>9}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<16}{median:>9.2f}{median - bare:>13.2f}{median / bare:>9.2f}"
              f"{median / jsonl:>9.2f}")


if __name__ == "__main__":
    main()
