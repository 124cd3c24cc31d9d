"""Moved to ``llm_audit_langchain.capture.middleware`` (AuditMiddleware, the ASGI middleware); this path keeps working."""

from .capture.middleware import *  # noqa: F403
