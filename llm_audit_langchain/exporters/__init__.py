"""Exporters: where sanitized events leave the process, one file per sink, all on the worker
thread behind the ``Exporter`` protocol (``base``); ``registry`` selects them by name
(``AUDIT_EXPORTER``). Imports only the event model and errors. ``CloudWatchExporter`` (extra
``aws``) and ``KafkaExporter`` (extra ``kafka``) are imported on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Exporter, ExportResult
from .jsonl import JsonlExporter
from .memory import MemoryExporter
from .registry import available_exporters, exporters_from_config
from .stdout import StdoutExporter

if TYPE_CHECKING:
    from .cloudwatch import CloudWatchExporter
    from .kafka import KafkaExporter
    from .mongo import MongoExporter
    from .postgres import PostgresExporter

# Sinks with an optional dependency: name -> (module, pip extra).
_OPTIONAL = {"CloudWatchExporter": ("cloudwatch", "aws"), "KafkaExporter": ("kafka", "kafka"),
             "MongoExporter": ("mongo", "mongo"), "PostgresExporter": ("postgres", "postgres")}


def __getattr__(name: str) -> Any:
    if name not in _OPTIONAL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = _OPTIONAL[name]
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ImportError as exc:
        raise ImportError(f"{name} needs: pip install 'llm-audit-langchain[{extra}]' ({exc})",
                          name=exc.name) from exc


__all__ = [
    "CloudWatchExporter",
    "ExportResult",
    "Exporter",
    "JsonlExporter",
    "KafkaExporter",
    "MemoryExporter",
    "MongoExporter",
    "PostgresExporter",
    "StdoutExporter",
    "available_exporters",
    "exporters_from_config",
]
