"""``MemoryExporter``: keeps exported events in a list, for tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..events import AuditEvent, AuditEventType


class MemoryExporter:
    """Collects every exported event in memory (bounded by ``max_events``, oldest dropped).

    Example::

        memory = MemoryExporter()
        handler = AuditCallbackHandler(exporters=[memory])
        graph.invoke(inputs, config={"callbacks": [handler]})
        handler.flush()
        memory.events_of(AuditEventType.TOOL_SELECTION)
    """

    name = "memory"

    def __init__(self, max_events: int | None = 1_000_000) -> None:
        self._events: list[AuditEvent] = []
        self._lock = threading.Lock()
        self._max = max_events

    def export(self, batch: Sequence[AuditEvent]) -> None:
        with self._lock:
            self._events.extend(batch)
            if self._max is not None and len(self._events) > self._max:
                del self._events[: len(self._events) - self._max]

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held at fork time)."""
        self._lock = threading.Lock()

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        return None

    @property
    def events(self) -> list[AuditEvent]:
        """A copy of the events received so far, in export order."""
        with self._lock:
            return list(self._events)

    def events_of(self, *types: AuditEventType | str) -> list[AuditEvent]:
        """The events whose type is one of ``types``."""
        wanted = {str(t) for t in types}
        return [e for e in self.events if str(e.event_type) in wanted]

    def trace(self, trace_id: str) -> list[AuditEvent]:
        """The events of one trace."""
        return [e for e in self.events if e.trace_id == trace_id]

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._lock:
            self._events.clear()
