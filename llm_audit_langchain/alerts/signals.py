"""What one audit event adds to the traffic windows: requests, errors, timeouts, slow requests,
tool calls and failures, retries, cost and tokens, request latencies, and a few example trace ids.

The same definitions serve the live engine and ``llm-audit slo`` over recorded files (there each
request is weighted by 1 / its keep probability, as ``llm-audit stats`` does):

- a *request* is a root run: an event that closes a span and carries ``data.trace_root``;
- an *error* is a request whose root ended with status ``error``;
- a *timeout* is a request with a ``timeout`` status anywhere in its trace (counted once);
- a *slow* request took longer than the latency threshold (1,500 ms by default);
- a *tool failure* is a ``tool.error`` among ``tool.result`` + ``tool.error``;
- a *retry* is an ``agent.retry`` event or any other event with status ``retry``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from ..events import AuditEvent, AuditEventType
from .windows import Buckets, Samples

E = AuditEventType
_TOOL = (E.TOOL_RESULT, E.TOOL_ERROR)
_LLM = (E.LLM_INVOKE, E.LLM_ERROR)
_ALERTS = (E.ALERT_FIRED, E.ALERT_RESOLVED)
SERIES = ("requests", "errors", "timeouts", "slow", "tool_calls", "tool_errors", "retries",
          "cost_usd", "tokens")
"""The counted series, by name."""
EVENT_TYPES = frozenset({*_TOOL, *_LLM, E.AGENT_RETRY, E.REQUEST_END})
"""What the windows read besides errors and root-run ends (which the pipeline always builds)."""
_EXAMPLES = 5
_MAX_TIMEOUT_TRACES = 10_000


def is_request(event: AuditEvent) -> bool:
    """True for the event closing a trace's root run."""
    return event.start_time is not None and bool(event.data.get("trace_root"))


class TrafficWindows:
    """The counted series and request latencies over time, plus recent example trace ids."""

    def __init__(self, width: float = 10.0, horizon: float = 90_000.0,
                 slow_threshold_ms: float = 1500.0, latency_horizon: float = 3_600.0) -> None:
        self.series = {name: Buckets(width, horizon) for name in SERIES}
        self.latency = Samples(width, latency_horizon)
        self.slow_threshold_ms = slow_threshold_ms
        self.examples: dict[str, deque[str]] = {
            name: deque(maxlen=_EXAMPLES) for name in ("errors", "timeouts", "slow",
                                                      "tool_errors", "retries", "cost_usd")}
        self._timed_out: OrderedDict[str, None] = OrderedDict()

    def record(self, event: AuditEvent, now: float, weight: float = 1.0) -> None:
        """Count ``event`` at time ``now``; ``weight`` scales what it counts (sampled files)."""
        kind, status = event.event_type, event.status
        if kind in _ALERTS:
            return
        if kind in _LLM:
            self._llm(event, now)
        elif kind in _TOOL:
            self.series["tool_calls"].add(now, weight)
            if kind is E.TOOL_ERROR:
                self._bad("tool_errors", event, now, weight)
        if kind is E.AGENT_RETRY or status == "retry":
            self._bad("retries", event, now, weight)
        if status == "timeout" and event.trace_id not in self._timed_out:
            self._timed_out[event.trace_id] = None
            if len(self._timed_out) > _MAX_TIMEOUT_TRACES:
                self._timed_out.popitem(last=False)
            self._bad("timeouts", event, now, weight)
        if is_request(event):
            self._request(event, now, weight)

    def _llm(self, event: AuditEvent, now: float) -> None:
        if event.cost_usd:
            self.series["cost_usd"].add(now, event.cost_usd)
            self.examples["cost_usd"].append(event.trace_id)
        tokens = (event.tokens_input or 0) + (event.tokens_output or 0)
        if tokens:
            self.series["tokens"].add(now, tokens)

    def _request(self, event: AuditEvent, now: float, weight: float) -> None:
        self.series["requests"].add(now, weight)
        self._timed_out.pop(event.trace_id, None)  # the trace is over
        if event.status == "error":
            self._bad("errors", event, now, weight)
        latency = event.latency_ms
        if latency is not None:
            self.latency.add(now, latency)
            if latency > self.slow_threshold_ms:
                self._bad("slow", event, now, weight)

    def _bad(self, name: str, event: AuditEvent, now: float, weight: float) -> None:
        self.series[name].add(now, weight)
        examples = self.examples[name]
        if event.trace_id not in examples:
            examples.append(event.trace_id)

    def total(self, name: str, now: float, window: float, end_ago: float = 0.0) -> float:
        """The sum of series ``name`` over the window."""
        return self.series[name].total(now, window, end_ago)

    def ratio(self, bad: str, total: str, now: float, window: float,
              min_count: float = 1.0) -> float | None:
        """``bad / total`` over the window; None below ``min_count`` of ``total``."""
        whole = self.total(total, now, window)
        if whole <= 0 or whole < min_count:
            return None
        return self.total(bad, now, window) / whole

    def example_ids(self, name: str) -> list[str]:
        """The last few trace ids that counted in series ``name``."""
        examples = self.examples.get(name)
        return list(examples) if examples is not None else []


def root_keys(event: AuditEvent) -> tuple[str | None, str | None, float, int]:
    """User id, thread id, cost and tokens of a finished request (from its cost roll-up)."""
    data = event.data
    rollup: Any = data.get("cost_rollup")
    metadata: Any = data.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    user = metadata.get("user_id") or data.get("user_id")
    thread = metadata.get("thread_id") or data.get("thread_id")
    cost, tokens = 0.0, 0
    if isinstance(rollup, dict):
        user = user or rollup.get("user_id")
        thread = thread or rollup.get("thread_id")
        cost = float(rollup.get("cost_usd") or 0.0)
        tokens = int(rollup.get("tokens_input") or 0) + int(rollup.get("tokens_output") or 0)
    return (None if user is None else str(user), None if thread is None else str(thread),
            cost, tokens)
