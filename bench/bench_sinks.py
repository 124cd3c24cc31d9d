"""Events per second through each sink's ``export``, on the worker's side of the pipeline.

    python bench/bench_sinks.py [--events 20000] [--batch 512] [--sinks memory,jsonl,...]

The events are a real agent run's (2 LLM calls + 1 tool call, recorded once), copied with fresh
ids and one trace per run. Each sink gets the same batches, then ``force_flush`` (so Kafka's
acknowledgements are inside the timing). Servers are the tests' ones, started here on free local
ports: rotel (OTLP), moto (CloudWatch Logs), Tansu (Kafka); a server-backed number measures that
local server too, so the client's CPU time per event (``cpu µs/ev``, this process only, all
threads) is the figure that is ours. ``x jsonl``: time against the default sink in the same
run. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from graphs import weather_agent
from langchain_core.messages import HumanMessage

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    AuditEvent,
    AuditLogExporter,
    JsonlExporter,
    MemoryExporter,
    StdoutExporter,
)

SINKS = ("memory", "jsonl", "stdout", "audit", "otlp", "cloudwatch", "kafka")


def recorded_run() -> list[AuditEvent]:
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory],
                                   config=AuditConfig(debug=True, flush_interval_ms=20))
    weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                           config={"callbacks": [handler]})
    handler.shutdown(10)
    return memory.events


def workload(template: list[AuditEvent], count: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    while len(events) < count:
        trace = uuid4().hex
        spans: dict[str | None, str | None] = {None: None}
        for e in template:  # fresh span ids too, with the same parent links as the original
            for span in (e.span_id, e.parent_span_id):
                spans.setdefault(span, uuid4().hex[:16])
        events.extend(e.model_copy(update={
            "event_id": uuid4().hex, "trace_id": trace, "span_id": spans[e.span_id],
            "parent_span_id": spans[e.parent_span_id]}) for e in template)
    return events[:count]


@contextmanager
def sink(name: str, workdir: Path) -> Iterator[Any]:
    if name == "memory":
        yield MemoryExporter(max_events=None)
    elif name == "jsonl":
        yield JsonlExporter(workdir / "jsonl")
    elif name == "stdout":
        yield StdoutExporter(io.StringIO(), colour=False)
    elif name == "audit":
        yield AuditLogExporter(workdir / "chain", key=b"k" * 32)
    elif name == "otlp":
        from collector import Collector, rotel_binary

        from llm_audit_langchain.otel import OtlpExporter

        binary = rotel_binary()
        assert binary is not None, "pip install rotel"
        server = Collector(binary, workdir)
        try:
            yield OtlpExporter(endpoint=f"{server.endpoint}/v1/traces")
        finally:
            server.stop()
    elif name == "cloudwatch":
        from sink_servers import MotoServer

        from llm_audit_langchain.exporters import CloudWatchExporter

        for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            os.environ.setdefault(key, value)
        server = MotoServer(workdir)
        try:
            yield CloudWatchExporter("/bench", "s", endpoint_url=server.endpoint)
        finally:
            server.stop()
    elif name == "kafka":
        from sink_servers import TansuBroker

        from llm_audit_langchain.exporters import KafkaExporter

        server = TansuBroker(workdir)
        try:
            exporter = KafkaExporter("bench", server.bootstrap)
            yield exporter
            exporter.shutdown(10)
        finally:
            server.stop()
    else:
        raise SystemExit(f"unknown sink {name!r}; choose from {', '.join(SINKS)}")


def measure(exporter: Any, batches: list[list[AuditEvent]]) -> tuple[float, float, bool]:
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        exporter.export(batch)
    flushed = bool(exporter.force_flush(60))
    return time.perf_counter() - wall, time.process_time() - cpu, flushed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--sinks", default=",".join(SINKS))
    args = parser.parse_args(argv)
    events = workload(recorded_run(), args.events)
    batches = [events[i:i + args.batch] for i in range(0, len(events), args.batch)]
    warmup = batches[:1]
    rows: list[tuple[str, float, float, bool]] = []
    for name in args.sinks.split(","):
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            exporter = stack.enter_context(sink(name.strip(), Path(tmp)))
            measure(exporter, [[e.model_copy(update={"event_id": uuid4().hex}) for e in b]
                               for b in warmup])
            wall, cpu, flushed = measure(exporter, batches)
            rows.append((name, wall, cpu, flushed))
    # The default sink is the yardstick: "x jsonl" is how much longer a sink takes than it.
    base = next((wall for name, wall, _, _ in rows if name == "jsonl"), None)
    print(f"{len(events)} events in batches of {args.batch}; "
          f"{sum(len(e.model_dump_json()) for e in events[:100]) / 100:.0f} JSON bytes/event")
    print(f"{'sink':<11}{'events/s':>12}{'cpu µs/ev':>11}{'x jsonl':>10}  flushed")
    for name, wall, cpu, flushed in rows:
        ratio = f"{wall / base:>10.1f}" if base else f"{'':>10}"
        print(f"{name:<11}{len(events) / wall:>12,.0f}{cpu / len(events) * 1e6:>11.1f}"
              f"{ratio}  {flushed}")


if __name__ == "__main__":
    main()
