"""``OtlpExporter``: our spans to any OpenTelemetry collector, with their own ids.

It is one more sink of the pipeline (the traces layer, next to the JSONL log): the worker
hands it batches of sanitized, sampled events; it maps them to finished spans (``spans.py``)
and gives those to an OpenTelemetry ``SpanExporter`` (OTLP over HTTP/protobuf by default,
gRPC with the ``otel-grpc`` extra). Configuration is OpenTelemetry's own::

    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318   # or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    OTEL_EXPORTER_OTLP_HEADERS=api-key=secret
    OTEL_EXPORTER_OTLP_TIMEOUT=10                        # seconds
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf            # or grpc
    OTEL_SERVICE_NAME=checkout-agent

    handler = AuditCallbackHandler(exporters=[JsonlExporter("logs"), OtlpExporter()])

Point events and their spans may arrive in different batches: a point event whose span has not
closed yet waits in a bounded buffer and joins the span as a span event when it closes; one whose
span was already exported is sent as a zero-duration child span. The exporter's own HTTP calls
run with OpenTelemetry instrumentation suppressed, so an instrumented ``requests`` or ``urllib3``
never traces the export itself.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from ..errors import ConfigError
from ..events import AuditEvent
from ..exporters.base import ExportResult
from .spans import SpanMapper

logger = logging.getLogger("llm_audit_langchain")

SCOPE_NAME = "llm_audit_langchain"
_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# The keys the SDK's span processors set and every instrumentation checks.
_SUPPRESS_KEYS = (_SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_HTTP_INSTRUMENTATION_KEY)
# Where OpenTelemetry's OTLP exporters log their retries ("Transient error ... retrying").
_LIBRARY_LOGGERS = ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                    "opentelemetry.exporter.otlp.proto.grpc.exporter",
                    "opentelemetry.exporter.otlp.common.http")


class LibraryNoise(logging.Filter):
    """During our own export calls, lets the first message of OpenTelemetry's exporter through
    and counts the rest: with the collector down its retry loop logs every attempt, and the
    pipeline already retries, counts and logs failures once. Other threads' records (a user's
    own OpenTelemetry pipeline) pass untouched."""

    def __init__(self) -> None:
        super().__init__("llm-audit")
        self._exporting = threading.local()
        self.shown = False
        self.counted = 0

    def exporting(self, active: bool) -> None:
        """Mark the current thread as inside (or outside) one of our export calls."""
        self._exporting.active = active

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(self._exporting, "active", False):
            return True
        if not self.shown:
            self.shown = True
            record.msg = (f"{record.msg} (llm-audit: further messages of the OpenTelemetry "
                          f"exporter are counted in OtlpExporter.library_messages, "
                          f"not logged)")
            return True
        self.counted += 1
        return False

    def attach(self) -> None:
        """Filter the OTLP exporters' loggers."""
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        """Stop filtering (at shutdown)."""
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llm-audit-langchain")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def otel_resource(service_name: str | None = None) -> Resource:
    """The resource of our telemetry: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
    (read by the SDK), with ``service_name`` overriding both when given."""
    extra = {SERVICE_NAME: service_name} if service_name else {}
    return Resource.create(extra)


def instrumentation_scope() -> InstrumentationScope:
    """The scope our spans and metrics are reported under."""
    return InstrumentationScope(SCOPE_NAME, _package_version())


def otlp_protocol(signal: str = "TRACES") -> str:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
    ``http/protobuf`` (the OpenTelemetry default)."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            return value
    return "http/protobuf"


def otlp_span_exporter(
    protocol: str | None = None,
    *,
    endpoint: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> SpanExporter:
    """An OTLP ``SpanExporter`` for ``protocol`` (default from the environment). Arguments left
    ``None`` are read by the OpenTelemetry exporter from the standard ``OTEL_EXPORTER_OTLP_*``
    variables. ``endpoint`` is the full URL for HTTP (``http://host:4318/v1/traces``)."""
    protocol = (protocol or otlp_protocol()).lower()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout)
    if protocol == "grpc":
        grpc = grpc_module("trace_exporter")
        exporter: SpanExporter = grpc.OTLPSpanExporter(
            endpoint=endpoint, headers=tuple(headers.items()) if headers else None,
            timeout=timeout)
        return exporter
    raise ConfigError(f"OTLP protocol {protocol!r} is not supported; use http/protobuf or grpc")


