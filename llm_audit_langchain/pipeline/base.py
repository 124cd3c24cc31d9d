"""What the pipeline's parts agree on: the item the queue carries, and the processor and sampler
protocols. Implementations import this module; it imports nothing above the event model, so
``processors``, ``sampling`` and ``worker`` never import each other to learn a type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..events import AuditEvent, AuditEventType

Processor = Callable[[AuditEvent], AuditEvent | None]
"""A worker-side step: returns the (possibly changed) event, or None to drop it."""


class Deferred(Protocol):
    """An event the hot path queued unbuilt (``pending.PendingEvent``): the worker calls
    ``build()``. Until then the sampler can read what it decides on; when ``deferrable`` is
    True nothing but the event itself needs it built before that decision, so an event of a
    trace that is sampled out is never built nor enriched."""

    @property
    def trace_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def event_type(self) -> AuditEventType: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def deferrable(self) -> bool: ...

    def build(self) -> AuditEvent:
        """The event."""
        ...


Item = AuditEvent | Deferred


class Sampler(Protocol):
    """Decides, per trace, which events reach the exporters (see ``sampling.py``)."""

    def offer(self, event: Item) -> tuple[list[Item], int]:
        """Take one event; return the events released now and how many were sampled out."""
        ...

    def held(self) -> int:
        """Events held while their trace is still open."""
        ...
