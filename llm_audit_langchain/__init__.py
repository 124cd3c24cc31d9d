"""llm-audit-langchain: make every LangChain and LangGraph run auditable.

    from llm_audit_langchain import AuditCallbackHandler, JsonlExporter

    handler = AuditCallbackHandler(exporters=[JsonlExporter("logs")])
    graph.invoke(inputs, config={"callbacks": [handler]})
    handler.flush(timeout=5.0)
"""

from __future__ import annotations

from .audit import AuditLogExporter, verify
from .capture.checkpoints import AuditedCheckpointSaver
from .capture.decorators import audit_node, audit_span, emit
from .capture.feedback import record_feedback
from .capture.handler import AuditCallbackHandler, get_default_handler, set_default_handler
from .config import AuditConfig
from .context import TraceContext, current_traceparent
from .enrich.pricing import calculate_cost
from .errors import AuditError, ConfigError, TraceNotFoundError
from .events import EVENT_VERSION, AuditEvent, AuditEventType, ErrorDetail
from .exporters import Exporter, ExportResult, JsonlExporter, MemoryExporter, StdoutExporter
from .pipeline.sampling import SamplingPolicy
from .privacy.sanitizer import Sanitizer, sanitize
from .replay import ReplayFixture, replay_trace

__version__ = "0.1.0"

__all__ = [
    "EVENT_VERSION",
    "AuditCallbackHandler",
    "AuditConfig",
    "AuditError",
    "AuditEvent",
    "AuditEventType",
    "AuditLogExporter",
    "AuditedCheckpointSaver",
    "ConfigError",
    "ErrorDetail",
    "ExportResult",
    "Exporter",
    "JsonlExporter",
    "MemoryExporter",
    "ReplayFixture",
    "SamplingPolicy",
    "Sanitizer",
    "StdoutExporter",
    "TraceContext",
    "TraceNotFoundError",
    "__version__",
    "audit_node",
    "audit_span",
    "calculate_cost",
    "current_traceparent",
    "emit",
    "get_default_handler",
    "record_feedback",
    "replay_trace",
    "sanitize",
    "set_default_handler",
    "verify",
]
