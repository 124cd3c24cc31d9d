"""The audit stores: events per second batched vs direct, write latency p95, bytes per event,
and analytics query time, for PostgreSQL and MongoDB, against JSONL in the same run.

    python bench/bench_stores.py          # 40k events per write mode, 1M for analytics
    python bench/bench_stores.py --events 20000 --analytics-events 200000

Starts its own PostgreSQL 15 (``/usr/lib/postgresql/15/bin``) and nx-27017 on free ports (the
tests' fixtures), and kills them at the end. Events are synthetic agent runs (two LLM calls, a
tool call, sometimes an error, retry or guardrail; ~1.2 KB of JSON each), written with each
exporter's ``export`` in batches of ``AUDIT_BATCH_SIZE`` (512) on one thread: the worker's view.

- batched / direct: the exporter's two write modes (PostgreSQL ``synchronous_commit`` off / on;
  MongoDB ``w=1`` / ``w=majority, j=true``); "direct-1" is direct with one event per batch,
  what a store written synchronously per event would cost.
- write p95: per ``export`` call (one batch), from ``exporter.stats()``.
- agent: CPU per agent run (2 LLM calls, 1 tool call, every trace kept) with JSONL or a store
  as the exporter: what a store adds to the process, worker thread included.
- analytics: wall time of the whole report (``inspect.stores``) over ``--analytics-events``
  (JSONL, PostgreSQL) and ``--mongo-analytics-events`` (nx-27017 aggregates in Python, about
  a millisecond per document per pipeline: its times say nothing about a real mongod).

Note: the test PostgreSQL runs with ``fsync=off`` (a throwaway cluster), so "direct" there
measures the WAL-flush request path without the disk flush; on a real server direct costs more.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from graphs import weather_agent
from langchain_core.messages import HumanMessage
from store_events import synthetic_events
from store_servers import MongoServer, PostgresServer

from llm_audit_langchain import AuditCallbackHandler, AuditConfig
from llm_audit_langchain.events import AuditEvent
from llm_audit_langchain.exporters import (
    JsonlExporter,
    MongoExporter,
    PostgresExporter,
)
from llm_audit_langchain.inspect.stores import open_store

BATCH = 512


def _events(count: int, seed: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for event in synthetic_events(count // 4 + 1, seed=seed, days=30):
        events.append(event)
        if len(events) >= count:
            break
    return events


def _write(exporter: object, events: list[AuditEvent], batch: int) -> float:
    """Seconds to export ``events``; a failed batch is retried, as the pipeline would."""
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        for attempt in range(5):
            try:
                exporter.export(events[start:start + batch])  # type: ignore[attr-defined]
                break
            except Exception as exc:
                print(f"  (batch failed, retrying: {type(exc).__name__})")
                if attempt == 4:
                    raise
    return time.perf_counter() - started


def _row(name: str, mode: str, events: int, seconds: float, stats: dict[str, object] | None,
         baseline: float | None) -> None:
    rate = events / seconds
    p95 = stats.get("write_latency_p95_ms") if stats else None
    per_event = stats.get("bytes_per_event") if stats else None
    ratio = f"{rate / baseline:5.2f}x" if baseline else "  1.00x"
    print(f"{name:<9} {mode:<9} {events:>8} ev {rate:>10,.0f} ev/s {ratio} of jsonl   "
          f"p95 {'' if p95 is None else f'{p95:8.1f} ms'}   "
          f"{'' if per_event is None else f'{per_event:6.0f} B/event'}")


def ingest(pg: PostgresServer, mongo: MongoServer, root: Path, count: int,
           mongo_count: int) -> None:
    events = _events(count, seed=1)
    jsonl = JsonlExporter(root / "ingest")
    baseline = count / _write(jsonl, events, BATCH)
    _row("jsonl", "batched", count, count / baseline, None, None)
    small = events[: max(500, count // 20)]
    for mode, batch, sample in (("batched", BATCH, events), ("direct", BATCH, events),
                                ("direct-1", 1, small)):
        store = PostgresExporter(pg.dsn, table=f"bench_{mode.replace('-', '_')}",
                                 write_mode="batched" if mode == "batched" else "direct")
        store.ensure_schema()
        seconds = _write(store, sample, batch)
        _row("postgres", mode, len(sample), seconds, store.stats(), baseline)
        store.shutdown()
    slice_ = events[:mongo_count]
    for mode, batch, sample in (("batched", BATCH, slice_), ("direct", BATCH, slice_),
                                ("direct-1", 1, small[: mongo_count // 10])):
        mongo_store = MongoExporter(mongo.uri, collection=f"bench_{mode.replace('-', '_')}",
                                    write_mode="batched" if mode == "batched" else "direct",
                                    timeout_s=60)
        mongo_store.ensure_indexes()
        seconds = _write(mongo_store, sample, batch)
        _row("mongodb", mode, len(sample), seconds, mongo_store.stats(), baseline)
        mongo_store.shutdown()


def analytics(pg: PostgresServer, mongo: MongoServer, root: Path, count: int,
              mongo_count: int) -> None:
    """Stream ``count`` events into JSONL and PostgreSQL (and the first ``mongo_count`` into
    MongoDB), then time the full report on each."""
    jsonl = JsonlExporter(root / "analytics")
    postgres = PostgresExporter(pg.dsn, table="bench_analytics", retention_days=None)
    mongodb = MongoExporter(mongo.uri, collection="bench_analytics", retention_days=None,
                            timeout_s=120)
    loaded = {"jsonl": 0, "postgres": 0, "mongodb": 0}
    load_s = dict.fromkeys(loaded, 0.0)
    chunk: list[AuditEvent] = []
    generator = synthetic_events(count // 4 + 1, seed=2, days=60)
    while loaded["jsonl"] < count:
        chunk = [e for _, e in zip(range(min(4096, count - loaded["jsonl"])), generator,
                                   strict=False)]
        if not chunk:
            break
        targets = [("jsonl", jsonl), ("postgres", postgres)]
        if loaded["mongodb"] < mongo_count:
            targets.append(("mongodb", mongodb))
        for name, exporter in targets:
            started = time.perf_counter()
            _write(exporter, chunk, len(chunk))
            load_s[name] += time.perf_counter() - started
            loaded[name] += len(chunk)
    sizes = {"postgres": postgres.stats()["bytes_per_event"],
             "mongodb": mongodb.stats()["bytes_per_event"]}
    for exporter in (jsonl, postgres, mongodb):
        exporter.shutdown()
    jsonl_bytes = sum(f.stat().st_size for f in (root / "analytics").glob("*.jsonl"))
    sizes["jsonl"] = jsonl_bytes / max(1, loaded["jsonl"])
    sources = {"jsonl": str(root / "analytics"), "postgres": pg.dsn, "mongodb": mongo.uri}
    for name, source in sources.items():
        store = open_store(source, table="bench_analytics")
        started = time.perf_counter()
        report = store.report()
        seconds = time.perf_counter() - started
        store.close()
        print(f"analytics {name:<9} {loaded[name]:>9,} events (loaded at "
              f"{loaded[name] / load_s[name]:>7,.0f} ev/s, {sizes[name] or 0:5.0f} B/event)  "
              f"full report {seconds:7.2f} s  ({report['requests']:,} requests)")


def agent_runs(pg: PostgresServer, mongo: MongoServer, root: Path, runs: int) -> None:
    """The agent's side: CPU time per run (all threads, so the worker's export counts) with
    every trace kept (``AUDIT_DEBUG``), JSONL vs a store as the only exporter, runs interleaved
    in rounds so machine noise hits each alike."""
    graph = weather_agent()
    message = {"messages": [HumanMessage("What is the weather in Paris?")]}
    sinks = {
        "jsonl": lambda: JsonlExporter(root / "agent"),
        "postgres": lambda: PostgresExporter(pg.dsn, table="bench_agent"),
        "mongodb": lambda: MongoExporter(mongo.uri, collection="bench_agent", timeout_s=60),
    }
    cpu: dict[str, list[float]] = {name: [] for name in sinks}
    for _ in range(5):
        for name, make in sinks.items():
            handler = AuditCallbackHandler(exporters=[make()],
                                           config=AuditConfig(debug=True, flush_interval_ms=50))
            started = time.process_time()
            for _ in range(runs):
                graph.invoke(message, config={"callbacks": [handler],
                                              "metadata": {"user_id": "u-1"}})
            handler.flush(timeout=120)
            cpu[name].append((time.process_time() - started) / runs * 1000)
            handler.shutdown(timeout=10)
    base = sorted(cpu["jsonl"])[2]
    for name, values in cpu.items():
        median = sorted(values)[2]
        print(f"agent     {name:<9} {median:6.2f} ms CPU per run (all threads, every trace "
              f"kept)  {median / base:5.2f}x of jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--mongo-events", type=int, default=10_000,
                        help="events per write mode into nx-27017 (a slow Python server)")
    parser.add_argument("--analytics-events", type=int, default=1_000_000)
    parser.add_argument("--agent-runs", type=int, default=40,
                        help="agent runs per round for the CPU-per-run comparison (0: skip)")
    parser.add_argument("--mongo-analytics-events", type=int, default=10_000,
                        help="nx-27017 is a Python test server: its aggregation takes ~1 ms "
                             "per document per pipeline, so it gets a slice")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="llm-audit-bench-"))
    pg, mongo = PostgresServer(root), MongoServer(root)
    try:
        pg.init()
        pg.start()
        mongo.start()
        print(f"batch size {BATCH}; PostgreSQL 15 (fsync=off test cluster); nx-27017")
        if args.agent_runs:
            agent_runs(pg, mongo, root, args.agent_runs)
        ingest(pg, mongo, root, args.events, args.mongo_events)
        if args.analytics_events:
            analytics(pg, mongo, root, args.analytics_events, args.mongo_analytics_events)
    finally:
        mongo.kill()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
