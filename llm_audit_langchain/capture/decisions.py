"""Agent decisions that no single callback states: retries, fallbacks, LangGraph retry policies.

LangChain and LangGraph show them only as patterns across runs (measured on langchain-core 1.7
and langgraph 1.2):

* ``with_retry``: one child run per attempt under the retry wrapper; attempts ≥ 2 are tagged
  ``retry:attempt:N``. The cause is the previous attempt's error.
* ``RunnableWithFallbacks``: the primary child fails, then the backup child starts.
* LangGraph ``RetryPolicy``: the same node runs again with the same ``langgraph_step`` and
  ``langgraph_checkpoint_ns`` after an error.

:class:`DecisionTracker` remembers the last failed child per parent and the last failure per
graph task, bounded, and turns a matching start into a :class:`Decision` the handler emits.
Only O(1) dict operations: it runs on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..events import AuditEventType, ErrorDetail
from .error_text import error_message
from .runs import Run, tag_number

_RETRY_TAG = "retry:attempt:"
_FALLBACKS = "RunnableWithFallbacks"
_MAX_REMEMBERED = 10_000


@dataclass(slots=True, frozen=True)
class Failure:
    """What is kept of a failed run until its retry or fallback starts."""

    name: str
    span_id: str
    error_type: str
    message: str
    attempt: int = 1


@dataclass(slots=True, frozen=True)
class Decision:
    """A point event to emit on the run that just started."""

    event_type: AuditEventType
    data: dict[str, Any]
    cause: Failure | None

    def error(self) -> ErrorDetail | None:
        """The cause as an ``ErrorDetail`` (its traceback is on the failed run's own event)."""
        if self.cause is None:
            return None
        return ErrorDetail(type=self.cause.error_type, message=self.cause.message)


def _bounded_put(store: dict[Any, Failure], key: Any, value: Failure) -> None:
    store[key] = value
    if len(store) > _MAX_REMEMBERED:
        store.pop(next(iter(store)), None)


class DecisionTracker:
    """Recognises retries and fallbacks from run starts and failures (thread-safe via the GIL's
    atomic dict operations; every structure is bounded)."""

    def __init__(self) -> None:
        self._failed_child: dict[UUID, Failure] = {}  # parent run id -> last failed child
        self._failed_task: dict[tuple[str, str], Failure] = {}  # (trace, checkpoint ns)

    def on_start(self, run: Run, parent: Run | None) -> Decision | None:
        """The decision a starting run reveals, if any."""
        if not (run.is_node or self._failed_child or (parent and parent.name == _FALLBACKS)):
            return None  # the common case: nothing has failed under any parent
        attempt = tag_number(run.tags, _RETRY_TAG) if run.tags else None
        if attempt is not None and run.parent_run_id is not None:
            cause = self._failed_child.pop(run.parent_run_id, None)
            return Decision(AuditEventType.AGENT_RETRY,
                            {"attempt": attempt, "source": "with_retry",
                             "failed_span_id": cause.span_id if cause else None}, cause)
        if parent is not None and parent.name == _FALLBACKS and run.parent_run_id is not None:
            cause = self._failed_child.pop(run.parent_run_id, None)
            if cause is None:
                return None  # the primary: nothing has failed yet
            return Decision(AuditEventType.AGENT_FALLBACK,
                            {"primary": cause.name, "backup": run.name,
                             "failed_span_id": cause.span_id}, cause)
        if run.is_node:
            key = (run.trace_id, str(run.metadata.get("langgraph_checkpoint_ns", "")))
            cause = self._failed_task.get(key)
            if cause is not None:
                run.extra["attempt"] = cause.attempt + 1
                return Decision(AuditEventType.AGENT_RETRY,
                                {"attempt": cause.attempt + 1, "source": "retry_policy",
                                 "failed_span_id": cause.span_id}, cause)
        return None

    def on_failure(self, run: Run, error: BaseException, error_type: str) -> None:
        """Remember a failed run for the retry or fallback that may follow."""
        failure = Failure(run.name, run.span_id, error_type, error_message(error),
                          run.extra.get("attempt", 1))
        if run.parent_run_id is not None:
            _bounded_put(self._failed_child, run.parent_run_id, failure)
        if run.is_node:
            key = (run.trace_id, str(run.metadata.get("langgraph_checkpoint_ns", "")))
            _bounded_put(self._failed_task, key, failure)

    def on_success(self, run: Run) -> None:
        """A run that ended well: its task and its parent need no retry record any more."""
        if run.is_node and self._failed_task:  # usually empty: skip building the key
            key = (run.trace_id, str(run.metadata.get("langgraph_checkpoint_ns", "")))
            self._failed_task.pop(key, None)

    def on_parent_end(self, run_id: UUID) -> None:
        """A parent ended: forget the failures of its children."""
        if self._failed_child:  # usually empty: skip hashing the UUID
            self._failed_child.pop(run_id, None)

    def __len__(self) -> int:
        return len(self._failed_child) + len(self._failed_task)
