"""Feedback and scores: what a person or an evaluator said about an answer, in its record.

:func:`record_feedback` writes a ``feedback`` event into the audit stream, joined to the trace
(and, narrowed with ``span_id`` or ``run_id``, to one step of it). It goes through the same
pipeline as every event: sanitized (a comment is free text), exported to every sink, the hash
chain included, and kept whatever the trace's sampling decision was. Example::

    record_feedback(trace_id, score=0.2, label="wrong_account", comment="paid the old IBAN",
                    by="ana@bank")
    record_feedback(trace_id, score=1.0, label="faithful", by="evaluator:faithfulness",
                    span_id=llm_span_id)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..context import new_event_id, new_span_id
from ..errors import ConfigError
from ..events import AuditEvent, AuditEventType, fast_event

if TYPE_CHECKING:
    from .handler import AuditCallbackHandler

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")


def feedback_event(
    trace_id: str,
    *,
    score: float | None = None,
    label: str | None = None,
    comment: str | None = None,
    by: str | None = None,
    span_id: str | None = None,
    run_id: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """The ``feedback`` event (pure; :func:`record_feedback` sends it). Raises ``ConfigError``
    naming the argument when an id is not a W3C id or nothing was said."""
    if not isinstance(trace_id, str) or not _TRACE_ID.match(trace_id):
        raise ConfigError(f"record_feedback: trace_id={trace_id!r} is not 32 lowercase hex")
    if span_id is not None and not _SPAN_ID.match(str(span_id)):
        raise ConfigError(f"record_feedback: span_id={span_id!r} is not 16 lowercase hex")
    if score is None and label is None and comment is None:
        raise ConfigError("record_feedback: give at least one of score, label or comment")
    if score is not None and not isinstance(score, int | float):
        raise ConfigError(f"record_feedback: score={score!r} is not a number")
    data: dict[str, Any] = {"score": score, "label": label, "comment": comment, "by": by}
    if span_id is not None:
        data["about_span_id"] = span_id
    if run_id is not None:
        data["about_run_id"] = str(run_id)
    return fast_event(
        event_id=new_event_id(), trace_id=trace_id, span_id=new_span_id(),
        parent_span_id=span_id, timestamp=at or datetime.now(UTC),
        event_type=AuditEventType.FEEDBACK, agent=by or "feedback", action="feedback",
        run_id=None if run_id is None else str(run_id), data=data,
    )


def record_feedback(
    trace_id: str,
    *,
    score: float | None = None,
    label: str | None = None,
    comment: str | None = None,
    by: str | None = None,
    span_id: str | None = None,
    run_id: str | None = None,
    handler: AuditCallbackHandler | None = None,
) -> AuditEvent:
    """Record feedback on a trace (or one span/run of it) through ``handler`` (by default the
    process's default audit handler); returns the event as queued (sanitized on the worker).

    Never blocks. Raises ``ConfigError`` when there is no handler to record it with.
    """
    event = feedback_event(trace_id, score=score, label=label, comment=comment, by=by,
                           span_id=span_id, run_id=run_id)
    if handler is None:
        from .handler import get_default_handler

        handler = get_default_handler()
    if handler is None:
        raise ConfigError("record_feedback: no audit handler; pass handler= or create one")
    handler.emit_event(event)
    return event
