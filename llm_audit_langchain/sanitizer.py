"""Moved to ``llm_audit_langchain.privacy.sanitizer`` (the sanitizer); this path keeps working."""

from .privacy.sanitizer import *  # noqa: F403
