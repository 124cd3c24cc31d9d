"""Events as the callbacks saw them, built into ``AuditEvent``s on the pipeline's worker.

A callback records only what could change or be lost (the run record, the payload, the
moment) and queues a :class:`PendingEvent`; ids, datetimes, graph coordinates and the event
object are made off the caller's thread, in batches (the hot path does the least work that keeps
the record true; anything more expensive moves to the worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..context import new_event_id
from ..events import AuditEvent, AuditEventType, ErrorDetail, Status, fast_event
from .runs import Run

# Built and enriched as they arrive, sampled out or not: LLM calls (cost for the sampler and
# the cost roll-up) and, below, errors (always kept) and the root run's end (decides the trace).
_EAGER_TYPES = frozenset({AuditEventType.LLM_INVOKE, AuditEventType.LLM_ERROR})
_LANGGRAPH_KEYS = ("langgraph_node", "langgraph_step", "langgraph_checkpoint_ns", "langgraph_path")


def utc_from_ns(ns: int) -> datetime:
    """The UTC time of ``ns`` nanoseconds since the epoch, to the microsecond below, exactly.
    ``fromtimestamp(ns / 1e9)`` rounds a float whose error at today's dates is ~0.1 µs, so two
    moments a microsecond apart could share a timestamp (and the stores order equal timestamps
    by event id, not by when they happened). Whole microseconds over 1e6 are off by less than
    half a microsecond, which ``fromtimestamp``'s rounding to the microsecond removes."""
    return datetime.fromtimestamp((ns // 1000) / 1e6, UTC)


def graph_info(run: Run) -> dict[str, Any]:
    """LangGraph coordinates of a run (node, step, checkpoint ns, path; thread id), computed
    once per run: several events of one run carry them."""
    cached: dict[str, Any] | None = run.extra.get("graph_info")
    if cached is not None:
        return cached
    meta = run.metadata
    info: dict[str, Any] = {}
    if "langgraph_node" in meta:
        info["langgraph"] = {key[10:]: meta[key] for key in _LANGGRAPH_KEYS if key in meta}
        thread_id = meta.get("thread_id")
        if thread_id:
            info["thread_id"] = thread_id
    run.extra["graph_info"] = info
    return info


class PendingEvent:
    """An event as the callback saw it, built into an ``AuditEvent`` on the worker.

    The callback records only what could change or be lost (the run, the payload, the moment
    on the monotonic clock); ids, datetimes and the event object are made off the caller's
    thread. Wall-clock times are the run's start plus monotonic time elapsed, so a trace's
    timestamps never run backwards when the system clock is stepped. ``span`` is False for
    point events (no latency to report).
    """

    __slots__ = ("_built", "action", "data", "error", "event_type", "perf_ns", "run", "span",
                 "status")

    def __init__(self, run: Run, event_type: AuditEventType, status: Status, action: str,
                 data: dict[str, Any], error: ErrorDetail | None, perf_ns: int,
                 span: bool = False) -> None:
        self.run, self.event_type, self.status, self.action = run, event_type, status, action
        self.data, self.error, self.perf_ns, self.span = data, error, perf_ns, span
        self._built: AuditEvent | None = None

    # What the sampler reads before deciding whether this event is worth building.
    cost_usd = None
    latency_ms = None
    written: threading.Event | None = None  # set once durable (write-ahead events only)

    @property
    def trace_id(self) -> str:
        return self.run.trace_id

    @property
    def deferrable(self) -> bool:
        """True when only this event needs it built, and only if its trace is kept."""
        return not (self.event_type in _EAGER_TYPES or self.status in ("error", "timeout")
                    or (self.span and self.run.extra.get("root", False)))

    @property
    def closes_trace(self) -> bool:
        """True for the root run's closing event: its trace's sampling decision waits for it."""
        return self.span and bool(self.run.extra.get("trace_root"))

    def build(self) -> AuditEvent:
        """The event (built once; later calls return the same object)."""
        if self._built is None:
            self._built = self._make()
        return self._built

    def _make(self) -> AuditEvent:
        run, data = self.run, self.data
        info = graph_info(run)
        if info:
            data.update(info)
        span: dict[str, Any] = {}  # what only a span event has: its start and its latency
        if self.span:
            extra = run.extra
            unknown_start = extra.get("start_unknown", False)
            if unknown_start:
                data["start_unknown"] = True
            if extra.get("root"):
                data["run_root"] = True
                if extra.get("trace_root"):
                    data["trace_root"] = True
                    if "upstream_sampled" in extra:
                        data["upstream_sampled"] = extra["upstream_sampled"]
            span["start_time"] = utc_from_ns(run.start_ns)
            span["latency_ms"] = (None if unknown_start
                                  else (self.perf_ns - run.start_perf_ns) / 1e6)
        return fast_event(
            event_id=new_event_id(), trace_id=run.trace_id, span_id=run.span_id,
            parent_span_id=run.parent_span_id,
            timestamp=utc_from_ns(run.start_ns + self.perf_ns - run.start_perf_ns),
            event_type=self.event_type, agent=run.agent, action=self.action, status=self.status,
            run_id=run.run_id_text, data=data, error=self.error, **span,
        )


class WriteAheadEvent(PendingEvent):
    """The ``tool.call`` of a side-effecting tool: built and released as soon as it arrives
    (never held by the sampler, and it keeps its trace), and ``written`` is set once a durable
    exporter (the audit chain) has it on disk, which the tool may wait for before it runs."""

    __slots__ = ("written",)

    def __init__(self, run: Run, data: dict[str, Any], perf_ns: int) -> None:
        data["write_ahead"] = True
        super().__init__(run, AuditEventType.TOOL_CALL, "ok", run.name, data, None, perf_ns)
        self.written = threading.Event()

    @property
    def deferrable(self) -> bool:
        return False


class DerivedEvent(PendingEvent):
    """A point event whose data the worker computes from the LLM call it belongs to (``source``,
    queued right after it): the model's tool selection, the agent's decision, the prompt's
    efficiency. The callback queues only this item; the dicts and lists of the data are made on
    the worker, so the caller's thread neither builds them nor keeps them alive until the worker
    drains (each object held per queued run makes the host's garbage collector run more often)."""

    __slots__ = ("derive", "source")

    def __init__(self, run: Run, event_type: AuditEventType, source: PendingEvent,
                 derive: Callable[[PendingEvent], dict[str, Any]], perf_ns: int) -> None:
        super().__init__(run, event_type, "ok", run.name, {}, None, perf_ns)
        self.source, self.derive = source, derive

    def _make(self) -> AuditEvent:
        self.data = self.derive(self.source)  # the empty placeholder only served the sampler
        return super()._make()


# ``source.data`` below is the LLM call's data as the callback queued it: whether that event was
# built, enriched or sanitized meanwhile, its message and its tool names are still there.

def _chosen_calls(llm: PendingEvent) -> list[Any]:
    return getattr(llm.data.get("output"), "tool_calls", None) or []


def tool_selection(llm: PendingEvent) -> dict[str, Any]:
    """The tools the model was offered and the calls it chose (``tool.selection``)."""
    calls = [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id")}
             for c in _chosen_calls(llm)]
    return {"offered": llm.data.get("tools_offered", []), "calls": calls}


def agent_decision(llm: PendingEvent) -> dict[str, Any]:
    """Whether the agent loop goes on to tools or answers (``agent.decision``)."""
    calls = _chosen_calls(llm)
    return {"decision": "call_tools" if calls else "respond",
            "tools": [c.get("name") for c in calls]}


def prompt_efficiency(llm: PendingEvent) -> dict[str, Any]:
    """What ``measure_prompt_efficiency`` reads on the worker (``prompt.efficiency``)."""
    return {"_raw": {"llm": llm, "prompt": llm.data.get("messages")}}
