"""Exporters: where sanitized events leave the process, one file per sink, all on the worker
thread behind the ``Exporter`` protocol (``base``). Imports only the event model and errors."""

from .base import Exporter, ExportResult
from .jsonl import JsonlExporter
from .memory import MemoryExporter
from .stdout import StdoutExporter

__all__ = ["ExportResult", "Exporter", "JsonlExporter", "MemoryExporter", "StdoutExporter"]
