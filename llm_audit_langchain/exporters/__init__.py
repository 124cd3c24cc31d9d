"""Exporters: where sanitized events leave the process, one file per sink, all on the worker
thread behind the ``Exporter`` protocol (``base``). Imports only the event model and errors."""

from typing import TYPE_CHECKING

from .base import Exporter, ExportResult
from .jsonl import JsonlExporter
from .memory import MemoryExporter
from .stdout import StdoutExporter

if TYPE_CHECKING:
    from .mongo import MongoExporter
    from .postgres import PostgresExporter

__all__ = ["ExportResult", "Exporter", "JsonlExporter", "MemoryExporter", "MongoExporter",
           "PostgresExporter", "StdoutExporter"]

# The database exporters load on first use, so importing the package needs neither pymongo nor
# psycopg (they are the ``mongo`` and ``postgres`` extras).
_LAZY = {"MongoExporter": ".mongo", "PostgresExporter": ".postgres"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
