"""Human review at LangGraph interrupts: an ``interrupt()`` answered by ``Command(resume=...)``.

A graph that stops for a person and is resumed later has made a human decision. The handler
notes each interrupt per thread id (what was shown, when, in which trace, and the LLM span that
proposed the action when the interrupt shows a tool call) and, when a run of the same thread
resumes, emits a ``human.review`` event: the interrupt value, the resume value, who answered
(``reviewer`` or ``user_id`` in the resuming run's config metadata), how long it took, and the
outcome. An answer that changes or rejects the proposed action is an override: the event then
carries ``was_overridden``, ``overridden_by``, ``override_reason`` and ``final_decision``.

Resume values are read in the shapes LangGraph and LangChain use for human-in-the-loop
(``{"type": "accept" | "edit" | "reject" | "response", "args": ...}``, the middleware's
``{"decisions": [...]}``, ``True``/``False``, ``"approve"``); anything else is a response, and an
approval when it equals what was proposed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MAX_PENDING = 10_000
_APPROVE = frozenset({"accept", "accepted", "approve", "approved", "yes", "ok", "continue"})
_EDIT = frozenset({"edit", "edited", "modify", "update"})
_REJECT = frozenset({"reject", "rejected", "deny", "denied", "ignore", "no", "cancel"})
_REASON_KEYS = ("reason", "comment", "message", "feedback")
_EDITED_KEYS = ("args", "edited_action", "action", "value")


@dataclass(slots=True, frozen=True)
class PendingInterrupt:
    """What is kept of an interrupt until its thread resumes (ids and the shown value)."""

    trace_id: str
    span_id: str
    wall_ns: int
    shown: Any
    decision_span_id: str | None
    proposed: Any


def interrupt_values(interrupts: Any) -> list[Any]:
    """The values of LangGraph ``Interrupt`` objects (what the person was shown)."""
    items = interrupts if isinstance(interrupts, list | tuple) else [interrupts]
    return [getattr(item, "value", item) for item in items]


def proposed_tool_call(shown: list[Any]) -> Mapping[str, Any] | None:
    """A tool call among the shown values (``{"tool_call": {...}}`` or the call itself)."""
    for value in shown:
        if not isinstance(value, Mapping):
            continue
        call = value.get("tool_call") or value.get("action_request")
        if isinstance(call, Mapping):
            return call
        if "args" in value and ("name" in value or "id" in value):
            return value
    return None


def _word(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def review_outcome(resume: Any, proposed: Any) -> str:
    """``approved``, ``edited``, ``rejected`` or ``responded``."""
    if isinstance(resume, bool):
        return "approved" if resume else "rejected"
    if isinstance(resume, Mapping):
        decisions = resume.get("decisions")
        if isinstance(decisions, list) and decisions:
            outcomes = [review_outcome(d, None) for d in decisions]
            for outcome in ("rejected", "edited", "responded"):
                if outcome in outcomes:
                    return outcome
            return "approved"
        kind = _word(resume.get("type") or resume.get("action") or resume.get("decision"))
    else:
        kind = _word(resume)
    if kind in _APPROVE:
        return "approved"
    if kind in _EDIT:
        return "edited"
    if kind in _REJECT:
        return "rejected"
    return "approved" if proposed is not None and resume == proposed else "responded"


def _final_decision(resume: Any, outcome: str) -> Any:
    if outcome == "rejected":
        return "rejected"
    if isinstance(resume, Mapping):
        decisions = resume.get("decisions")
        if isinstance(decisions, list):
            return decisions
        for key in _EDITED_KEYS:
            if key in resume:
                return resume[key]
    return resume


def _reason(resume: Any) -> Any:
    if not isinstance(resume, Mapping):
        return None
    return next((resume[key] for key in _REASON_KEYS if resume.get(key)), None)


class ReviewTracker:
    """Pending interrupts per thread id, bounded; turns a resume into a review record."""

    def __init__(self) -> None:
        self._pending: dict[Any, PendingInterrupt] = {}

    def on_interrupt(self, thread_id: Any, trace_id: str, span_id: str, interrupts: Any,
                     tool_calls: Mapping[str, str]) -> None:
        """Note an interrupt of ``thread_id``; ``tool_calls`` maps call ids to the LLM span
        that chose them (the handler's selection map)."""
        if thread_id is None:
            return
        shown = interrupt_values(interrupts)
        call = proposed_tool_call(shown)
        call_id = call.get("id") if call is not None else None
        decision_span = tool_calls.get(call_id) if isinstance(call_id, str) else None
        self._pending.pop(thread_id, None)
        self._pending[thread_id] = PendingInterrupt(trace_id, span_id, time.time_ns(), shown,
                                                    decision_span, call)
        if len(self._pending) > _MAX_PENDING:
            self._pending.pop(next(iter(self._pending)), None)

    def on_resume(self, thread_id: Any, resume: Any, metadata: Mapping[str, Any]
                  ) -> dict[str, Any]:
        """The ``human.review`` data for a resume of ``thread_id``."""
        pending = self._pending.pop(thread_id, None) if thread_id is not None else None
        proposed = pending.proposed if pending is not None else None
        outcome = review_outcome(resume, proposed)
        reviewer = metadata.get("reviewer") or metadata.get("user_id")
        data: dict[str, Any] = {
            "thread_id": thread_id, "resume": resume, "reviewer": reviewer, "outcome": outcome,
        }
        if pending is not None:
            data.update(
                interrupt=pending.shown, proposed=proposed,
                interrupt_trace_id=pending.trace_id, interrupt_span_id=pending.span_id,
                decision_span_id=pending.decision_span_id,
                wait_ms=(time.time_ns() - pending.wall_ns) / 1e6,
            )
        else:  # interrupted in another process, or too long ago: the chain still has it
            data["interrupt_unknown"] = True
        if outcome in ("edited", "rejected"):
            data.update(was_overridden=True, overridden_by=reviewer or "unknown",
                        override_reason=_reason(resume),
                        final_decision=_final_decision(resume, outcome))
        else:
            data["was_overridden"] = False
        return data
