"""One line per recorded run: what ``llm-audit traces`` lists and what ``tail`` filters on.

A trace's summary comes from its events as read from the JSONL files (plain dicts, so a big
directory is scanned without building event objects): the root run's start, status, latency,
input and final answer; the cost roll-up; the user id (the caller's ``metadata``), the LangGraph
thread id and the models called. ``TraceFilter`` selects summaries by time, user, thread,
status, model and cost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_PREVIEW = 80
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """``2026-12-02``, ``2026-12-02T10:30`` (UTC unless it says otherwise) or an age such as
    ``15m``, ``2h``, ``7d`` (that long before now). ``ValueError`` names what is accepted."""
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 2026-12-02, 2026-12-02T10:30 or an age "
                         f"such as 15m, 2h, 7d") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str,
                                                           ensure_ascii=False)


def _content(message: Any) -> str | None:
    if isinstance(message, dict):
        return _text(message.get("content", ""))
    if isinstance(message, list | tuple) and len(message) == 2:  # ("user", "text")
        return _text(message[1])
    return None if message is None else _text(message)


def run_input(inputs: Any) -> str | None:
    """What the run was asked: the first human message, else the inputs as text."""
    if inputs is None:
        return None
    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    if isinstance(messages, list) and messages:
        human = [m for m in messages if isinstance(m, dict) and m.get("type") == "human"]
        return _content(human[0] if human else messages[0])
    if isinstance(inputs, dict) and len(inputs) == 1:
        return _text(next(iter(inputs.values())))
    return _text(inputs)


def run_answer(outputs: Any) -> str | None:
    """What the run answered: the last AI message with content, else the outputs as text."""
    if outputs is None:
        return None
    messages = outputs.get("messages") if isinstance(outputs, dict) else None
    if isinstance(messages, list) and messages:
        answers = [m for m in messages if isinstance(m, dict) and m.get("type") == "ai"
                   and m.get("content")]
        return _content(answers[-1] if answers else messages[-1])
    return _text(outputs)


@dataclass
class TraceSummary:
    """What one line of ``llm-audit traces`` shows about a trace."""

    trace_id: str
    start: datetime | None = None
    status: str | None = None  # the root run's status; None while no root was seen
    latency_ms: float | None = None
    cost_usd: float | None = None
    user_id: str | None = None
    thread_id: str | None = None
    models: set[str] = field(default_factory=set)
    input: str | None = None
    answer: str | None = None
    events: int = 0
    _llm_cost: float = 0.0
    _priced: bool = False

    def add(self, record: dict[str, Any]) -> None:
        """Take one event (a JSONL record) of this trace."""
        self.events += 1
        data = _mapping(record.get("data"))
        when = _time(record.get("start_time")) or _time(record.get("timestamp"))
        if when is not None and (self.start is None or when < self.start):
            self.start = when
        if record.get("model"):
            self.models.add(str(record["model"]))
        if str(record.get("event_type", "")).startswith("llm.") and record.get("cost_usd"):
            self._llm_cost += float(record["cost_usd"])
            self._priced = True
        self.thread_id = self.thread_id or _str(data.get("thread_id"))
        metadata = _mapping(data.get("metadata"))
        self.user_id = self.user_id or _str(metadata.get("user_id") or data.get("user_id"))
        if data.get("trace_root") and record.get("start_time") is not None:
            self._add_root(record, data)

    def _add_root(self, record: dict[str, Any], data: dict[str, Any]) -> None:
        self.status = record.get("status")
        self.latency_ms = record.get("latency_ms")
        self.start = _time(record.get("start_time")) or self.start
        rollup = _mapping(data.get("cost_rollup"))
        unpriced = rollup.get("unpriced_calls") and rollup.get("unpriced_calls") == rollup.get(
            "calls")  # every call unpriced: the roll-up's 0 is not a cost
        if rollup.get("cost_usd") is not None and not unpriced:
            self.cost_usd = float(rollup["cost_usd"])
        self.user_id = self.user_id or _str(rollup.get("user_id"))
        self.thread_id = self.thread_id or _str(rollup.get("thread_id"))
        self.input = run_input(data.get("inputs"))
        self.answer = run_answer(data.get("outputs"))

    @property
    def cost(self) -> float | None:
        """The root's cost roll-up, else the sum of the LLM calls' costs seen."""
        if self.cost_usd is not None:
            return self.cost_usd
        return self._llm_cost if self._priced else None

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (``llm-audit traces --json``)."""
        return {"trace_id": self.trace_id,
                # one width whatever the microseconds (isoformat drops a zero fraction)
                "start": self.start.isoformat(timespec="microseconds") if self.start else None,
                "status": self.status, "latency_ms": self.latency_ms, "cost_usd": self.cost,
                "user_id": self.user_id, "thread_id": self.thread_id,
                "models": sorted(self.models), "input": self.input, "answer": self.answer,
                "events": self.events}

    def line(self) -> str:
        """One line: start, trace id, status, latency, cost, user, thread, input preview."""
        start = self.start.strftime("%Y-%m-%d %H:%M:%S") if self.start else "-" * 19
        latency = "-" if self.latency_ms is None else f"{self.latency_ms:.1f} ms"
        cost = "unpriced" if self.cost is None else f"${self.cost:.6f}"
        preview = " ".join((self.input or "").split())
        if len(preview) > _PREVIEW:
            preview = preview[:_PREVIEW - 1] + "…"
        return (f"{start}  {self.trace_id}  {self.status or 'open':<7} {latency:>10}  "
                f"{cost:>10}  {self.user_id or '-':<12} {self.thread_id or '-':<12} {preview}")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class TraceFilter:
    """Which traces to show; a field left ``None`` does not filter."""

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    thread: str | None = None
    status: str | None = None
    model: str | None = None
    min_cost: float | None = None

    @property
    def needs_whole_trace(self) -> bool:
        """True when a filter reads what only the trace as a whole says (user, thread, status,
        model, cost): ``tail`` then waits for the trace's root before printing its events."""
        return any(v is not None for v in (self.user, self.thread, self.status, self.model,
                                           self.min_cost))

    def matches(self, trace: TraceSummary) -> bool:
        """True when ``trace`` passes every filter that is set."""
        checks = (
            self.since is None or (trace.start is not None and trace.start >= self.since),
            self.until is None or (trace.start is not None and trace.start <= self.until),
            self.user is None or trace.user_id == self.user,
            self.thread is None or trace.thread_id == self.thread,
            self.status is None or trace.status == self.status,
            self.model is None or any(self.model in m for m in trace.models),
            self.min_cost is None or (trace.cost or 0.0) >= self.min_cost,
        )
        return all(checks)


def summarize(records: Iterable[dict[str, Any]]) -> list[TraceSummary]:
    """A summary per trace in ``records``, oldest first."""
    traces: dict[str, TraceSummary] = {}
    for record in records:
        trace_id = record.get("trace_id")
        if not isinstance(trace_id, str):
            continue
        summary = traces.get(trace_id)
        if summary is None:
            summary = traces[trace_id] = TraceSummary(trace_id)
        summary.add(record)
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(traces.values(), key=lambda t: t.start or epoch)
