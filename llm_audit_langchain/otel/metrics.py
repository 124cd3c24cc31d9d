"""``AuditMetrics``: the package's counters, histograms and gauges, through the OpenTelemetry
metrics API, fed by a pipeline observer so they count every event, sampled out or not.

    metrics = AuditMetrics()                         # our own MeterProvider, never the global one
    handler = AuditCallbackHandler(observers=[metrics.observe])
    metrics.bind(handler)                            # gauges read handler.stats()
    ...
    metrics.snapshot()["llm_calls_total"]["total"]   # in-process, for notebooks and alerts

Readers: an in-memory one always (``snapshot()``); OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set (every ``OTEL_METRIC_EXPORT_INTERVAL`` ms); a
Prometheus scrape endpoint with ``prometheus_port=`` (needs ``opentelemetry-exporter-prometheus``).

Instruments (units, attributes and exact counting rules: ``docs/opentelemetry.md``): counters
``requests_total``, ``agent_runs_total``, ``llm_calls_total``, ``tool_calls_total``,
``errors_total``, ``retries_total``, ``tokens_total``, ``cost_usd_total``; histograms (ms)
``request_latency``, ``agent_run_latency``, ``llm_latency``, ``tool_latency``; observable gauges
``active_traces``, ``queue_size``, ``memory_buffer_usage``.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from ..errors import ConfigError
from ..events import AuditEvent, AuditEventType
from ..forksafe import renew_after_fork
from ..privacy.sanitizer import Sanitizer
from .exporter import SCOPE_NAME, _package_version, grpc_module, otel_resource, otlp_protocol

if TYPE_CHECKING:
    from ..capture.handler import AuditCallbackHandler

logger = logging.getLogger("llm_audit_langchain")

# Observers see events before the pipeline sanitizes them: every name that becomes an attribute
# (run, tool, model, error type) is redacted here. Always as in ``redacted`` mode, with no keyed
# tags: a metric attribute is kept as long as the process lives, and fewer values are better.
_name = Sanitizer("redacted").sanitize_name

E = AuditEventType
_LLM = (E.LLM_INVOKE, E.LLM_ERROR)
_TOOL = (E.TOOL_RESULT, E.TOOL_ERROR)
_MAX_OPEN_TRACES = 100_000


def otlp_metrics_configured() -> bool:
    """True when the environment names an OTLP endpoint for metrics."""
    return any(os.environ.get(name, "").strip() for name in
               ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))


def otlp_metric_reader() -> MetricReader:
    """A periodic OTLP reader configured by the standard ``OTEL_*`` variables."""
    protocol = otlp_protocol("METRICS")
    if protocol == "grpc":
        exporter: MetricExporter = grpc_module("metric_exporter").OTLPMetricExporter()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    else:
        raise ConfigError(f"OTLP protocol {protocol!r} is not supported; use http/protobuf or grpc")
    return PeriodicExportingMetricReader(exporter)


class AuditMetrics:
    """Counters, histograms and gauges over the audit event stream.

    Args:
        handler: the handler whose ``stats()`` the gauges read (or call :meth:`bind` later).
        otlp: also export over OTLP; default: when an OTLP endpoint is set in the environment.
        prometheus_port: serve ``/metrics`` for Prometheus on this port (``prometheus_addr``).
        readers: more OpenTelemetry metric readers.
        resource: the resource of our provider (default: ``OTEL_SERVICE_NAME``...).
        set_global: also make our provider OpenTelemetry's global one (off: we never touch the
            global provider unless asked; OpenTelemetry keeps the first one set).
    """

    def __init__(
        self,
        handler: AuditCallbackHandler | None = None,
        *,
        otlp: bool | None = None,
        prometheus_port: int | None = None,
        prometheus_addr: str = "127.0.0.1",
        readers: Iterable[MetricReader] = (),
        resource: Resource | None = None,
        set_global: bool = False,
    ) -> None:
        self._reader = InMemoryMetricReader()
        all_readers: list[MetricReader] = [self._reader, *readers]
        if otlp if otlp is not None else otlp_metrics_configured():
            all_readers.append(otlp_metric_reader())
        self._prometheus_server: Any = None
        if prometheus_port is not None:
            all_readers.append(self._prometheus_reader(prometheus_port, prometheus_addr))
        self.provider = MeterProvider(metric_readers=all_readers,
                                      resource=resource or otel_resource())
        if set_global:
            from opentelemetry import metrics as otel_metrics

            otel_metrics.set_meter_provider(self.provider)
        self._handler: weakref.ref[AuditCallbackHandler] | None = None
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._open: OrderedDict[str, None] = OrderedDict()  # traces seen, root not ended yet
        self._instruments()
        if handler is not None:
            self.bind(handler)

    def _prometheus_reader(self, port: int, addr: str) -> MetricReader:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise ConfigError("prometheus_port needs: pip install "
                              "opentelemetry-exporter-prometheus") from None
        registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=registry)
        self._prometheus_server = start_http_server(port, addr=addr, registry=registry)
        return reader

    def _instruments(self) -> None:
        meter = self.provider.get_meter(SCOPE_NAME, _package_version())
        counter, histogram = meter.create_counter, meter.create_histogram
        self.requests_total = counter("requests_total", "1", "HTTP requests (request.end)")
        self.agent_runs_total = counter("agent_runs_total", "1", "Outermost LangChain runs")
        self.llm_calls_total = counter("llm_calls_total", "1", "LLM calls, failed ones included")
        self.tool_calls_total = counter("tool_calls_total", "1", "Tool calls, failed included")
        self.errors_total = counter("errors_total", "1", "Events with status error or timeout")
        self.retries_total = counter("retries_total", "1", "Retries")
        self.tokens_total = counter("tokens_total", "{token}", "LLM tokens by type and model")
        self.cost_usd_total = counter("cost_usd_total", "USD", "LLM cost by model")
        self.request_latency = histogram("request_latency", "ms", "HTTP request latency")
        self.agent_run_latency = histogram("agent_run_latency", "ms", "Root run latency")
        self.llm_latency = histogram("llm_latency", "ms", "LLM call latency")
        self.tool_latency = histogram("tool_latency", "ms", "Tool call latency")
        gauge = meter.create_observable_gauge
        gauge("active_traces", [self._gauge(self._active_traces)], "{trace}", "Open traces")
        gauge("queue_size", [self._gauge(lambda s: s.get("queue_size"))], "{event}",
              "Events in the pipeline queue")
        gauge("memory_buffer_usage", [self._gauge(lambda s: s.get("pending"))], "{event}",
              "Events held in memory: queue, sampler buffer, exporter backlogs")

    # ---- feeding ------------------------------------------------------------------------------

    def bind(self, handler: AuditCallbackHandler) -> None:
        """Read the gauges from ``handler.stats()`` (held weakly)."""
        self._handler = weakref.ref(handler)

    def observe(self, event: AuditEvent) -> None:
        """The pipeline observer: count one sanitized event (before sampling). Worker thread."""
        kind, status = event.event_type, event.status
        if kind is E.REQUEST_END:
            self._request(event)
        elif event.start_time is not None and (event.data.get("run_root")
                                               or event.data.get("trace_root")):
            action = _name(event.action)
            attributes = {"llm_audit.action": action, "llm_audit.status": status}
            self.agent_runs_total.add(1, attributes)
            self._record(self.agent_run_latency, event.latency_ms, {"llm_audit.action": action})
        if kind in _LLM:
            self._llm(event)
        elif kind in _TOOL:
            attributes = {"gen_ai.tool.name": _name(event.action), "llm_audit.status": status}
            self.tool_calls_total.add(1, attributes)
            self._record(self.tool_latency, event.latency_ms, attributes)
        if status in ("error", "timeout"):
            error_type = _name(event.error.type) if event.error is not None else status
            self.errors_total.add(1, {"llm_audit.event_type": str(kind), "error.type": error_type})
        if kind is E.AGENT_RETRY or status == "retry":
            self.retries_total.add(1, {"llm_audit.event_type": str(kind)})
        self._track_trace(event)

    # What ``observe`` reads besides LLM calls, errors and root-run ends (which the pipeline
    # always builds): with this, sampled-out traces still need not be built in full.
    observe.event_types = frozenset({E.REQUEST_END, *_LLM, *_TOOL, E.AGENT_RETRY})  # type: ignore[attr-defined]

    def _request(self, event: AuditEvent) -> None:
        data = event.data
        attributes: dict[str, str | int] = {
            "http.request.method": _name(str(data.get("method"))),
            "http.response.status_code": int(data.get("status_code") or 0)}
        self.requests_total.add(1, {**attributes, "llm_audit.status": event.status})
        self._record(self.request_latency, event.latency_ms, attributes)

    def _llm(self, event: AuditEvent) -> None:
        model = _name(event.model or "unknown")
        provider = event.data.get("provider")
        attributes: dict[str, str] = {"gen_ai.request.model": model,
                                      "llm_audit.status": event.status}
        if isinstance(provider, str):
            attributes["gen_ai.provider.name"] = _name(provider)
        self.llm_calls_total.add(1, attributes)
        self._record(self.llm_latency, event.latency_ms, attributes)
        by_model = {"gen_ai.request.model": model}
        for token_type, count in (("input", event.tokens_input), ("output", event.tokens_output)):
            if count:
                self.tokens_total.add(count, {**by_model, "gen_ai.token.type": token_type})
        if event.cost_usd:
            self.cost_usd_total.add(event.cost_usd, by_model)

    @staticmethod
    def _record(histogram: Any, value: float | None, attributes: Mapping[str, Any]) -> None:
        if value is not None:
            histogram.record(value, attributes)

    def _track_trace(self, event: AuditEvent) -> None:
        with self._lock:
            if event.data.get("trace_root"):
                self._open.pop(event.trace_id, None)
                return
            self._open[event.trace_id] = None
            if len(self._open) > _MAX_OPEN_TRACES:
                self._open.popitem(last=False)

    # ---- gauges -------------------------------------------------------------------------------

    def _active_traces(self, stats: Mapping[str, Any]) -> int:
        """The handler's count when it reports one; else traces whose events we saw and whose
        root has not ended (a trace that has emitted nothing yet is not seen)."""
        value = stats.get("active_traces")
        if isinstance(value, int):
            return value
        with self._lock:
            return len(self._open)

    def _gauge(self, read: Callable[[Mapping[str, Any]], Any]
               ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            handler = self._handler() if self._handler is not None else None
            stats: Mapping[str, Any] = {}
            if handler is not None:
                try:
                    stats = handler.stats()
                except Exception:  # a gauge must never break a collection
                    return []
            value = read(stats)
            return [Observation(value)] if isinstance(value, int | float) else []

        return callback

    # ---- reading ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every metric now, cumulative since start, as plain data::

            {"llm_calls_total": {"total": 2, "points": [{"attributes": {...}, "value": 2}]},
             "llm_latency": {"count": 2, "sum": 1.3, "min": 0.5, "max": 0.8, "points": [...]},
             "queue_size": {"total": 0, "points": [...]}, ...}
        """
        data = self._reader.get_metrics_data()
        result: dict[str, Any] = {}
        if data is None:
            return result
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    result[metric.name] = _summary(metric.data.data_points)
        return result

    def value(self, name: str, **attributes: Any) -> float:
        """The total of a counter or gauge (or a histogram's count), optionally only over the
        points whose attributes include ``attributes`` (dots as underscores are not accepted:
        pass ``**{"gen_ai.request.model": "m"}``)."""
        summary = self.snapshot().get(name)
        if summary is None:
            return 0
        key = "count" if "count" in summary else "total"
        if not attributes:
            return float(summary[key])
        points = [p for p in summary["points"]
                  if all(p["attributes"].get(k) == v for k, v in attributes.items())]
        field = "count" if key == "count" else "value"
        return float(sum(p[field] for p in points))

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush the readers, stop our provider and the Prometheus endpoint."""
        self.provider.shutdown(timeout_millis=timeout * 1000)
        if self._prometheus_server is not None:
            server, _thread = self._prometheus_server
            server.shutdown()
            server.server_close()
            self._prometheus_server = None


def _summary(points: Iterable[Any]) -> dict[str, Any]:
    listed = list(points)
    if listed and isinstance(listed[0], HistogramDataPoint):
        hist = [p for p in listed if isinstance(p, HistogramDataPoint)]
        return {
            "count": sum(p.count for p in hist),
            "sum": sum(p.sum for p in hist),
            "min": min((p.min for p in hist if p.count), default=None),
            "max": max((p.max for p in hist if p.count), default=None),
            "points": [{"attributes": dict(p.attributes or {}), "count": p.count, "sum": p.sum,
                        "min": p.min, "max": p.max, "bucket_counts": list(p.bucket_counts),
                        "explicit_bounds": list(p.explicit_bounds)} for p in hist],
        }
    numbers = [p for p in listed if isinstance(p, NumberDataPoint)]
    return {"total": sum(p.value for p in numbers),
            "points": [{"attributes": dict(p.attributes or {}), "value": p.value}
                       for p in numbers]}
