"""MongoExporter against nx-27017 (a MongoDB wire-protocol server) started for the session:
documents, indexes and TTL, idempotent retries, outage, a stalled server, bad URIs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage
from store_events import synthetic_events
from store_servers import MongoServer, mongo_server

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter
from llm_audit_langchain.errors import ConfigError
from llm_audit_langchain.exporters import MongoExporter
from llm_audit_langchain.exporters.factory import exporters_from_config

__all__ = ["mongo_server"]

pymongo = pytest.importorskip("pymongo", reason="the mongo extra (pymongo) is not installed")


@pytest.fixture
def collection_name() -> str:
    return f"audit_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def exporter(mongo_server: MongoServer, collection_name: str) -> Iterator[MongoExporter]:
    store = MongoExporter(mongo_server.uri, collection=collection_name, timeout_s=2)
    yield store
    store.shutdown()


@pytest.fixture
def reader(mongo_server: MongoServer, collection_name: str) -> Iterator[Any]:
    client = pymongo.MongoClient(mongo_server.uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client["llm_audit"][collection_name]
    client.close()


def run_agent(handler: AuditCallbackHandler, times: int = 1) -> None:
    graph = weather_agent()
    for _ in range(times):
        graph.invoke({"messages": [HumanMessage("weather in Paris?")]},
                     config={"callbacks": [handler],
                             "metadata": {"user_id": "u-7", "department": "sales"}})


@pytest.mark.parametrize("uri", ["", "http://127.0.0.1:1", "mongodb://", "mongodb://h:notaport"])
def test_bad_uri_fails_at_construction_naming_the_variable(uri: str) -> None:
    with pytest.raises(ConfigError, match="AUDIT_MONGO_URI"):
        MongoExporter(uri)


def test_srv_uri_is_checked_without_a_dns_lookup() -> None:
    store = MongoExporter("mongodb+srv://cluster0.example.invalid/audit")  # .invalid never resolves
    store.shutdown()


def test_environment_selects_mongodb(mongo_server: MongoServer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "mongodb")
    monkeypatch.delenv("AUDIT_MONGO_URI", raising=False)
    with pytest.raises(ConfigError, match="AUDIT_MONGO_URI"):
        exporters_from_config(AuditConfig.from_env())
    monkeypatch.setenv("AUDIT_MONGO_URI", mongo_server.uri)
    (store,) = exporters_from_config(AuditConfig.from_env())
    assert isinstance(store, MongoExporter) and store.retention_days == 90


def test_agent_run_is_stored_as_documents(exporter: MongoExporter, reader: Any) -> None:
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[exporter, memory], config=fast_config())
    run_agent(handler)
    assert handler.flush(timeout=10)
    handler.shutdown(timeout=5)
    documents = {d["_id"]: d for d in reader.find()}
    assert set(documents) == {e.event_id for e in memory.events}
    for event in memory.events:
        document = documents[event.event_id]
        # a BSON date (millisecond precision), not a string
        assert document["timestamp"] == event.timestamp.replace(
            microsecond=event.timestamp.microsecond // 1000 * 1000)
        assert document["event_type"] == str(event.event_type)
        assert (document["trace_id"], document["model"]) == (event.trace_id, event.model)
        assert (document["user_id"], document["department"]) == ("u-7", "sales")
        assert document["data"].keys() == event.data.keys()


def test_indexes_and_ttl_are_created_idempotently(mongo_server: MongoServer,
                                                  collection_name: str, reader: Any) -> None:
    for days in (90, 90, 30):  # restarts, then a shorter retention
        store = MongoExporter(mongo_server.uri, collection=collection_name, retention_days=days)
        store.ensure_indexes()
        store.shutdown()
    indexes = reader.index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert {("user_id", "timestamp"), ("event_type", "timestamp"), ("trace_id",),
            ("timestamp",)} <= keys
    ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
    assert [spec["expireAfterSeconds"] for spec in ttl] == [30 * 86400]


def test_ttl_expires_old_documents(exporter: MongoExporter, reader: Any) -> None:
    old = [e.model_copy(update={"timestamp": datetime.now(UTC) - timedelta(days=200)})
           for e in synthetic_events(2)]
    recent = list(synthetic_events(2, seed=5))
    recent = [e.model_copy(update={"timestamp": datetime.now(UTC)}) for e in recent]
    exporter.export(old + recent)
    # nx-27017 has no TTL sweeper: it deletes expired documents when the collection is read.
    # Real MongoDB's sweeper runs every 60 s; either way they go without a delete from us.
    reader.count_documents({})
    assert sorted(d["_id"] for d in reader.find()) == sorted(e.event_id for e in recent)


def test_a_retried_batch_never_duplicates(exporter: MongoExporter, reader: Any) -> None:
    batch = list(synthetic_events(20))
    exporter.export(batch[:30])
    exporter.export(batch)  # the retry of a batch whose acknowledgement was lost
    assert sorted(d["_id"] for d in reader.find({}, {"_id": 1})) == sorted(
        e.event_id for e in batch)
    assert exporter.stats(storage=False)["duplicates_skipped"] == 30


def test_direct_mode_writes_with_majority_and_journal(mongo_server: MongoServer,
                                                      collection_name: str, reader: Any) -> None:
    store = MongoExporter(mongo_server.uri, collection=collection_name, write_mode="direct")
    concern = store._collection().write_concern
    assert concern.document == {"w": "majority", "j": True}
    store.export(list(synthetic_events(3)))
    store.shutdown()
    assert reader.count_documents({}) > 3


def test_outage_mid_run_delivers_everything_once(mongo_server: MongoServer,
                                                 collection_name: str, reader: Any) -> None:
    store = MongoExporter(mongo_server.uri, collection=collection_name, timeout_s=1)
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[store, memory], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.3))
    try:
        run_agent(handler, times=2)
        assert handler.flush(timeout=10)
        mongo_server.kill()
        run_agent(handler, times=3)  # the agent runs on while the store is down
        assert not handler.flush(timeout=1.5)
        mongo_server.start()
        assert handler.flush(timeout=30)
    finally:
        handler.shutdown(timeout=5)
    ids = [d["_id"] for d in reader.find({}, {"_id": 1})]
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.event_id for e in memory.events}
    stats = handler.stats()["exporters"]["mongodb"]
    assert stats["failed"] >= 1 and stats["dropped"] == 0


def test_stalled_server_never_blocks_the_agent(mongo_server: MongoServer,
                                               collection_name: str, reader: Any) -> None:
    store = MongoExporter(mongo_server.uri, collection=collection_name, timeout_s=0.5)
    store.ensure_indexes()
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[store, memory], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.3))
    finished = threading.Event()
    mongo_server.pause()  # accepts nothing, answers nothing
    try:
        thread = threading.Thread(target=lambda: (run_agent(handler, times=5), finished.set()))
        thread.start()
        assert finished.wait(60)  # every run returned while the server was stalled
        thread.join()
        for _ in range(200):  # until the worker has met the stalled server
            if store.stats(storage=False)["failed"]:
                break
            time.sleep(0.05)
    finally:
        mongo_server.resume()
    try:
        assert handler.flush(timeout=30)
    finally:
        handler.shutdown(timeout=5)
    assert sorted(d["_id"] for d in reader.find({}, {"_id": 1})) == sorted(
        e.event_id for e in memory.events)
    assert store.stats(storage=False)["failed"] >= 1


def test_store_kpis(exporter: MongoExporter) -> None:
    exporter.export(list(synthetic_events(50)))
    kpis = exporter.stats()
    assert kpis["events_written"] == kpis["rows"] > 200
    assert kpis["write_latency_p95_ms"] > 0 and kpis["writes_per_minute"] >= kpis["rows"]
    assert kpis["size_mb"] > 0 and kpis["index_size_mb"] is not None
    assert kpis["levels"]["size_mb"] == "ok"
