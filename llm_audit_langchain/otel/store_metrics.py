"""The audit store's KPIs as OpenTelemetry metrics, read from ``exporter.stats()``.

    metrics = AuditMetrics()
    store = PostgresExporter(dsn)
    observe_store(store, metrics.provider)
    metrics.snapshot()["audit_store_write_latency_p95"]

Instruments (attribute ``llm_audit.store``: the exporter's name): observable counters
``audit_store_events_written``, ``audit_store_failed_writes``, ``audit_store_retried_writes``;
observable gauges ``audit_store_writes_per_minute``, ``audit_store_write_latency_p95`` (ms),
``audit_store_size`` and ``audit_store_index_size`` (By), ``audit_store_growth`` (By/d). The size
figures query the database, so they are refreshed at most every ``storage_every_s`` seconds.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .exporter import SCOPE_NAME, _package_version


class StoreWithStats(Protocol):
    """An exporter with store KPIs (``MongoExporter``, ``PostgresExporter``)."""

    name: str

    def stats(self, *, storage: bool = True) -> dict[str, Any]: ...


class _Reader:
    """Counters on every collection; storage figures cached for ``every_s`` seconds."""

    def __init__(self, exporter: StoreWithStats, every_s: float) -> None:
        self._exporter = weakref.ref(exporter)
        self._every_s = every_s
        self._storage: dict[str, Any] = {}
        self._storage_at = float("-inf")
        self._lock = threading.Lock()
        self.attributes = {"llm_audit.store": exporter.name}

    def values(self) -> dict[str, Any]:
        exporter = self._exporter()
        if exporter is None:
            return {}
        with self._lock:
            if time.monotonic() - self._storage_at >= self._every_s:
                self._storage_at = time.monotonic()
                self._storage = exporter.stats(storage=True)
                return dict(self._storage)
        return {**self._storage, **exporter.stats(storage=False)}


def observe_store(exporter: StoreWithStats, meter_provider: MeterProvider, *,
                  storage_every_s: float = 60.0) -> None:
    """Register the store's instruments on ``meter_provider`` (the exporter is held weakly)."""
    reader = _Reader(exporter, storage_every_s)
    meter = meter_provider.get_meter(SCOPE_NAME, _package_version())

    def read(key: str, scale: float = 1.0) -> Callable[[CallbackOptions], list[Observation]]:
        def callback(options: CallbackOptions) -> list[Observation]:
            value = reader.values().get(key)
            if not isinstance(value, int | float):
                return []
            return [Observation(value * scale, reader.attributes)]

        return callback

    counter, gauge = meter.create_observable_counter, meter.create_observable_gauge
    counter("audit_store_events_written", [read("events_written")], "{event}",
            "Events the exporter stored (duplicates of retried batches excluded)")
    counter("audit_store_failed_writes", [read("failed")], "{call}", "Failed export calls")
    counter("audit_store_retried_writes", [read("retried")], "{call}",
            "Export calls retrying a failed one")
    gauge("audit_store_writes_per_minute", [read("writes_per_minute")], "{event}/min",
          "Events written in the last minute")
    gauge("audit_store_write_latency_p95", [read("write_latency_p95_ms")], "ms",
          "p95 latency of the last 1,024 export calls (one call writes one batch)")
    gauge("audit_store_size", [read("size_mb", 1e6)], "By", "Table or collection size")
    gauge("audit_store_index_size", [read("index_size_mb", 1e6)], "By", "Index size")
    gauge("audit_store_growth", [read("growth_mb_per_day", 1e6)], "By/d",
          "Stored size over the days the stored events span")
