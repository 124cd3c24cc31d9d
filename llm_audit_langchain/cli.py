"""Moved to ``llm_audit_langchain.inspect.cli``; this import path keeps working."""

from .inspect.cli import *  # noqa: F403
