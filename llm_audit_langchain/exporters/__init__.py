"""Exporters: where sanitized events leave the process."""

from .base import Exporter, ExportResult

__all__ = ["ExportResult", "Exporter"]
