"""Moved to ``llm_audit_langchain.privacy.sanitizer``; this import path keeps working."""

from .privacy.sanitizer import *  # noqa: F403
