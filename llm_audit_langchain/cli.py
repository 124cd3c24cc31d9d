"""Moved to ``llm_audit_langchain.inspect.cli`` (the llm-audit command); this path keeps working."""

from .inspect.cli import *  # noqa: F403
