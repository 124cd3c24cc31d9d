"""llm-audit-langchain: make every LangChain and LangGraph run auditable.

    from llm_audit_langchain import AuditCallbackHandler, JsonlExporter

    handler = AuditCallbackHandler(exporters=[JsonlExporter("logs")])
    graph.invoke(inputs, config={"callbacks": [handler]})
    handler.flush(timeout=5.0)
"""

from __future__ import annotations

from .config import AuditConfig
from .context import TraceContext, current_traceparent
from .errors import AuditError, ConfigError, TraceNotFoundError
from .events import EVENT_VERSION, AuditEvent, AuditEventType, ErrorDetail
from .exporters import Exporter, ExportResult, JsonlExporter, MemoryExporter, StdoutExporter
from .handler import AuditCallbackHandler

__version__ = "0.1.0"

__all__ = [
    "EVENT_VERSION",
    "AuditCallbackHandler",
    "AuditConfig",
    "AuditError",
    "AuditEvent",
    "AuditEventType",
    "ConfigError",
    "ErrorDetail",
    "ExportResult",
    "Exporter",
    "JsonlExporter",
    "MemoryExporter",
    "StdoutExporter",
    "TraceContext",
    "TraceNotFoundError",
    "__version__",
    "current_traceparent",
]
