"""Moved to ``llm_audit_langchain.enrich.pricing``; this import path keeps working."""

from .enrich.pricing import *  # noqa: F403
