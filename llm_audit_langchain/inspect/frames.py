"""Recorded traces as pandas DataFrames and matplotlib figures, for your own analysis in a
notebook. Needs the ``notebook`` extra (``pip install 'llm-audit-langchain[notebook]'``).

Columns of :func:`events_frame` (one row per event, or per span when given spans):

=================  ==========================================================================
``trace_id``       W3C trace id
``span_id``        the run's span id; ``parent_span_id`` its parent's
``event_type``     e.g. ``llm.invoke``, ``tool.error`` (string)
``kind``           ``llm``, ``tool``, ``node``, ``route``, ``chain`` or ``point``
``node``           the graph node (the event's ``agent``); ``action`` the run's name
``label``          the name a view shows (``llm <model>``, ``tool <name>``, ``route a → b``)
``status``         ``ok``, ``error``, ``timeout`` or ``retry``
``start``          UTC start of the run (``NaT`` for point events); ``timestamp`` its end
``latency_ms``     the run's latency
``tokens_input``   tokens in/out (``tokens_output``), nullable integers
``cost_usd``       computed cost (``NaN`` when the price is unknown)
``model``          model id of LLM calls
``thread_id``      the LangGraph thread, when the graph ran with one
``error_type``     exception class and ``error_message``, for failed runs
=================  ==========================================================================

:func:`traces_frame` has one row per trace: ``trace_id``, ``start``, ``end``, ``status``,
``has_error``, ``latency_ms``, ``spans``, ``events``, ``tokens_input``, ``tokens_output``,
``cost_usd``, ``user_id``, ``thread_id``, ``models``, ``nodes``, ``errors``, ``input``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AuditError
from .views import BREAKDOWN_KEYS, breakdown, kind_of, span_label, span_tree

if TYPE_CHECKING:
    from ..events import AuditEvent
    from .traces import Trace

_HINT = "needs the notebook extra: pip install 'llm-audit-langchain[notebook]'"

EVENT_COLUMNS = ("trace_id", "span_id", "parent_span_id", "event_type", "kind", "node", "action",
                 "label", "status", "start", "timestamp", "latency_ms", "tokens_input",
                 "tokens_output", "cost_usd", "model", "thread_id", "error_type", "error_message")


class NotebookExtraMissingError(AuditError, ImportError):
    """pandas or matplotlib is not installed."""


def _pandas() -> Any:
    try:
        import pandas  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise NotebookExtraMissingError(f"to_dataframe() {_HINT}") from exc
    return pandas


def _figure(ax: Any, height: float) -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise NotebookExtraMissingError(f"plotting {_HINT}") from exc
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=(10, height), layout="constrained")
    return figure, figure.add_subplot()


def events_frame(events: Iterable[AuditEvent]) -> Any:
    """One row per event (see the module doc for the columns)."""
    pandas = _pandas()
    rows = [{
        "trace_id": e.trace_id, "span_id": e.span_id, "parent_span_id": e.parent_span_id,
        "event_type": str(e.event_type), "kind": kind_of(e), "node": e.agent, "action": e.action,
        "label": span_label(e), "status": e.status, "start": e.start_time,
        "timestamp": e.timestamp, "latency_ms": e.latency_ms, "tokens_input": e.tokens_input,
        "tokens_output": e.tokens_output, "cost_usd": e.cost_usd, "model": e.model,
        "thread_id": e.data.get("thread_id"),
        "error_type": e.error.type if e.error is not None else None,
        "error_message": e.error.message if e.error is not None else None,
    } for e in events]
    frame = pandas.DataFrame(rows, columns=list(EVENT_COLUMNS))
    for column in ("start", "timestamp"):
        frame[column] = pandas.to_datetime(frame[column], utc=True)
    for column in ("tokens_input", "tokens_output"):
        frame[column] = frame[column].astype("Int64")
    frame["cost_usd"] = frame["cost_usd"].astype("float64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    return frame


def traces_frame(traces: Iterable[Trace]) -> Any:
    """One row per trace (see the module doc for the columns)."""
    pandas = _pandas()
    rows = [{
        "trace_id": t.trace_id, "start": t.start, "end": t.end, "status": t.status,
        "has_error": t.has_error, "latency_ms": t.latency_ms, "spans": len(t.spans),
        "events": len(t.events), "tokens_input": t.tokens_input, "tokens_output": t.tokens_output,
        "cost_usd": t.cost_usd, "user_id": t.user_id, "thread_id": t.thread_id,
        "models": ", ".join(t.models), "nodes": ", ".join(t.nodes), "errors": len(t.errors),
        "input": t.input_text,
    } for t in traces]
    frame = pandas.DataFrame(rows)
    if not rows:
        return frame
    for column in ("start", "end"):
        frame[column] = pandas.to_datetime(frame[column], utc=True)
    frame["cost_usd"] = frame["cost_usd"].astype("float64")
    return frame


_COLOURS = {"llm": "#8250df", "tool": "#1a7f37", "node": "#0969da", "route": "#bf8700"}


def plot_timeline(trace: Trace, ax: Any = None, max_spans: int = 200) -> Any:
    """A Gantt chart of a trace's spans (tree order, failed runs in red); a ``Figure``."""
    nodes = [n for root in span_tree(trace.events) for n in root.walk()
             if n.span.start_time is not None][:max_spans]
    figure, ax = _figure(ax, max(2.0, 0.28 * len(nodes) + 1))
    t0 = trace.start
    for row, node in enumerate(nodes):
        span = node.span
        assert span.start_time is not None
        left = (span.start_time - t0).total_seconds() * 1000
        colour = "#cf222e" if span.status in ("error", "timeout") else _COLOURS.get(
            kind_of(span), "#8c959f")
        ax.barh(row, max(span.latency_ms or 0.0, 0.01), left=left, color=colour)
    ax.set_yticks(range(len(nodes)),
                  ["  " * min(n.depth, 8) + span_label(n.span)[:50] for n in nodes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms since the trace started")
    ax.set_title(f"trace {trace.trace_id[:16]} timeline")
    return figure


def plot_costs(traces: Sequence[Trace], by: str = "model", ax: Any = None) -> Any:
    """LLM cost by ``model``, ``node``, ``user``, ``day`` or ``thread`` (bars, tokens in the
    labels); a ``Figure``."""
    if by not in BREAKDOWN_KEYS:
        raise ValueError(f"by must be one of {sorted(BREAKDOWN_KEYS)}, not {by!r}")
    rows = breakdown(traces, BREAKDOWN_KEYS[by])
    figure, ax = _figure(ax, max(2.0, 0.4 * len(rows) + 1))
    ax.barh([r.key[:40] for r in rows], [r.cost_usd or 0.0 for r in rows], color="#8250df")
    for index, row in enumerate(rows):
        ax.annotate(f" {row.tokens_input}→{row.tokens_output} tokens, {row.calls} calls"
                    + (f", {row.unpriced_calls} unpriced" if row.unpriced_calls else ""),
                    (row.cost_usd or 0.0, index), va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("cost (USD)")
    ax.set_title(f"LLM cost by {by}")
    return figure
