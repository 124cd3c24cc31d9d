"""What every store back-end answers, and the trace-id helpers they share."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, Protocol

from ...events import AuditEvent


class AuditStore(Protocol):
    """What every back-end answers."""

    source: str

    def report(self, *, top: int = 10) -> dict[str, Any]:
        """The analytics report (``report.py`` lists its keys and definitions)."""
        ...

    def trace_events(self, trace_id: str) -> list[AuditEvent]:
        """Every event of one trace in recorded order; ``TraceNotFoundError`` when none (or
        several traces) match the id or prefix."""
        ...

    def events(self, *, since: datetime | None = None, until: datetime | None = None,
               event_types: Collection[str] | None = None) -> Iterator[AuditEvent]:
        """Events in recorded order (timestamp, then event id), streamed. With ``since`` or
        ``until``: only the whole traces that have an event starting (its ``start_time``, else
        its ``timestamp``) in that closed range, so a trace's start is always among them and
        whatever a trace summary says is computed from all of its events. ``event_types``:
        only events of those types (of the traces selected)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def is_store_uri(source: str) -> bool:
    """True for a ``mongodb://``/``mongodb+srv://`` or ``postgresql://``/``postgres://`` URI."""
    return source.startswith(("mongodb://", "mongodb+srv://", "postgresql://", "postgres://"))


def pick_trace(found: list[str], trace_id: str, source: str) -> str:
    """The one trace id a prefix matched; ``TraceNotFoundError`` for none or several."""
    from ...errors import TraceNotFoundError

    if not found:
        raise TraceNotFoundError(f"no events for trace {trace_id!r} in {source}")
    if len(found) > 1:
        raise TraceNotFoundError(f"trace id prefix {trace_id!r} matches several traces: "
                                 + ", ".join(sorted(found)[:5]))
    return found[0]


def trace_prefix(trace_id: str) -> str:
    """A lowercase hex prefix, safe to put in a LIKE pattern or a regex."""
    from ...errors import TraceNotFoundError

    wanted = trace_id.strip().lower()
    if not wanted or any(c not in "0123456789abcdef" for c in wanted):
        raise TraceNotFoundError(f"not a trace id or prefix: {trace_id!r}")
    return wanted


def in_range(event: AuditEvent, since: datetime | None, until: datetime | None) -> bool:
    """True when the event starts (``start_time``, else ``timestamp``) in [since, until]."""
    moment = event.start_time or event.timestamp
    return (since is None or moment >= since) and (until is None or moment <= until)
