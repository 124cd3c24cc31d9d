"""Moved to ``llm_audit_langchain.capture.middleware``; this import path keeps working."""

from .capture.middleware import *  # noqa: F403
