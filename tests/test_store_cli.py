"""``llm-audit stats --from`` and ``llm-audit show --from`` against real stores."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from store_events import assert_same, synthetic_events
from store_servers import MongoServer, PostgresServer, mongo_server, postgres_server

from llm_audit_langchain.events import AuditEvent
from llm_audit_langchain.exporters import JsonlExporter, MongoExporter, PostgresExporter
from llm_audit_langchain.inspect.cli import main
from llm_audit_langchain.inspect.stores import open_store

__all__ = ["mongo_server", "postgres_server"]

pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
pytest.importorskip("pymongo", reason="the mongo extra (pymongo) is not installed")


@pytest.fixture(scope="module")
def events() -> list[AuditEvent]:
    return list(synthetic_events(40, seed=3))


@pytest.fixture(scope="module")
def table() -> str:
    return f"cli_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sources(events: list[AuditEvent], table: str, postgres_server: PostgresServer,
            mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("cli-jsonl")
    exporters = (JsonlExporter(directory),
                 PostgresExporter(postgres_server.dsn, table=table, retention_days=None),
                 MongoExporter(mongo_server.uri, collection=table, retention_days=None))
    for exporter in exporters:
        exporter.export(events)
        exporter.shutdown()
    return {"jsonl": str(directory), "postgres": postgres_server.dsn,
            "mongodb": mongo_server.uri}


@pytest.mark.parametrize("backend", ["jsonl", "postgres", "mongodb"])
def test_stats_from_a_store_prints_its_report(backend: str, sources: dict[str, str], table: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--from", sources[backend], "--table", table, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["events"] == sum(1 for _ in synthetic_events(40, seed=3))
    assert printed["requests"] == 40
    store = open_store(sources[backend], table=table)
    try:
        expected = json.loads(json.dumps(store.report(), default=str))
    finally:
        store.close()
    assert_same(printed, expected)  # DuckDB sums in parallel: the last digit may differ
    assert main(["stats", "--from", sources[backend], "--table", table]) == 0
    text = capsys.readouterr().out
    assert "cost by model:" in text and "providers" in text


@pytest.mark.parametrize("backend", ["postgres", "mongodb"])
def test_show_from_a_store_prints_the_trace(backend: str, sources: dict[str, str], table: str,
                                            events: list[AuditEvent],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    trace_id = events[-1].trace_id
    assert main(["show", trace_id[:10], "--from", sources[backend], "--table", table,
                 "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["trace_id"] == trace_id
    assert sorted(e["event_id"] for e in shown["events"]) == sorted(
        e.event_id for e in events if e.trace_id == trace_id)
    assert main(["show", "0" * 32, "--from", sources[backend], "--table", table]) == 2
    assert "no events for trace" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["postgresql://a b@:x/", "mongodb://h:notaport"])
def test_bad_uri_is_a_clear_error(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--from", source]) == 2
    assert "--from" in capsys.readouterr().err


def test_unreachable_store_is_a_clear_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from store_servers import free_port

    source = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    assert main(["stats", "--from", source]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_retention_job_drops_expired_partitions(postgres_server: PostgresServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    name = f"ret_{uuid.uuid4().hex[:8]}"
    old = [e.model_copy(update={"timestamp": datetime.now(UTC) - timedelta(days=400)})
           for e in synthetic_events(2)]
    keeper = PostgresExporter(postgres_server.dsn, table=name, retention_days=None)
    keeper.export(old)
    keeper.shutdown()
    month = f"{name}_p{datetime.now(UTC) - timedelta(days=400):%Y%m}"
    argv = ["retention", "--from", postgres_server.dsn, "--table", name, "--json"]
    assert main([*argv, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["would_drop"] == [month]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dropped"] == [month] and month not in result["partitions"]
    assert postgres_server.sql(f"SELECT count(*) FROM {name}") == [(0,)]
