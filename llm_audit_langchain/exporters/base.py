"""The exporter protocol every sink implements (after OpenTelemetry's ``SpanExporter``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..events import AuditEvent


class ExportResult(Enum):
    """What ``export`` may return. Raising an exception counts as ``FAILURE``."""

    SUCCESS = 0
    FAILURE = 1


@runtime_checkable
class Exporter(Protocol):
    """A sink for batches of sanitized events.

    ``export`` is only ever called from the pipeline's worker thread, never on the caller's hot
    path. It returns ``ExportResult`` (``None`` means success) or raises; either failure makes the
    pipeline retry the batch with backoff. It should bound its own I/O with a timeout.
    """

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult | None:
        """Deliver one batch."""
        ...

    def force_flush(self, timeout: float | None = None) -> bool:
        """Push buffered data to its destination; True when done within ``timeout``."""
        ...

    def shutdown(self, timeout: float | None = None) -> None:
        """Release resources. Called once; later exports may be ignored."""
        ...


# Optional: ``after_fork()`` is called in a forked child before the worker restarts, so an
# exporter can replace locks or connections the parent held at fork time.


def checked_exporters(exporters: object, where: str = "AuditCallbackHandler") -> list[Exporter]:
    """``exporters`` as a list, or ``ConfigError`` naming what is wrong: a string or path where a
    list belongs, an exporter class instead of an instance, an object missing a method."""
    if isinstance(exporters, str | bytes | os.PathLike):
        raise ConfigError(f"{where}({exporters!r}): the first argument is a list of exporters; "
                          f"to write JSONL to a directory use exporters=[JsonlExporter("
                          f"{str(exporters)!r})] or set AUDIT_LOG_DIR")
    if not isinstance(exporters, Iterable):
        raise ConfigError(f"{where}(exporters={exporters!r}): must be a list of exporters")
    checked: list[Exporter] = []
    for exporter in exporters:
        if isinstance(exporter, type):
            raise ConfigError(f"{where}(exporters=[{exporter.__name__}]): pass an instance, "
                              f"e.g. {exporter.__name__}(...), not the class")
        missing = [m for m in _METHODS if not callable(getattr(exporter, m, None))]
        if missing:
            raise ConfigError(f"{where}(exporters=[...]): {type(exporter).__name__} is not an "
                              f"exporter: it lacks {', '.join(missing)} (the Exporter protocol: "
                              f"export(batch), force_flush(timeout), shutdown(timeout))")
        checked.append(exporter)
    return checked


_METHODS = ("export", "force_flush", "shutdown")
