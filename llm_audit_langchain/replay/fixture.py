"""``ReplayFixture``: error snapshots, recorded results and whole traces, read back
from the JSONL files, for tests and offline debugging.

``path`` is always a JSONL file or a directory of them. Corrupt lines are skipped and counted
(pass a :class:`ScanStats` to see them); nothing here raises on a bad line.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import TraceNotFoundError
from ..events import AuditEvent
from .reading import ScanStats, in_trace_order, scan

PathLike = str | os.PathLike[str]
_OUTPUT_KEYS = ("output", "outputs", "documents")
_INPUT_KEYS = ("input", "inputs", "messages", "query")


def load_trace(path: PathLike, trace_id: str, stats: ScanStats | None = None) -> list[AuditEvent]:
    """Every event of one trace, in recorded order. ``trace_id`` may be a unique prefix.

    Raises :class:`TraceNotFoundError` when no event (or more than one trace) matches.
    """
    wanted = trace_id.strip().lower()
    if not wanted:
        raise TraceNotFoundError("empty trace id")
    events = [e for e in scan(path, stats, keep=lambda line: wanted in line)
              if e.trace_id.startswith(wanted)]
    found = sorted({e.trace_id for e in events})
    if not found:
        raise TraceNotFoundError(f"no events for trace {trace_id!r} in {os.fspath(path)}")
    if len(found) > 1:
        raise TraceNotFoundError(f"trace id prefix {trace_id!r} matches {len(found)} traces: "
                                 + ", ".join(found[:5]))
    return in_trace_order(events)


class ReplayFixture:
    """Recorded material for regression tests and mocks.

    Example::

        errors = ReplayFixture.errors_from_jsonl("logs", action="get_weather")
        snapshot = errors[0]["input_snapshot"]          # the args the tool failed with
        mock = ReplayFixture.successful_result("logs", "get_weather")["output"]
    """

    @staticmethod
    def errors_from_jsonl(path: PathLike, action: str | None = None,
                          stats: ScanStats | None = None) -> list[dict[str, Any]]:
        """Every error snapshot (events with an ``error``), in file order, optionally only those
        of ``action``. An error that bubbles up is recorded once per run it passed through (the
        tool, its node, the graph): the first of a trace is where it started."""
        snapshots = []
        for event in scan(path, stats):
            if event.error is None or (action is not None and event.action != action):
                continue
            snapshots.append({
                **event.error.model_dump(mode="json"),
                "trace_id": event.trace_id, "span_id": event.span_id,
                "event_type": str(event.event_type), "action": event.action,
                "agent": event.agent, "status": event.status,
                "timestamp": event.timestamp.isoformat(),
            })
        return snapshots

    @staticmethod
    def successful_result(path: PathLike, action: str,
                          stats: ScanStats | None = None) -> dict[str, Any] | None:
        """The most recent successful run of ``action`` (a tool, model, node or chain name):
        ``{"input", "output", "trace_id", "span_id", "event_type", "action", "timestamp"}``, or
        None when there is none. Use ``["output"]`` as a mock of that component."""
        latest: AuditEvent | None = None
        for event in scan(path, stats, keep=lambda line: action in line):
            if (event.action == action and event.status == "ok" and event.is_span
                    and any(k in event.data for k in _OUTPUT_KEYS)
                    and (latest is None or event.timestamp >= latest.timestamp)):
                latest = event
        if latest is None:
            return None
        data = latest.data
        return {
            "input": next((data[k] for k in _INPUT_KEYS if k in data), None),
            "output": next(data[k] for k in _OUTPUT_KEYS if k in data),
            "trace_id": latest.trace_id, "span_id": latest.span_id,
            "event_type": str(latest.event_type), "action": latest.action,
            "timestamp": latest.timestamp.isoformat(),
        }

    @staticmethod
    def full_trace(path: PathLike, trace_id: str,
                   stats: ScanStats | None = None) -> list[AuditEvent]:
        """Every event of ``trace_id``, ordered (see :func:`load_trace`)."""
        return load_trace(path, trace_id, stats)