def grpc_module(name: str) -> Any:
    """``opentelemetry.exporter.otlp.proto.grpc.<name>``, from the ``otel-grpc`` extra."""
    try:
        return importlib.import_module(f"opentelemetry.exporter.otlp.proto.grpc.{name}")
    except ImportError:
        raise ConfigError("OTLP protocol 'grpc' needs: pip install "
                          "'llm-audit-langchain[otel-grpc]'") from None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


@dataclass(slots=True)
class _Plan:
    """What one export call sends, and how the buffers change if it succeeds."""

    spans: list[ReadableSpan] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)  # pending span ids now attached
    closed: list[str] = field(default_factory=list)  # span ids exported by this batch
    hold: list[AuditEvent] = field(default_factory=list)  # point events that wait
    evicted: list[str] = field(default_factory=list)  # pending span ids sent as child spans
    attached: int = 0
    as_child_spans: int = 0


class PointEventBuffer:
    """Point events waiting for their span to close, and the span ids already exported.

    Worker thread only. Bounded: beyond ``max_events`` waiting events, or after ``max_wait_s``,
    the oldest span's waiting events are exported as child spans, never silently lost.
    """

    def __init__(self, max_events: int, max_wait_s: float, remember_closed: int) -> None:
        self.max_events = max_events
        self.max_wait_s = max_wait_s
        self.remember = remember_closed
        self.waiting: OrderedDict[str, tuple[float, list[AuditEvent]]] = OrderedDict()
        self.count = 0
        self.closed: OrderedDict[str, None] = OrderedDict()

    def plan(self, mapper: SpanMapper, batch: Sequence[AuditEvent], now: float,
             final: bool = False) -> _Plan:
        """Decide where each event goes, without changing the buffer (see :meth:`commit`)."""
        plan = _Plan()
        closing = {e.span_id for e in batch if e.start_time is not None}
        here: dict[str, list[AuditEvent]] = {}
        for event in batch:
            if event.start_time is not None:
                continue
            if event.span_id in closing:
                here.setdefault(event.span_id, []).append(event)
            elif event.span_id in self.closed or final:
                plan.spans.append(mapper.point_span(event))
                plan.as_child_spans += 1
            else:
                plan.hold.append(event)
        for event in batch:
            if event.start_time is None:
                continue
            points = here.get(event.span_id, [])
            waiting = self.waiting.get(event.span_id)
            if waiting is not None:
                points = waiting[1] + points
                plan.consumed.append(event.span_id)
            plan.closed.append(event.span_id)
            if event.data.get("external_span"):
                continue  # another OpenTelemetry SDK exports this span (middleware.py)
            plan.attached += len(points)
            plan.spans.append(mapper.span(event, points))
        self._plan_evictions(mapper, plan, now, final)
        return plan

    def _plan_evictions(self, mapper: SpanMapper, plan: _Plan, now: float, final: bool) -> None:
        consumed = set(plan.consumed)
        excess = self.count + len(plan.hold) - self.max_events
        excess -= sum(len(self.waiting[s][1]) for s in consumed)
        for span_id, (since, events) in self.waiting.items():
            if span_id in consumed:
                continue
            if not final and excess <= 0 and now - since < self.max_wait_s:
                break  # ordered by first arrival: the rest are younger
            plan.evicted.append(span_id)
            plan.spans.extend(mapper.point_span(e) for e in events)
            plan.as_child_spans += len(events)
            excess -= len(events)
        if excess > 0:  # this batch alone overflows: its oldest point events go out now
            overflow, plan.hold = plan.hold[:excess], plan.hold[excess:]
            plan.spans.extend(mapper.point_span(e) for e in overflow)
            plan.as_child_spans += len(overflow)

    def commit(self, plan: _Plan, now: float) -> None:
        """Apply ``plan`` after its spans were exported."""
        for span_id in (*plan.consumed, *plan.evicted):
            _, events = self.waiting.pop(span_id)
            self.count -= len(events)
        for span_id in plan.closed:
            self.closed[span_id] = None
        while len(self.closed) > self.remember:
            self.closed.popitem(last=False)
        for event in plan.hold:
            entry = self.waiting.get(event.span_id)
            if entry is None:
                self.waiting[event.span_id] = (now, [event])
            else:
                entry[1].append(event)
            self.count += 1


