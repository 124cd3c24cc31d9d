"""Exporters: where sanitized events leave the process. One file per sink."""

from .base import Exporter, ExportResult
from .jsonl import JsonlExporter
from .memory import MemoryExporter
from .stdout import StdoutExporter

__all__ = ["ExportResult", "Exporter", "JsonlExporter", "MemoryExporter", "StdoutExporter"]
