"""PostgresExporter against a real PostgreSQL 15 started for the session: records, idempotent
retries, outages, a blocked table, permissions, large fields, partitions and retention."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage
from store_events import synthetic_events
from store_servers import PostgresServer, postgres_server

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter
from llm_audit_langchain.errors import ConfigError
from llm_audit_langchain.events import event_to_dict
from llm_audit_langchain.exporters import PostgresExporter
from llm_audit_langchain.exporters.factory import exporters_from_config
from llm_audit_langchain.exporters.store_records import restore_large_field

__all__ = ["postgres_server"]

pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")


@pytest.fixture
def table() -> str:
    return f"audit_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def exporter(postgres_server: PostgresServer, table: str) -> Iterator[PostgresExporter]:
    store = PostgresExporter(postgres_server.dsn, table=table, statement_timeout_s=2)
    yield store
    store.shutdown()


def run_agent(handler: AuditCallbackHandler, user: str = "u-42", times: int = 1) -> None:
    graph = weather_agent()
    for _ in range(times):
        graph.invoke({"messages": [HumanMessage("weather in Paris?")]},
                     config={"callbacks": [handler],
                             "metadata": {"user_id": user, "department": "research"}})


def stored_ids(server: PostgresServer, table: str) -> list[str]:
    return [row[0] for row in server.sql(f"SELECT event_id FROM {table}")]  # type: ignore[misc]


# -- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize("dsn", ["", "host=127.0.0.1 port", "postgresql://a b@:x/"])
def test_bad_dsn_fails_at_construction_naming_the_variable(dsn: str) -> None:
    with pytest.raises(ConfigError, match="AUDIT_POSTGRES_DSN"):
        PostgresExporter(dsn)


def test_environment_selects_postgres_and_requires_a_dsn(postgres_server: PostgresServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "postgres")
    monkeypatch.delenv("AUDIT_POSTGRES_DSN", raising=False)
    with pytest.raises(ConfigError, match="AUDIT_POSTGRES_DSN"):
        exporters_from_config(AuditConfig.from_env())
    monkeypatch.setenv("AUDIT_POSTGRES_DSN", postgres_server.dsn)
    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "30")
    (store,) = exporters_from_config(AuditConfig.from_env())
    assert isinstance(store, PostgresExporter)
    assert store.retention_days == 30


def test_bad_table_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="table"):
        PostgresExporter("postgresql://127.0.0.1/x", table="audit; drop table x")


# -- records ------------------------------------------------------------------------------

def test_agent_run_is_stored_with_queryable_columns_and_the_whole_event(
        postgres_server: PostgresServer, exporter: PostgresExporter, table: str) -> None:
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[exporter, memory], config=fast_config())
    run_agent(handler)
    assert handler.flush(timeout=10)
    handler.shutdown(timeout=5)
    events = {e.event_id: e for e in memory.events}
    rows = postgres_server.sql(
        f"SELECT event_id, \"timestamp\", event_type, trace_id, user_id, department, model, "
        f"status, document FROM {table}")
    assert len(rows) == len(events) > 5
    for event_id, timestamp, event_type, trace_id, user_id, department, model, status, doc \
            in rows:
        event = events[event_id]  # type: ignore[index]
        assert timestamp == event.timestamp
        assert (event_type, trace_id, model, status) == (
            str(event.event_type), event.trace_id, event.model, event.status)
        assert (user_id, department) == ("u-42", "research")  # copied from the root's metadata
        assert doc == orjson.loads(orjson.dumps(event_to_dict(event)))


def test_indexes_and_partition_are_created_idempotently(
        postgres_server: PostgresServer, table: str) -> None:
    for _ in range(2):  # a second process starting on the same table finds everything there
        store = PostgresExporter(postgres_server.dsn, table=table)
        store.ensure_schema()
        store.shutdown()
    indexes = {row[0] for row in postgres_server.sql(
        f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'")}
    assert {f"{table}_time_brin", f"{table}_user_time", f"{table}_type_time", f"{table}_trace",
            f"{table}_data_gin", f"{table}_pkey"} <= indexes
    month = datetime.now(UTC)
    assert postgres_server.sql(f"SELECT to_regclass('{table}_p{month:%Y%m}') IS NOT NULL") == [
        (True,)]


def test_a_retried_batch_never_duplicates(postgres_server: PostgresServer,
                                          exporter: PostgresExporter, table: str) -> None:
    batch = list(synthetic_events(20))
    exporter.export(batch)
    exporter.export(batch[5:])  # the pipeline retries a batch whose commit reply was lost
    ids = stored_ids(postgres_server, table)
    assert sorted(ids) == sorted(e.event_id for e in batch)
    assert exporter.stats(storage=False)["duplicates_skipped"] == len(batch) - 5


def test_direct_mode_stores_the_same_records(postgres_server: PostgresServer, table: str) -> None:
    store = PostgresExporter(postgres_server.dsn, table=table, write_mode="direct")
    batch = list(synthetic_events(5))
    store.export(batch)
    store.export(batch)
    store.shutdown()
    assert sorted(stored_ids(postgres_server, table)) == sorted(e.event_id for e in batch)


# -- failures -----------------------------------------------------------------------------

def test_outage_mid_run_delivers_everything_once(postgres_server: PostgresServer,
                                                 table: str) -> None:
    store = PostgresExporter(postgres_server.dsn, table=table, connect_timeout_s=1)
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[store, memory], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.2))
    try:
        run_agent(handler, times=2)
        assert handler.flush(timeout=10)
        postgres_server.kill()
        run_agent(handler, times=3)  # the agent runs on while the store is down
        assert not handler.flush(timeout=1.0)
        postgres_server.start()
        assert handler.flush(timeout=30)
    finally:
        handler.shutdown(timeout=5)
        postgres_server.wait_ready()
    ids = stored_ids(postgres_server, table)
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.event_id for e in memory.events}
    stats = handler.stats()["exporters"]["postgres"]
    assert stats["failed"] >= 1 and stats["retried"] >= 1 and stats["dropped"] == 0


def test_connection_killed_mid_run_is_reopened(postgres_server: PostgresServer,
                                               exporter: PostgresExporter, table: str) -> None:
    events = list(synthetic_events(30))
    exporter.export(events[:40])
    postgres_server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'llm-audit-langchain'")
    with pytest.raises(Exception):  # whatever psycopg raises, the pipeline retries
        exporter.export(events[40:])
    exporter.export(events[40:])
    exporter.export(events[:40])
    ids = stored_ids(postgres_server, table)
    assert sorted(ids) == sorted(e.event_id for e in events)
    kpis = exporter.stats(storage=False)
    assert kpis["failed"] == 1 and kpis["retried"] == 1


def test_blocked_table_never_blocks_the_agent(postgres_server: PostgresServer,
                                              exporter: PostgresExporter, table: str) -> None:
    exporter.ensure_schema()
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[exporter, memory], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.2))
    import psycopg

    locker = psycopg.connect(postgres_server.dsn)
    try:
        locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # a very slow store
        finished = threading.Event()

        def agent() -> None:
            run_agent(handler, times=5)
            finished.set()

        thread = threading.Thread(target=agent)
        thread.start()
        assert finished.wait(60)  # every run returned while the table was still locked
        assert not stored_ids_nowait(postgres_server, table)
        locker.rollback()
        assert handler.flush(timeout=30)
        thread.join()
    finally:
        locker.close()
        handler.shutdown(timeout=5)
    ids = stored_ids(postgres_server, table)
    assert sorted(ids) == sorted(e.event_id for e in memory.events)


def stored_ids_nowait(server: PostgresServer, table: str) -> list[Any]:
    """Rows visible now, or [] when the table is locked (reading it would wait)."""
    import psycopg

    try:
        return server.sql(f"SET lock_timeout = 100; SELECT event_id FROM {table}")
    except psycopg.errors.LockNotAvailable:
        return []


def test_permission_error_is_counted_not_raised_into_the_agent(
        postgres_server: PostgresServer, table: str) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    postgres_server.sql(f"CREATE ROLE {role} LOGIN")
    postgres_server.sql(f"REVOKE CREATE ON SCHEMA public FROM {role}, PUBLIC")
    store = PostgresExporter(postgres_server.dsn_for(role), table=table)
    handler = AuditCallbackHandler(exporters=[store], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.1))
    try:
        run_agent(handler)  # returns normally
        assert not handler.flush(timeout=1.0)
    finally:
        handler.shutdown(timeout=1)
        postgres_server.sql("GRANT CREATE ON SCHEMA public TO PUBLIC")
    kpis = store.stats(storage=False)
    assert kpis["failed"] >= 1
    assert "permission denied" in (kpis["last_error"] or "")


# -- large fields, retention, KPIs ---------------------------------------------------------

def test_large_fields_are_compressed_or_truncated_with_a_marker(
        postgres_server: PostgresServer, table: str) -> None:
    import random

    store = PostgresExporter(postgres_server.dsn, table=table, max_field_size=1024)
    compressible = "lorem ipsum " * 2000
    rng = random.Random(1)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5000))
    (event,) = list(synthetic_events(1))[-1:]
    event.data["answer"], event.data["noise"] = compressible, noise
    store.export([event])
    store.shutdown()
    ((data,),) = postgres_server.sql(f"SELECT document->'data' FROM {table}")
    assert isinstance(data, dict)
    answer, kept_noise = data["answer"], data["noise"]
    assert answer["llm_audit_large_field"] == "compressed"
    assert answer["original_bytes"] == len(compressible)
    assert answer["sha256"] == hashlib.sha256(compressible.encode()).hexdigest()
    assert restore_large_field(answer) == compressible
    assert kept_noise["llm_audit_large_field"] == "truncated"
    assert kept_noise["original_bytes"] == 5000 and kept_noise["head"] == noise[:1024]
    assert store.stats(storage=False)["fields_truncated"] == 1


def test_retention_drops_whole_old_partitions(postgres_server: PostgresServer,
                                              table: str) -> None:
    now = datetime.now(UTC)
    old = [e.model_copy(update={"timestamp": now - timedelta(days=200)})
           for e in synthetic_events(3)]
    recent = list(synthetic_events(3, seed=99))
    keeper = PostgresExporter(postgres_server.dsn, table=table, retention_days=None)
    keeper.export(old + recent)
    keeper.shutdown()
    old_partition = f"{table}_p{now - timedelta(days=200):%Y%m}"
    store = PostgresExporter(postgres_server.dsn, table=table, retention_days=90)
    assert old_partition in store.partitions()
    assert store.apply_retention(now) == [old_partition]
    assert old_partition not in store.partitions()
    assert sorted(stored_ids(postgres_server, table)) == sorted(e.event_id for e in recent)
    assert store.apply_retention(now) == []
    store.export(old)  # late events of an expired month: stored, then dropped by the next run
    assert old_partition not in store.partitions()
    store.shutdown()


def test_store_kpis(postgres_server: PostgresServer, exporter: PostgresExporter) -> None:
    exporter.export(list(synthetic_events(50)))
    kpis = exporter.stats()
    assert kpis["events_written"] == kpis["rows"] > 200
    assert kpis["writes_per_minute"] >= kpis["rows"]
    assert kpis["write_latency_p95_ms"] > 0
    assert kpis["size_mb"] > 0 and kpis["index_size_mb"] > 0
    assert kpis["growth_mb_per_day"] > 0 and kpis["bytes_per_event"] > 0
    assert set(kpis["levels"]) == {"write_latency_p95_ms", "size_mb", "growth_mb_per_month"}
    assert kpis["levels"]["size_mb"] == "ok"


def test_store_kpis_as_opentelemetry_metrics(exporter: PostgresExporter) -> None:
    from llm_audit_langchain.otel import AuditMetrics, observe_store

    metrics = AuditMetrics(otlp=False)
    observe_store(exporter, metrics.provider)
    events = list(synthetic_events(10))
    exporter.export(events)
    snapshot = metrics.snapshot()
    metrics.shutdown()
    assert snapshot["audit_store_events_written"]["total"] == len(events)
    assert snapshot["audit_store_failed_writes"]["total"] == 0
    assert snapshot["audit_store_size"]["total"] > 0
    assert snapshot["audit_store_write_latency_p95"]["points"][0]["attributes"] == {
        "llm_audit.store": "postgres"}


def test_a_writer_role_without_create_writes_to_a_provisioned_table(
        postgres_server: PostgresServer, table: str) -> None:
    admin = PostgresExporter(postgres_server.dsn, table=table)
    admin.ensure_schema(months_ahead=1)  # what a DBA runs once
    admin.shutdown()
    role = f"writer_{uuid.uuid4().hex[:8]}"
    postgres_server.sql(f"CREATE ROLE {role} LOGIN")
    postgres_server.sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    postgres_server.sql(f"GRANT SELECT, INSERT, UPDATE ON {table} TO {role}")
    postgres_server.sql(f"GRANT SELECT ON {table}_template TO {role}")
    try:
        writer = PostgresExporter(postgres_server.dsn_for(role), table=table,
                                  retention_days=None)
        events = [e.model_copy(update={"timestamp": datetime.now(UTC)})
                  for e in synthetic_events(3)]
        writer.export(events)
        writer.export(events)
        writer.shutdown()
    finally:
        postgres_server.sql("GRANT CREATE ON SCHEMA public TO PUBLIC")
    assert sorted(stored_ids(postgres_server, table)) == sorted(e.event_id for e in events)
