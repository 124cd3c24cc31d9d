"""Moved to ``llm_audit_langchain.inspect.tree`` (the trace tree views); this path keeps working."""

from .inspect.tree import *  # noqa: F403
