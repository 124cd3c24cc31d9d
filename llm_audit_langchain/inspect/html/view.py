"""The HTML trace view: header, collapsible run tree, decisions joined to tool runs, errors with
folded tracebacks, a Gantt timeline and the cost/token breakdown. Pure HTML and CSS (native
``<details>`` folds), so it works in a notebook whose output runs no script.

Every recorded string goes through :func:`esc`; numbers in ``style`` attributes are formatted
here, never taken from the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any

from ..views import (
    BREAKDOWN_KEYS,
    TreeNode,
    breakdown,
    decisions,
    duration,
    error_origin,
    kind_of,
    message_text,
    money,
    point_label,
    span_label,
    span_tree,
)
from . import asset

if TYPE_CHECKING:
    from ...events import AuditEvent
    from ..traces import Trace, Traces

MAX_CHILDREN_SHOWN = 50
"""Children of one run drawn before the rest fold into a "… N more runs" section."""
MAX_TIMELINE_ROWS = 400
OPEN_DEPTH = 2
"""Tree levels open by default (deeper levels fold; a failed run's ancestors stay open)."""
BIG_TRACE = 2000
"""From this many spans only the first level and the path to errors start open."""


def esc(value: Any) -> str:
    """HTML-escaped text of any recorded value (quotes too: safe inside attributes)."""
    return escape("" if value is None else str(value), quote=True)


def style_tag() -> str:
    """The view's stylesheet, inline."""
    return f"<style>{asset('view.css')}</style>"


def status_badge(status: str) -> str:
    return f'<span class="lat-badge st-{esc(status)}">{esc(status)}</span>'


def _tokens(event: AuditEvent) -> str:
    if event.tokens_input is None and event.tokens_output is None:
        return ""
    return f"{event.tokens_input or 0}→{event.tokens_output or 0}"


def _row(event: AuditEvent, tag: str) -> str:
    kind = kind_of(event)
    error = ""
    if event.error is not None and event.status in ("error", "timeout"):
        error = f' <span class="lat-muted">{esc(event.error.type)}: ' \
                f'{esc(event.error.message[:160])}</span>'
    cost = "" if event.cost_usd is None else money(event.cost_usd)
    return (f'<{tag} class="lat-row" title="{esc(event.event_type)} span {esc(event.span_id)}">'
            f'<span class="lat-name"><span class="lat-k">{esc(kind)}</span>'
            f"{esc(span_label(event))}{error}</span>"
            f'<span class="lat-num lat-st">{status_badge(event.status)}</span>'
            f'<span class="lat-num">{esc(duration(event.latency_ms))}</span>'
            f'<span class="lat-num">{esc(_tokens(event))}</span>'
            f'<span class="lat-num">{esc(cost)}</span></{tag}>')


def _failing(roots: list[TreeNode]) -> set[str]:
    """Span ids on the path to a failed run (kept open so the error row is visible)."""
    parent: dict[str, str | None] = {}
    failed: list[str] = []
    for root in roots:
        for node in root.walk():
            for child in node.children:
                parent[child.span.span_id] = node.span.span_id
            if node.span.status in ("error", "timeout"):
                failed.append(node.span.span_id)
    keep: set[str] = set()
    for span_id in failed:
        current: str | None = parent.get(span_id)
        while current is not None and current not in keep:
            keep.add(current)
            current = parent.get(current)
    return keep


def _tree_html(roots: list[TreeNode], total: int) -> str:
    open_depth = 1 if total >= BIG_TRACE else OPEN_DEPTH
    keep_open = _failing(roots)
    out: list[str] = []

    def node_html(node: TreeNode) -> None:
        span = node.span
        classes = f"lat-run st-{esc(span.status)} k-{esc(kind_of(span))}"
        if not node.children and not node.points:
            out.append(f'<div class="{classes} lat-leaf">{_row(span, "div")}</div>')
            return
        is_open = node.depth < open_depth or span.span_id in keep_open
        opened = " open" if is_open else ""
        out.append(f'<details class="{classes}"{opened}>{_row(span, "summary")}')
        for point in node.points:
            out.append(f'<div class="lat-pt">↳ {esc(point_label(point))}</div>')
        children_html(node.children)
        out.append("</details>")

    def children_html(children: list[TreeNode]) -> None:
        for child in children[:MAX_CHILDREN_SHOWN]:
            node_html(child)
        rest = children[MAX_CHILDREN_SHOWN:]
        if rest:
            # a failure among the folded runs keeps the fold open: the error row stays visible
            failed = any(c.span.span_id in keep_open or c.span.status in ("error", "timeout")
                         for c in rest)
            out.append(f'<details class="lat-more"{" open" if failed else ""}><summary>… '
                       f"{len(rest)} more runs</summary>")
            for child in rest:
                node_html(child)
            out.append("</details>")

    children_html(roots)
    return "".join(out)


def _io_html(trace: Trace) -> str:
    root = trace.root
    if root is None:
        return ""
    asked = message_text(root.data.get("inputs"))
    answered = message_text(_last_message(root.data.get("outputs")))
    if not asked and not answered:
        return ""
    return ('<details class="lat-sec" open><summary>Input and answer (sanitized)</summary>'
            f'<div><span class="lat-k">input</span>{esc(asked)}</div>'
            f'<div><span class="lat-k">answer</span>{esc(answered)}</div></details>')


def _last_message(outputs: Any) -> Any:
    messages = outputs.get("messages") if isinstance(outputs, dict) else None
    return messages[-1] if isinstance(messages, list) and messages else outputs


def _decisions_html(trace: Trace) -> str:
    rows = decisions(trace)
    if not rows:
        return ""
    body = []
    for row in rows:
        runs = ", ".join(
            f'{esc(run.action)} {status_badge(run.status)} {esc(duration(run.latency_ms))}'
            + (f' <span class="lat-muted">{esc(run.error.message[:120])}</span>'
               if run.error is not None else "")
            for run in row.tool_runs)
        body.append(f'<tr class="st-{esc(row.event.status)}"><td>{esc(row.kind)}</td>'
                    f"<td>{esc(row.where)}</td><td>{esc(row.text)}</td><td>{runs}</td></tr>")
    return (f'<details class="lat-sec" open><summary>Decisions ({len(rows)})</summary>'
            "<table><tr><th>kind</th><th>where</th><th>what</th><th>tool runs it started</th></tr>"
            + "".join(body) + "</table></details>")


def _json(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)[:20000]
    except (TypeError, ValueError):
        return str(value)[:20000]


def _errors_html(trace: Trace) -> str:
    errors = trace.errors
    if not errors:
        return ""
    parts = []
    for event in errors:
        error = event.error
        assert error is not None
        part = (f'<div class="lat-err"><h4>{esc(error.type)} in {esc(error_origin(event))}</h4>'
                f"<div>{esc(error.message)}</div>")
        if error.traceback:
            part += (f"<details><summary>traceback</summary><pre>{esc(error.traceback)}</pre>"
                     "</details>")
        if error.input_snapshot is not None:
            part += (f"<details><summary>input (sanitized)</summary>"
                     f"<pre>{esc(_json(error.input_snapshot))}</pre></details>")
        parts.append(part + "</div>")
    return (f'<details class="lat-sec" open><summary>Errors ({len(errors)})</summary>'
            + "".join(parts) + "</details>")


def _timeline_html(roots: list[TreeNode], trace: Trace) -> str:
    spans = [node for root in roots for node in root.walk() if node.span.start_time is not None]
    if not spans:
        return ""
    t0 = trace.start
    total_ms = max((trace.end - t0).total_seconds() * 1000, 1e-3)
    rows = []
    for node in spans[:MAX_TIMELINE_ROWS]:
        span = node.span
        assert span.start_time is not None
        left = max(0.0, (span.start_time - t0).total_seconds() * 1000 / total_ms * 100)
        width = max(0.2, (span.latency_ms or 0.0) / total_ms * 100)
        width = min(width, 100.0 - min(left, 99.8))
        title = f"{span_label(span)}: +{left * total_ms / 100:.1f} ms, {duration(span.latency_ms)}"
        rows.append(f'<div class="lat-tl-row"><span class="lat-tl-name" '
                    f'style="padding-left:{min(node.depth, 12) * 10}px">{esc(span_label(span))}'
                    f'</span><span class="lat-tl-track"><span class="lat-bar '
                    f'k-{esc(kind_of(span))} st-{esc(span.status)}" style="left:{left:.3f}%;'
                    f'width:{width:.3f}%" title="{esc(title)}"></span></span></div>')
    note = "" if len(spans) <= MAX_TIMELINE_ROWS else (
        f'<p class="lat-note">first {MAX_TIMELINE_ROWS} of {len(spans)} spans</p>')
    opened = " open" if len(spans) <= 200 else ""
    return (f'<details class="lat-sec"{opened}><summary>Timeline '
            f"({esc(duration(total_ms))})</summary>"
            + "".join(rows) + note + "</details>")


def cost_table(title: str, rows: Iterable[Any]) -> str:
    """A table of :class:`~..views.CostRow` under a heading."""
    body = "".join(
        f"<tr><td>{esc(r.key)}</td><td class=n>{r.calls}</td><td class=n>{r.tokens_input}</td>"
        f"<td class=n>{r.tokens_output}</td><td class=n>{esc(money(r.cost_usd))}"
        + (f" ({r.unpriced_calls} unpriced)" if r.unpriced_calls and r.cost_usd is not None
           else "") + "</td></tr>"
        for r in rows)
    return (f"<table><tr><th>{esc(title)}</th><th class=n>calls</th><th class=n>tokens in</th>"
            f"<th class=n>tokens out</th><th class=n>cost</th></tr>{body}</table>")


def _costs_html(trace: Trace) -> str:
    if not trace.llm_calls:
        return ""
    return ('<details class="lat-sec" open><summary>Cost and tokens</summary><div class="lat-grid">'
            + cost_table("node", breakdown([trace], BREAKDOWN_KEYS["node"]))
            + cost_table("model", breakdown([trace], BREAKDOWN_KEYS["model"]))
            + "</div></details>")


def trace_header(trace: Trace) -> str:
    """One line: status, id, latency, tokens, cost, user, thread, start."""
    items = [status_badge(trace.status), f'<b class="lat-id">{esc(trace.trace_id)}</b>',
             esc(duration(trace.latency_ms)),
             f"{trace.tokens_input} in / {trace.tokens_output} out tokens",
             esc(money(trace.cost_usd)), f"{len(trace.spans)} spans"]
    if trace.has_error and trace.status == "ok":
        items.insert(1, '<span class="lat-badge st-error">has errors</span>')
    if trace.user_id:
        items.append(f"user {esc(trace.user_id)}")
    if trace.thread_id:
        items.append(f"thread {esc(trace.thread_id)}")
    items.append(f'<span class="lat-muted">{esc(trace.start.isoformat(timespec="seconds"))}'
                 "</span>")
    return '<div class="lat-head">' + "".join(f"<span>{i}</span>" for i in items) + "</div>"


def trace_view(trace: Trace, *, standalone: bool = True) -> str:
    """The whole view of one trace (``standalone`` adds the stylesheet, for a notebook)."""
    roots = span_tree(trace.events)
    total = len(trace.spans)
    return "".join((
        '<div class="lat lat-trace" data-trace-id="', esc(trace.trace_id), '">',
        style_tag() if standalone else "",
        trace_header(trace),
        _io_html(trace),
        f'<details class="lat-sec" open><summary>Run tree ({total} spans)</summary>'
        f'<div class="lat-tree">{_tree_html(roots, total)}</div></details>',
        _errors_html(trace),
        _decisions_html(trace),
        _timeline_html(roots, trace),
        _costs_html(trace),
        "</div>",
    ))


MAX_TABLE_ROWS = 500
"""Rows of a ``Traces`` table in a notebook (the report lists every trace)."""


def trace_row(trace: Trace, link: str | None = None) -> str:
    """One ``<tr>`` of the trace list, with ``data-*`` attributes the report's filters read."""
    name = esc(trace.trace_id[:16])
    ident = f'<a href="{esc(link)}">{name}</a>' if link else name
    models = ", ".join(trace.models)
    status = "error" if trace.has_error and trace.status == "ok" else trace.status
    cost = "" if trace.cost_usd is None else f"{trace.cost_usd:.9f}"
    attrs = {"status": trace.status, "errors": "1" if trace.has_error else "0",
             "user": trace.user_id or "", "thread": trace.thread_id or "", "models": models,
             "nodes": " ".join(trace.nodes), "start": trace.start.isoformat(), "cost": cost,
             "text": (trace.input_text[:500] + " " + trace.trace_id).lower()}
    data = " ".join(f'data-{k}="{esc(v)}"' for k, v in attrs.items())
    cells = [esc(trace.start.isoformat(sep=" ", timespec="seconds")), ident,
             status_badge(trace.status) + (' <span class="lat-badge st-error">errors</span>'
                                            if status != trace.status else ""),
             esc(duration(trace.latency_ms)), f"{trace.tokens_input + trace.tokens_output}",
             esc(money(trace.cost_usd)), esc(trace.user_id or ""), esc(models),
             esc(trace.input_text[:90])]
    return (f'<tr class="lat-tr st-{esc(status)}" {data}>'
            + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")


TABLE_HEAD = ("<tr><th>start (UTC)</th><th>trace</th><th>status</th><th>latency</th>"
              "<th>tokens</th><th>cost</th><th>user</th><th>models</th><th>input</th></tr>")


def traces_table(traces: Traces) -> str:
    """The notebook view of a collection: one row per trace, newest first."""
    shown = list(reversed(list(traces)))[:MAX_TABLE_ROWS]
    note = "" if len(traces) <= MAX_TABLE_ROWS else (
        f'<p class="lat-note">newest {MAX_TABLE_ROWS} of {len(traces)} traces</p>')
    errors = sum(1 for t in traces if t.has_error)
    return (f'<div class="lat">{style_tag()}<div class="lat-head"><b>{len(traces)} traces</b>'
            f"<span>{errors} with errors</span></div><table>{TABLE_HEAD}"
            + "".join(trace_row(t) for t in shown) + f"</table>{note}</div>")
