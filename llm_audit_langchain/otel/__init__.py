"""OpenTelemetry: our spans over OTLP, metrics through the OpenTelemetry metrics API.

Needs the ``otel`` extra (``pip install 'llm-audit-langchain[otel]'``)::

    from llm_audit_langchain import AuditCallbackHandler, JsonlExporter
    from llm_audit_langchain.otel import AuditMetrics, OtlpExporter

    metrics = AuditMetrics()                       # in-process; OTLP too if the env says so
    handler = AuditCallbackHandler(exporters=[JsonlExporter("logs"), OtlpExporter()],
                                   observers=[metrics.observe])
    metrics.bind(handler)                          # queue and buffer gauges read handler.stats()
"""

from __future__ import annotations

try:
    import opentelemetry.sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "llm_audit_langchain.otel needs OpenTelemetry: pip install 'llm-audit-langchain[otel]'"
    ) from exc

from .exporter import OtlpExporter, otel_resource, otlp_span_exporter
from .metrics import AuditMetrics
from .spans import SpanMapper, event_attributes, spans_of
from .store_metrics import observe_store

__all__ = [
    "AuditMetrics",
    "OtlpExporter",
    "SpanMapper",
    "event_attributes",
    "observe_store",
    "otel_resource",
    "otlp_span_exporter",
    "spans_of",
]
