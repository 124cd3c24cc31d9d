"""Cost and tokens rolled up per trace, per LangGraph node, per model, per thread and per user.

A worker-side processor (``CostRollup``) that sees every LLM call and every root-run end, sampled
out or not (the pipeline builds those before the sampler decides; other events of sampled-out
traces it may never build, and the roll-up does not need them). When a trace's
root run closes, its event gets ``data["cost_rollup"]``; meanwhile the running totals per thread
id and per user are readable live (``handler.costs.live()``) for alerting. All state is bounded:
open traces (oldest dropped past ``max_traces``) and the live tables (least recent dropped past
``max_keys``).

Unknown prices stay unknown: a call whose ``cost_usd`` is ``None`` is counted in
``unpriced_calls`` and the total is a lower bound, never a fake 0.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..events import AuditEvent, AuditEventType
from ..forksafe import renew_after_fork

_LLM = (AuditEventType.LLM_INVOKE, AuditEventType.LLM_ERROR)


@dataclass(slots=True)
class Totals:
    """Cost and tokens of a group of LLM calls."""

    cost_usd: float = 0.0
    tokens_input: int = 0
    tokens_output: int = 0
    calls: int = 0
    unpriced_calls: int = 0

    def add(self, event: AuditEvent) -> None:
        self.calls += 1
        self.tokens_input += event.tokens_input or 0
        self.tokens_output += event.tokens_output or 0
        if event.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += event.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {"cost_usd": round(self.cost_usd, 12), "tokens_input": self.tokens_input,
                "tokens_output": self.tokens_output, "calls": self.calls,
                "unpriced_calls": self.unpriced_calls}


@dataclass(slots=True)
class _Trace:
    total: Totals = field(default_factory=Totals)
    by_node: dict[str, Totals] = field(default_factory=dict)
    by_model: dict[str, Totals] = field(default_factory=dict)
    thread_id: str | None = None


class CostRollup:
    """The processor. ``live()`` is safe to call from any thread."""

    def __init__(self, max_traces: int = 10_000, max_keys: int = 10_000) -> None:
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._threads: OrderedDict[str, Totals] = OrderedDict()
        self._users: OrderedDict[str, Totals] = OrderedDict()
        self._max_traces = max_traces
        self._max_keys = max_keys
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def __call__(self, event: AuditEvent) -> AuditEvent:
        trace = self._traces.get(event.trace_id)
        if event.event_type in _LLM:
            if trace is None:
                trace = self._open(event.trace_id)
            trace.total.add(event)
            node = (event.data.get("langgraph") or {}).get("node") or event.agent
            trace.by_node.setdefault(str(node), Totals()).add(event)
            trace.by_model.setdefault(event.model or "unknown", Totals()).add(event)
            thread_id = event.data.get("thread_id")
            if thread_id is not None:
                trace.thread_id = str(thread_id)
        if event.start_time is not None and (event.data.get("run_root")
                                             or event.data.get("trace_root")):
            self._close(event, trace)
        return event

    def live(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Running totals per thread id and per user (``config["metadata"]["user_id"]``)."""
        with self._lock:
            return {"by_thread": {k: v.as_dict() for k, v in self._threads.items()},
                    "by_user": {k: v.as_dict() for k, v in self._users.items()}}

    def _open(self, trace_id: str) -> _Trace:
        trace = self._traces[trace_id] = _Trace()
        if len(self._traces) > self._max_traces:
            self._traces.popitem(last=False)
        return trace

    def _close(self, root: AuditEvent, trace: _Trace | None) -> None:
        self._traces.pop(root.trace_id, None)
        trace = trace or _Trace()
        metadata = root.data.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        root.data["cost_rollup"] = {
            **trace.total.as_dict(),
            "by_node": {k: v.as_dict() for k, v in trace.by_node.items()},
            "by_model": {k: v.as_dict() for k, v in trace.by_model.items()},
            "thread_id": trace.thread_id, "user_id": user,
        }
        with self._lock:
            if trace.thread_id is not None:
                self._accumulate(self._threads, trace.thread_id, trace.total)
            if user is not None:
                self._accumulate(self._users, str(user), trace.total)

    def _accumulate(self, table: OrderedDict[str, Totals], key: str, add: Totals) -> None:
        totals = table.pop(key, None) or Totals()
        totals.cost_usd += add.cost_usd
        totals.tokens_input += add.tokens_input
        totals.tokens_output += add.tokens_output
        totals.calls += add.calls
        totals.unpriced_calls += add.unpriced_calls
        table[key] = totals  # most recent last
        if len(table) > self._max_keys:
            table.popitem(last=False)
