"""The exporter protocol every sink implements (after OpenTelemetry's ``SpanExporter``)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Protocol, runtime_checkable

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
