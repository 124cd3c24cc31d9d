"""Moved to ``llm_audit_langchain.enrich.pricing`` (prices and calculate_cost); this path keeps working."""

from .enrich.pricing import *  # noqa: F403
