"""Moved to ``llm_audit_langchain.inspect.tree``; this import path keeps working."""

from .inspect.tree import *  # noqa: F403
