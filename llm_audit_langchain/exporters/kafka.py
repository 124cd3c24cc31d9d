"""``KafkaExporter``: every event as one Kafka record (extra ``kafka``, confluent-kafka).

    exporter = KafkaExporter("llm-audit-events", "broker1:9092,broker2:9092")

or ``AUDIT_EXPORTER=kafka AUDIT_KAFKA_BOOTSTRAP=broker1:9092 AUDIT_KAFKA_TOPIC=llm-audit-events``.

- Key: the trace id, so one trace's events land in one partition, in order.
- Value: the event as JSON (the same object as a JSONL line, event model v3).
- Headers: ``event_type``, ``event_version``, ``content-type``, and ``model`` when known.
- Idempotent producer (``acks=all``): the broker drops duplicates of a retried send.
- Delivery reports are counted (``stats()``: produced, delivered, failed, resent...).
- The local buffer is bounded (``max_buffered`` records not yet acknowledged): when full,
  ``export`` fails and the pipeline keeps the batch in its own bounded backlog and retries.
- A producer that can no longer deliver (a fatal error; or records timing out, as after a broker
  restart that lost the producer's id, ``UNKNOWN_PRODUCER_ID``) is replaced by a new one, and
  every record not acknowledged is sent again, in its original order. A record the broker may
  have stored before timing out can thus arrive twice: delivery is at least once.
- ``force_flush(timeout)`` returns within ``timeout`` (True when everything is acknowledged).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from ..errors import ConfigError
from ..events import EVENT_VERSION, AuditEvent, event_to_dict
from .base import ExportResult
from .jsonl import json_safe

if TYPE_CHECKING:
    from ..config import AuditConfig

logger = logging.getLogger("llm_audit_langchain")

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SERVER = re.compile(r"^[^\s,:]+:\d{1,5}$")
# Errors after which this producer will not deliver again: replace it and resend.
_REBUILD_CODES = {KafkaError._MSG_TIMED_OUT, KafkaError.UNKNOWN_PRODUCER_ID,
                  KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.INVALID_PRODUCER_EPOCH,
                  KafkaError._FATAL}


@dataclass(frozen=True, slots=True)
class _Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


class KafkaExporter:
    """Produces events to a Kafka topic.

    Args:
        topic: the topic (created by the broker on first use if it auto-creates topics).
        bootstrap_servers: ``host:port[,host:port...]``.
        producer_config: extra librdkafka settings (``compression.type``, ``security.protocol``,
            ``sasl.*``...), applied over ours.
        max_buffered: records sent but not yet acknowledged, at most.
        delivery_timeout_s: how long one record may wait for its acknowledgement before the
            producer is replaced and the record resent (librdkafka's ``message.timeout.ms``).
        linger_ms: how long the producer waits to fill a request.
    """

    name = "kafka"

    def __init__(self, topic: str, bootstrap_servers: str, *,
                 producer_config: dict[str, Any] | None = None, max_buffered: int = 100_000,
                 delivery_timeout_s: float = 30.0, linger_ms: int = 20) -> None:
        if not isinstance(topic, str) or not _TOPIC.match(topic) or topic in (".", ".."):
            raise ConfigError(f"Kafka topic {topic!r}: 1-249 of letters, digits, '.', '_', '-' "
                              "(AUDIT_KAFKA_TOPIC)")
        servers = [s.strip() for s in (bootstrap_servers or "").split(",") if s.strip()]
        if not servers or not all(_SERVER.match(s) for s in servers):
            raise ConfigError(f"Kafka bootstrap servers {bootstrap_servers!r}: host:port, "
                              "comma-separated (AUDIT_KAFKA_BOOTSTRAP)")
        if max_buffered < 1 or delivery_timeout_s <= 0:
            raise ConfigError("KafkaExporter: max_buffered and delivery_timeout_s must be > 0")
        self.topic = topic
        self.bootstrap_servers = ",".join(servers)
        self.max_buffered = max_buffered
        self._config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"llm-audit-{socket.gethostname()}-{os.getpid()}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "message.timeout.ms": int(delivery_timeout_s * 1000),
            "queue.buffering.max.messages": max(max_buffered, 1_000),
            # librdkafka's own log lines go to our logger, never straight to the host's stderr.
            "logger": logging.getLogger("llm_audit_langchain.kafka"),
            **(producer_config or {}),
            "error_cb": self._on_error,
        }
        self._lock = threading.RLock()
        self._unacked: dict[int, _Record] = {}  # insertion order == send order
        self._next_seq = 0
        self._generation = 0
        self._rebuild = False
        self._closed = False
        self._logged: set[str] = set()
        self._stats = {"produced": 0, "delivered": 0, "failed": 0, "resent": 0,
                       "rejected": 0, "producers_rebuilt": 0, "buffer_full": 0}
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        try:
            return Producer(self._config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"Kafka producer settings: {exc}") from exc

    def stats(self) -> dict[str, int]:
        """``produced`` (handed to the producer, resends excluded), ``delivered`` (acknowledged),
        ``failed`` (delivery reports with an error), ``resent``, ``rejected`` (permanent errors:
        dropped), ``producers_rebuilt``, ``buffer_full`` (exports refused), ``unacked``."""
        with self._lock:
            if not self._closed:
                self._producer.poll(0)  # serve pending delivery reports first
            return {**self._stats, "unacked": len(self._unacked)}

    # -- exporter protocol -------------------------------------------------------------------

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult | None:
        with self._lock:
            if self._closed:
                return None
            self._producer.poll(0)
            self._rebuild_if_needed()
            if len(self._unacked) + len(batch) > self.max_buffered:
                self._stats["buffer_full"] += 1
                return ExportResult.FAILURE  # the pipeline keeps the batch and retries later
            for event in batch:
                seq = self._next_seq
                self._next_seq += 1
                self._unacked[seq] = record = _record(event)
                self._stats["produced"] += 1
                self._produce(seq, record)
            self._producer.poll(0)
        return None

    def force_flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._closed:
                    return not self._unacked
                self._producer.poll(0)
                self._rebuild_if_needed()
                if not self._unacked:
                    return True
                producer = self._producer
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            # In short steps, so a producer replaced meanwhile is noticed.
            producer.flush(0.2 if remaining is None else min(remaining, 0.2))

    def shutdown(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for acknowledgements, then drop what is left (still counted in
        ``stats()["unacked"]``) and close the producer, so no thread of it outlives us."""
        with self._lock:
            if self._closed:
                return
        self.force_flush(5.0 if timeout is None else timeout)
        with self._lock:
            self._closed = True
            if self._unacked:
                logger.warning("KafkaExporter: %d records not acknowledged at shutdown",
                               len(self._unacked))
            self._generation += 1  # reports of the purge below are not deliveries
            with contextlib.suppress(KafkaException, RuntimeError):
                self._producer.purge(in_queue=True, in_flight=True)
                self._producer.flush(0)
                self._producer.close()

    def after_fork(self) -> None:
        """In a forked child: librdkafka's threads did not survive the fork; a new producer."""
        self._lock = threading.RLock()
        self._generation += 1
        self._producer = self._new_producer()

    # -- delivery ------------------------------------------------------------------------------

    def _produce(self, seq: int, record: _Record) -> None:
        callback = partial(self._on_delivery, self._generation, seq)
        for _ in range(50):
            try:
                self._producer.produce(self.topic, key=record.key, value=record.value,
                                       headers=record.headers, on_delivery=callback)
                return
            except BufferError:
                self._producer.poll(0.1)  # librdkafka's queue is full: let it drain
        self._rebuild = True  # could not queue it: resent with the rest on the next rebuild

    def _on_delivery(self, generation: int, seq: int, error: KafkaError | None,
                     message: Any) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a report of a replaced producer: its records are resent
            if error is None:
                if self._unacked.pop(seq, None) is not None:
                    self._stats["delivered"] += 1
                return
            self._stats["failed"] += 1
            if error.fatal() or error.code() in _REBUILD_CODES or error.retriable():
                self._rebuild = True
            else:
                self._unacked.pop(seq, None)
                self._stats["rejected"] += 1
            self._log_once(error)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            with self._lock:
                self._rebuild = True
        self._log_once(error)

    def _rebuild_if_needed(self) -> None:
        if not self._rebuild or self._closed:
            return
        self._rebuild = False
        old = self._producer
        self._generation += 1
        try:
            self._producer = self._new_producer()
        except ConfigError:  # pragma: no cover - the same settings worked at construction
            self._producer, self._rebuild = old, True
            return
        self._stats["producers_rebuilt"] += 1
        with contextlib.suppress(KafkaException, RuntimeError):  # a fatal producer may refuse
            old.purge(in_queue=True, in_flight=True)
        for seq, record in list(self._unacked.items()):
            self._stats["resent"] += 1
            self._produce(seq, record)

    def _log_once(self, error: KafkaError) -> None:
        name = error.name()
        if name not in self._logged:
            self._logged.add(name)
            logger.warning("KafkaExporter (%s): %s (logged once; counted in stats)",
                           self.topic, error)


def _record(event: AuditEvent) -> _Record:
    record = event_to_dict(event)
    try:
        value = orjson.dumps(record)
    except (TypeError, ValueError, orjson.JSONEncodeError):
        value = orjson.dumps(json_safe(record))
    headers: list[tuple[str, str | bytes | None]] = [("event_type", str(event.event_type).encode()),
               ("event_version", (event.event_version or EVENT_VERSION).encode()),
               ("content-type", b"application/json")]
    if event.model:
        headers.append(("model", event.model.encode()))
    return _Record(event.trace_id.encode(), value, headers)


def kafka_from_config(config: AuditConfig) -> KafkaExporter:
    """``AUDIT_EXPORTER=kafka``: the exporter ``AUDIT_KAFKA_BOOTSTRAP`` and ``_TOPIC`` describe."""
    if not config.kafka_bootstrap:
        raise ConfigError("AUDIT_EXPORTER=kafka needs AUDIT_KAFKA_BOOTSTRAP (host:port,...)")
    return KafkaExporter(config.kafka_topic, config.kafka_bootstrap)