class OtlpExporter:
    """Exports our spans over OTLP with the same trace/span ids and parentage as the JSONL log.

    Args:
        span_exporter: any OpenTelemetry ``SpanExporter``; by default OTLP for the environment's
            ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``; ``grpc`` with the extra).
        endpoint, headers, timeout, protocol: passed to the OTLP exporter; ``None`` reads the
            standard ``OTEL_EXPORTER_OTLP_*`` variables.
        service_name: overrides ``OTEL_SERVICE_NAME`` in the resource.
        capture_content: export (sanitized) prompts, outputs and tool arguments as attributes;
            default from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (off).
        max_waiting_point_events, point_event_max_wait_s: bounds of the buffer where point
            events wait for their span to close.
    """

    name = "otlp"

    def __init__(
        self,
        span_exporter: SpanExporter | None = None,
        *,
        endpoint: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        protocol: str | None = None,
        service_name: str | None = None,
        resource: Resource | None = None,
        capture_content: bool | None = None,
        max_waiting_point_events: int = 10_000,
        point_event_max_wait_s: float = 900.0,
    ) -> None:
        self._exporter = span_exporter or otlp_span_exporter(
            protocol, endpoint=endpoint, headers=headers, timeout=timeout)
        self.mapper = SpanMapper(
            resource or otel_resource(service_name), instrumentation_scope(),
            _truthy(_CAPTURE_ENV) if capture_content is None else capture_content)
        self._buffer = PointEventBuffer(max_waiting_point_events, point_event_max_wait_s,
                                        remember_closed=100_000)
        self._lock = threading.Lock()  # export and shutdown may come from different threads
        self._shut = False
        self._stats = {"spans": 0, "point_events_attached": 0, "point_events_as_spans": 0,
                       "failed_exports": 0}
        self._noise = LibraryNoise()
        self._noise.attach()

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult:
        """Map ``batch`` to spans and send them; FAILURE makes the pipeline retry the batch
        (the waiting buffer only changes when a send succeeds, so a retry sees the same state)."""
        with self._lock:
            if self._shut:
                return ExportResult.SUCCESS
            now = time.monotonic()
            plan = self._buffer.plan(self.mapper, batch, now)
            return self._send(plan, now)

    def _send(self, plan: _Plan, now: float) -> ExportResult:
        if plan.spans and self._export_suppressed(plan.spans) is not SpanExportResult.SUCCESS:
            self._stats["failed_exports"] += 1
            return ExportResult.FAILURE
        self._buffer.commit(plan, now)
        self._stats["spans"] += len(plan.spans)
        self._stats["point_events_attached"] += plan.attached
        self._stats["point_events_as_spans"] += plan.as_child_spans
        return ExportResult.SUCCESS

    def _export_suppressed(self, spans: list[ReadableSpan]) -> SpanExportResult:
        """Export with instrumentation suppressed, as the SDK's span processors do."""
        ctx = otel_context.get_current()
        for key in _SUPPRESS_KEYS:
            ctx = otel_context.set_value(key, True, ctx)
        token = otel_context.attach(ctx)
        self._noise.exporting(True)
        try:
            return self._exporter.export(spans)
        finally:
            self._noise.exporting(False)
            otel_context.detach(token)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Flush the OTLP exporter. Point events whose span is still open keep waiting."""
        millis = 30_000 if timeout is None else max(0, int(timeout * 1000))
        return bool(self._exporter.force_flush(millis))

    def shutdown(self, timeout: float | None = None) -> None:
        """Send every waiting point event (as child spans), then shut the OTLP exporter down."""
        with self._lock:
            if self._shut:
                return
            self._shut = True
            now = time.monotonic()
            plan = self._buffer.plan(self.mapper, (), now, final=True)
            if self._send(plan, now) is ExportResult.FAILURE:
                logger.warning("llm-audit otlp: %d waiting point events lost at shutdown",
                               self._buffer.count)
        self._exporter.shutdown()
        self._noise.detach()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock."""
        self._lock = threading.Lock()

    def stats(self) -> dict[str, Any]:
        """Spans sent, point events attached to their span or sent as child spans, failed
        export calls, and point events waiting for their span now."""
        return {**self._stats, "waiting_point_events": self._buffer.count}

    @property
    def library_messages(self) -> int:
        """Messages of OpenTelemetry's exporter counted during our exports instead of logged
        (all but the first: its retry loop logs every attempt while a collector is down)."""
        return self._noise.counted

