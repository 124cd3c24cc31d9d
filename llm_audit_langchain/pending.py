"""Events as the callbacks saw them, built into ``AuditEvent``s on the pipeline's worker.

A callback records only what could change or be lost (the run record, the payload, the end
time) and queues a :class:`PendingEvent`; ids, datetimes and the event object are made off the
caller's thread, in batches (DESIGN.md §1: expensive steps move to the worker).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .context import new_event_id
from .events import AuditEvent, AuditEventType, ErrorDetail, Status, fast_event
from .runs import Run


def utc_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)



class PendingEvent:
    """An event as the callback saw it, built into an ``AuditEvent`` on the worker.

    The callback records only what could change or be lost (the run, the payload, the end
    time); ids, datetimes and the event object are made off the caller's thread. ``end_perf``
    is None for point events (no span to time).
    """

    __slots__ = ("_built", "action", "data", "end_ns", "end_perf", "error", "event_type",
                 "run", "status")

    def __init__(self, run: Run, event_type: AuditEventType, status: Status, action: str,
                 data: dict[str, Any], error: ErrorDetail | None, end_ns: int,
                 end_perf: int | None) -> None:
        self.run, self.event_type, self.status, self.action = run, event_type, status, action
        self.data, self.error, self.end_ns, self.end_perf = data, error, end_ns, end_perf
        self._built: AuditEvent | None = None

    def build(self) -> AuditEvent:
        """The event (built once; later calls return the same object)."""
        if self._built is None:
            self._built = self._point() if self.end_perf is None else self._span(self.end_perf)
        return self._built

    def _point(self) -> AuditEvent:
        run = self.run
        return fast_event(
            event_id=new_event_id(), trace_id=run.trace_id, span_id=run.span_id,
            parent_span_id=run.parent_span_id, timestamp=utc_from_ns(self.end_ns),
            event_type=self.event_type, agent=run.agent, action=self.action,
            status=self.status, run_id=run.run_id_text, data=self.data, error=self.error,
        )

    def _span(self, end_perf: int) -> AuditEvent:
        run, data, extra = self.run, self.data, self.run.extra
        unknown_start = extra.get("start_unknown", False)
        if unknown_start:
            data["start_unknown"] = True
        if extra.get("root"):
            data["run_root"] = True
            if extra.get("trace_root"):
                data["trace_root"] = True
                if "upstream_sampled" in extra:
                    data["upstream_sampled"] = extra["upstream_sampled"]
        return fast_event(
            event_id=new_event_id(), trace_id=run.trace_id, span_id=run.span_id,
            parent_span_id=run.parent_span_id, timestamp=utc_from_ns(self.end_ns),
            start_time=utc_from_ns(run.start_ns), event_type=self.event_type, agent=run.agent,
            action=self.action, status=self.status,
            latency_ms=None if unknown_start else (end_perf - run.start_perf_ns) / 1e6,
            run_id=run.run_id_text, data=data, error=self.error,
        )
