"""Build the default exporters from ``AuditConfig.exporter`` (``AUDIT_EXPORTER``)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Exporter
from .jsonl import JsonlExporter
from .memory import MemoryExporter
from .stdout import StdoutExporter

if TYPE_CHECKING:
    from ..config import AuditConfig


def exporters_from_config(config: AuditConfig) -> list[Exporter]:
    """``jsonl``, ``stdout``, ``memory``, ``mongodb``, ``postgres`` or ``none``, comma-separated.
    The database exporters import their driver only when named."""
    names = [n.strip().lower() for n in config.exporter.split(",") if n.strip()]
    exporters: list[Exporter] = []
    for name in names:
        if name in ("jsonl", "jsonfile"):
            exporters.append(JsonlExporter(config.log_dir, fsync=config.fsync))
        elif name == "stdout":
            exporters.append(StdoutExporter())
        elif name == "memory":
            exporters.append(MemoryExporter())
        elif name == "mongodb":
            exporters.append(import_module(".mongo", __package__).mongo_from_config(config))
        elif name == "postgres":
            exporters.append(import_module(".postgres", __package__).postgres_from_config(config))
        elif name != "none":
            raise ConfigError(
                f"AUDIT_EXPORTER: unknown exporter {name!r}; use jsonl, stdout, memory, "
                "mongodb, postgres or none"
            )
    return exporters
