"""Build the default exporters from ``AuditConfig.exporter`` (``AUDIT_EXPORTER``); the table of
sinks is in ``registry``."""

from __future__ import annotations

from .registry import exporters_from_config

__all__ = ["exporters_from_config"]
