"""llm-audit-langchain: make every LangChain and LangGraph run auditable."""

from __future__ import annotations

from .events import EVENT_VERSION, AuditEvent, AuditEventType, ErrorDetail

__version__ = "0.1.0"

__all__ = [
    "EVENT_VERSION",
    "AuditEvent",
    "AuditEventType",
    "ErrorDetail",
    "__version__",
]
