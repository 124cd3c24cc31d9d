"""One analytics interface, three back-ends: identical events loaded into JSONL (DuckDB),
PostgreSQL and MongoDB (nx-27017) give the same report, and every back-end reads a trace."""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest
from store_events import assert_same, synthetic_events
from store_servers import MongoServer, PostgresServer, mongo_server, postgres_server

from llm_audit_langchain.errors import TraceNotFoundError
from llm_audit_langchain.events import AuditEvent
from llm_audit_langchain.exporters import JsonlExporter, MongoExporter, PostgresExporter
from llm_audit_langchain.inspect.stores import AuditStore, open_store

__all__ = ["mongo_server", "postgres_server"]

pytest.importorskip("duckdb", reason="the analytics extra (duckdb) is not installed")
pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
pytest.importorskip("pymongo", reason="the mongo extra (pymongo) is not installed")

TRACES = 300


@pytest.fixture(scope="module")
def events() -> list[AuditEvent]:
    return list(synthetic_events(TRACES, seed=11))


@pytest.fixture(scope="module")
def stores(events: list[AuditEvent], tmp_path_factory: pytest.TempPathFactory,
           postgres_server: PostgresServer, mongo_server: MongoServer
           ) -> dict[str, AuditStore]:
    name = f"analytics_{uuid.uuid4().hex[:8]}"
    directory = tmp_path_factory.mktemp("jsonl")
    jsonl = JsonlExporter(directory)
    postgres = PostgresExporter(postgres_server.dsn, table=name, retention_days=None)
    mongo = MongoExporter(mongo_server.uri, collection=name, retention_days=None)
    for exporter in (jsonl, postgres, mongo):
        for start in range(0, len(events), 256):
            exporter.export(events[start:start + 256])
        exporter.shutdown()
    opened: dict[str, AuditStore] = {
        "jsonl": open_store(str(directory)),
        "postgres": open_store(postgres_server.dsn, table=name),
        "mongodb": open_store(mongo_server.uri, table=name),
    }
    yield opened  # type: ignore[misc]
    for store in opened.values():
        store.close()


def test_three_backends_give_the_same_answers(stores: dict[str, AuditStore]) -> None:
    reports = {name: store.report(top=5) for name, store in stores.items()}
    assert_same(reports["jsonl"], reports["postgres"], "jsonl vs postgres")
    assert_same(reports["jsonl"], reports["mongodb"], "jsonl vs mongodb")


def test_the_report_matches_the_events(stores: dict[str, AuditStore],
                                       events: list[AuditEvent]) -> None:
    """The shared answer is also the right one, computed here in plain Python."""
    report = stores["postgres"].report(top=3)
    llm = [e for e in events if str(e.event_type) in ("llm.invoke", "llm.error")]
    assert report["events"] == len(events)
    assert report["requests"] == report["traces"] == TRACES
    assert report["events_by_type"] == dict(sorted(Counter(
        str(e.event_type) for e in events).items()))
    assert math.isclose(report["total_cost_usd"], sum(e.cost_usd or 0 for e in events))
    by_model = {row["key"]: row for row in report["latency_ms"]["model"]}
    for model in {e.model for e in llm}:
        latencies = sorted(e.latency_ms for e in llm if e.model == model)  # type: ignore[misc]
        assert by_model[model]["count"] == len(latencies)
        assert by_model[model]["p50"] == latencies[math.ceil(0.5 * len(latencies)) - 1]
        assert by_model[model]["p99"] == latencies[math.ceil(0.99 * len(latencies)) - 1]
    assert sum(r["requests"] for r in report["requests_by_hour"]) == TRACES
    assert sum(r["requests"] for r in report["tokens_per_request"]) == TRACES
    users = {row["key"] for row in report["cost_by"]["user"]}
    assert users == {"u-1", "u-2", "u-3", "u-4", "u-5"}
    costs = [t["cost_usd"] for t in report["top_traces"]]
    assert len(costs) == 3 and costs == sorted(costs, reverse=True)
    errors = sum(1 for e in llm if e.status == "error")
    assert report["security"]["rate_limited"] == errors > 0  # RateLimitError in the fixtures
    assert report["providers"][0].keys() >= {"provider", "calls", "error_rate", "p95_ms"}
    texts = [str(e.data.get("text", "")) + str(e.data.get("plain", "")) for e in events]
    expected = Counter(kind for text in texts for kind in re.findall(r"\[REDACTED_([A-Z_]+)", text))
    assert report["security"]["redactions_by_kind"] == dict(sorted(expected.items()))
    assert set(expected) == {"EMAIL", "CREDIT_CARD", "PHONE", "SECRET"}


def test_every_backend_reads_a_trace(stores: dict[str, AuditStore],
                                     events: list[AuditEvent]) -> None:
    wanted = events[0].trace_id
    expected = sorted(e.event_id for e in events if e.trace_id == wanted)
    for name, store in stores.items():
        found = store.trace_events(wanted[:12])
        assert sorted(e.event_id for e in found) == expected, name
        assert {e.trace_id for e in found} == {wanted}
        with pytest.raises(TraceNotFoundError):
            store.trace_events("ffffffffffffffffffffffffffffff00")


def test_empty_stores_answer_with_empty_reports(tmp_path: Path,
                                                postgres_server: PostgresServer,
                                                mongo_server: MongoServer) -> None:
    name = f"empty_{uuid.uuid4().hex[:8]}"
    PostgresExporter(postgres_server.dsn, table=name).ensure_schema()
    reports = []
    for source in (str(tmp_path), postgres_server.dsn, mongo_server.uri):
        store = open_store(source, table=name)
        reports.append(store.report())
        store.close()
    for report in reports:
        assert report["events"] == 0 and report["top_traces"] == []
    assert_same(reports[0], reports[1])
    assert_same(reports[0], reports[2])
