"""Recorded traces as objects: :class:`Trace` (one trace's events) and :class:`Traces` (a
filtered collection), read from a ``MemoryExporter``, JSONL files, the hash-chained audit log or
a store (PostgreSQL, MongoDB).

Example (in a notebook, the last expression renders as an HTML trace view)::

    >>> from llm_audit_langchain.inspect import Traces
    >>> traces = Traces.from_jsonl("logs").filter(status="error", model="claude")
    >>> traces.latest()                      # the most recent trace
    >>> traces["7d8beb99"]                   # by trace id or a unique prefix
    >>> traces.to_dataframe()                # one row per trace (pandas)
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

from ..events import AuditEvent, AuditEventType
from ..replay.reading import ScanStats, scan

if TYPE_CHECKING:
    from ..exporters.memory import MemoryExporter

E = AuditEventType
LLM_TYPES = frozenset({E.LLM_INVOKE, E.LLM_ERROR})
_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_STATUSES = ("ok", "error", "timeout", "retry")


def _aware(value: datetime | str) -> datetime:
    """A UTC-aware datetime from a datetime or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a time: {value!r}; use an ISO 8601 date or time such as "
                             "2026-12-02 or 2026-12-02T10:30 (UTC), or a datetime") from None
    else:
        moment = value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def distinct_errors(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Each distinct error (type and message) once, at the first event carrying it: the run
    where it started, as it bubbles up through the parents."""
    seen: set[tuple[str, str]] = set()
    first = []
    for event in events:
        if event.error is None:
            continue
        key = (event.error.type, event.error.message)
        if key not in seen:
            seen.add(key)
            first.append(event)
    return first


def is_root(event: AuditEvent) -> bool:
    """True for the span of the outermost run (``data.run_root`` or ``data.trace_root``)."""
    return event.start_time is not None and bool(
        event.data.get("run_root") or event.data.get("trace_root"))


class Trace:
    """One trace: its events in recorded order, with what a reader asks first (status, cost,
    user, thread, models, nodes, errors). ``_repr_html_`` draws it in a notebook."""

    def __init__(self, events: Iterable[AuditEvent]) -> None:
        self.events: list[AuditEvent] = sorted(events, key=lambda e: e.timestamp)
        if not self.events:
            raise ValueError("a trace needs at least one event")
        self.trace_id: str = self.events[0].trace_id

    def __repr__(self) -> str:
        return (f"<Trace {self.trace_id} {self.status} {len(self.spans)} spans "
                f"{len(self.events)} events>")

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[AuditEvent]:
        return iter(self.events)

    @cached_property
    def spans(self) -> list[AuditEvent]:
        """The events that close a run (one per span), by start time."""
        return sorted((e for e in self.events if e.start_time is not None),
                      key=lambda e: e.start_time or _MIN_TIME)

    @cached_property
    def root(self) -> AuditEvent | None:
        """The outermost run's span (the graph invoke), or None when it was not recorded."""
        return next((e for e in self.events if is_root(e)), None)

    @property
    def start(self) -> datetime:
        """When the trace began (the earliest start or timestamp)."""
        starts = [e.start_time for e in self.spans if e.start_time is not None]
        return min([*starts, self.events[0].timestamp])

    @property
    def end(self) -> datetime:
        """When its last event was recorded."""
        return self.events[-1].timestamp

    @property
    def latency_ms(self) -> float | None:
        """The root run's latency, or the span of all its events when there is no root."""
        if self.root is not None and self.root.latency_ms is not None:
            return self.root.latency_ms
        return (self.end - self.start).total_seconds() * 1000

    @cached_property
    def has_error(self) -> bool:
        """True when any run of the trace failed (even one the graph recovered from)."""
        return any(e.status in ("error", "timeout") for e in self.events)

    @property
    def status(self) -> str:
        """The root run's status; without a root, ``error`` when any run failed, else ``ok``."""
        if self.root is not None:
            return self.root.status
        return "error" if self.has_error else "ok"

    @cached_property
    def user_id(self) -> str | None:
        """``user_id`` from the caller's ``config["metadata"]``, when it was given."""
        for event in self.events:
            metadata = event.data.get("metadata")
            user = metadata.get("user_id") if isinstance(metadata, dict) else None
            user = user or event.data.get("user_id")
            if user is not None:
                return str(user)
        return None

    @cached_property
    def thread_id(self) -> str | None:
        """The LangGraph thread (conversation) id, when the graph ran with one."""
        for event in self.events:
            thread = event.data.get("thread_id")
            if thread is not None:
                return str(thread)
        return None

    @cached_property
    def models(self) -> list[str]:
        """Model ids of the trace's LLM calls, in first-use order."""
        return list(dict.fromkeys(e.model for e in self.events if e.model))

    @cached_property
    def nodes(self) -> list[str]:
        """Graph nodes (``agent``) the trace ran through, in first-seen order."""
        return list(dict.fromkeys(e.agent for e in self.events if e.agent))

    @cached_property
    def event_types(self) -> frozenset[str]:
        """The event types present."""
        return frozenset(str(e.event_type) for e in self.events)

    @cached_property
    def llm_calls(self) -> list[AuditEvent]:
        """The LLM call events (``llm.invoke`` and ``llm.error``)."""
        return [e for e in self.events if e.event_type in LLM_TYPES]

    @property
    def tokens_input(self) -> int:
        """Input tokens over its LLM calls (unknown usage counts as 0)."""
        return sum(e.tokens_input or 0 for e in self.llm_calls)

    @property
    def tokens_output(self) -> int:
        """Output tokens over its LLM calls."""
        return sum(e.tokens_output or 0 for e in self.llm_calls)

    @cached_property
    def cost_usd(self) -> float | None:
        """Cost of its LLM calls; None when a call's price was unknown (never a fake 0)."""
        total = 0.0
        for event in self.llm_calls:
            if event.cost_usd is None:
                return None
            total += event.cost_usd
        return total

    @cached_property
    def errors(self) -> list[AuditEvent]:
        """Each distinct error once, at the run where it started (errors bubble up)."""
        return distinct_errors(e for e in self.events if e.status in ("error", "timeout"))

    @cached_property
    def input_text(self) -> str:
        """The root run's recorded (sanitized) input messages as plain text, for search."""
        root = self.root
        if root is None:
            return ""
        from .views import message_text

        return message_text(root.data.get("inputs") or root.data.get("outputs"))

    def to_dataframe(self, per: str = "span") -> Any:
        """A pandas DataFrame, one row per span (``per="span"``) or event (``"event"``); see
        :func:`llm_audit_langchain.inspect.frames.events_frame` for the columns."""
        from .frames import events_frame

        return events_frame(self.spans if per == "span" else self.events)

    def plot_timeline(self, ax: Any = None) -> Any:
        """A Gantt chart of the spans (a matplotlib ``Figure``)."""
        from .frames import plot_timeline

        return plot_timeline(self, ax=ax)

    def plot_costs(self, by: str = "node", ax: Any = None) -> Any:
        """Cost and tokens by ``node`` or ``model`` (a matplotlib ``Figure``)."""
        from .frames import plot_costs

        return plot_costs([self], by=by, ax=ax)

    def _repr_html_(self) -> str:
        from .html.view import trace_view

        return trace_view(self, standalone=True)


class Traces(Sequence[Trace]):
    """Traces in start order (oldest first), filtered with :meth:`filter`."""

    def __init__(self, traces: Iterable[Trace], *, scan_stats: ScanStats | None = None) -> None:
        self._traces = sorted(traces, key=lambda t: t.start)
        self._by_id = {t.trace_id: t for t in self._traces}
        self.scan_stats = scan_stats

    @classmethod
    def from_events(cls, events: Iterable[AuditEvent]) -> Traces:
        """Group events by trace id."""
        grouped: dict[str, list[AuditEvent]] = defaultdict(list)
        for event in events:
            grouped[event.trace_id].append(event)
        return cls(Trace(group) for group in grouped.values())

    @classmethod
    def from_memory(cls, exporter: MemoryExporter) -> Traces:
        """The traces a ``MemoryExporter`` holds now (call ``handler.flush()`` first)."""
        return cls.from_events(exporter.events)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str]) -> Traces:
        """Every trace in a JSONL file or directory (corrupt lines skipped, counted in
        ``scan_stats``). A directory of hash-chained ``audit-chain-*`` files reads the same."""
        stats = ScanStats()
        traces = cls.from_events(scan(path, stats))
        traces.scan_stats = stats
        return traces

    @classmethod
    def from_store(cls, uri: str, *, table: str = "llm_audit") -> Traces:
        """Every trace in a store: ``postgresql://...`` (``table``), ``mongodb://...``
        (``table`` is the collection) or a JSONL file or directory."""
        from .stores import open_store

        store = open_store(uri, table=table)
        try:
            return cls.from_events(store.events())
        finally:
            store.close()

    @classmethod
    def from_chain(cls, directory: str | os.PathLike[str]) -> Traces:
        """Every trace in a hash-chained audit directory (its ``audit-chain-*`` files, even when
        plain JSONL files sit beside them): the records are events plus their hashes. Use
        :func:`llm_audit_langchain.audit.verify` to check the chain itself."""
        from pathlib import Path

        from ..audit.layout import chain_files

        stats = ScanStats()
        target = Path(directory)
        files = chain_files(target) if target.is_dir() else [target]
        traces = cls.from_events(e for file in files for e in scan(file, stats))
        traces.scan_stats = stats
        return traces

    def __repr__(self) -> str:
        return f"<Traces {len(self)} traces>"

    def __len__(self) -> int:
        return len(self._traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(self._traces)

    def __contains__(self, item: object) -> bool:
        return item in self._by_id or item in self._traces

    @overload
    def __getitem__(self, key: int) -> Trace: ...
    @overload
    def __getitem__(self, key: str) -> Trace: ...
    @overload
    def __getitem__(self, key: slice) -> Traces: ...

    def __getitem__(self, key: int | str | slice) -> Trace | Traces:
        """By position, by slice, or by trace id (or a prefix matching exactly one trace)."""
        if isinstance(key, slice):
            return Traces(self._traces[key])
        if isinstance(key, int):
            return self._traces[key]
        if key in self._by_id:
            return self._by_id[key]
        matches = [t for t in self._traces if t.trace_id.startswith(key.lower())]
        if len(matches) == 1:
            return matches[0]
        raise KeyError(f"{len(matches)} traces match {key!r}" if matches
                       else f"no trace {key!r}")

    def latest(self) -> Trace:
        """The trace that started last."""
        if not self._traces:
            raise LookupError("no traces")
        return self._traces[-1]

    def filter(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        status: str | None = None,
        user: str | None = None,
        thread: str | None = None,
        model: str | None = None,
        node: str | None = None,
        event_type: AuditEventType | str | None = None,
        min_cost: float | None = None,
        max_cost: float | None = None,
        has_error: bool | None = None,
        text: str | None = None,
    ) -> Traces:
        """The traces matching every condition given.

        ``since``/``until`` bound the trace's start (inclusive/exclusive; ISO strings or
        datetimes, naive means UTC); ``status`` is the root's status; ``model`` matches a
        substring of any model id; ``node`` and ``event_type`` match any event; ``min_cost``/
        ``max_cost`` bound the trace's cost (unpriced traces never match a cost bound);
        ``has_error`` selects traces with (or without) a failed run; ``text`` searches the
        sanitized input, case-insensitively.
        """
        checks = _checks(since=since, until=until, status=status, user=user, thread=thread,
                         model=model, node=node, event_type=event_type, min_cost=min_cost,
                         max_cost=max_cost, has_error=has_error, text=text)
        return Traces((t for t in self._traces if all(check(t) for check in checks)),
                      scan_stats=self.scan_stats)

    def by_thread(self) -> dict[str | None, list[Trace]]:
        """Traces grouped by LangGraph thread (a conversation), threads by first start."""
        groups: dict[str | None, list[Trace]] = defaultdict(list)
        for trace in self._traces:
            groups[trace.thread_id].append(trace)
        return dict(groups)

    def to_dataframe(self, per: str = "trace") -> Any:
        """A pandas DataFrame, one row per ``trace``, ``span`` or ``event`` (columns in
        :mod:`llm_audit_langchain.inspect.frames`)."""
        from .frames import events_frame, traces_frame

        if per == "trace":
            return traces_frame(self)
        rows = [e for t in self for e in (t.spans if per == "span" else t.events)]
        return events_frame(rows)

    def plot_costs(self, by: str = "model", ax: Any = None) -> Any:
        """Cost and tokens by ``model``, ``node``, ``user`` or ``day`` (a matplotlib Figure)."""
        from .frames import plot_costs

        return plot_costs(list(self), by=by, ax=ax)

    def _repr_html_(self) -> str:
        from .html.view import traces_table

        return traces_table(self)


def _checks(**conditions: Any) -> list[Any]:
    """One predicate per condition given (None means: not a condition)."""
    c = conditions
    checks: list[Any] = []
    if c["since"] is not None:
        since = _aware(c["since"])
        checks.append(lambda t: t.start >= since)
    if c["until"] is not None:
        until = _aware(c["until"])
        checks.append(lambda t: t.start < until)
    if c["status"] is not None:
        if c["status"] not in _STATUSES:
            raise ValueError(f"status={c['status']!r}: use one of {', '.join(_STATUSES)}")
        checks.append(lambda t: t.status == c["status"])
    if c["user"] is not None:
        checks.append(lambda t: t.user_id == c["user"])
    if c["thread"] is not None:
        checks.append(lambda t: t.thread_id == c["thread"])
    if c["model"] is not None:
        needle = c["model"].lower()
        checks.append(lambda t: any(needle in m.lower() for m in t.models))
    if c["node"] is not None:
        checks.append(lambda t: c["node"] in t.nodes)
    if c["event_type"] is not None:
        checks.append(lambda t: str(c["event_type"]) in t.event_types)
    if c["min_cost"] is not None:
        checks.append(lambda t: t.cost_usd is not None and t.cost_usd >= c["min_cost"])
    if c["max_cost"] is not None:
        checks.append(lambda t: t.cost_usd is not None and t.cost_usd <= c["max_cost"])
    if c["has_error"] is not None:
        checks.append(lambda t: t.has_error == c["has_error"])
    if c["text"] is not None:
        text = c["text"].lower()
        checks.append(lambda t: text in t.input_text.lower())
    return checks
