"""What every view of a trace shows, computed once and drawn three ways (HTML in a notebook or a
report, rich on a terminal): the run tree, the decisions joined to the tool runs they chose, and
the cost/token breakdown. Plain data, no markup: escaping is the renderer's job."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import AuditEvent, AuditEventType

if TYPE_CHECKING:
    from .traces import Trace

E = AuditEventType
_MIN_KEY = ""


@dataclass
class TreeNode:
    """A span, its point events (selections, decisions, retries) and its child spans."""

    span: AuditEvent
    depth: int
    points: list[AuditEvent] = field(default_factory=list)
    children: list[TreeNode] = field(default_factory=list)

    def walk(self) -> Iterable[TreeNode]:
        """This node and every node below it, depth first, children in start order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    @property
    def size(self) -> int:
        """Spans in this subtree."""
        return sum(1 for _ in self.walk())


def span_tree(events: Iterable[AuditEvent]) -> list[TreeNode]:
    """The roots of a trace's span tree (spans whose parent was not recorded are roots)."""
    events = list(events)
    spans = {e.span_id: e for e in events if e.start_time is not None}
    nodes = {span_id: TreeNode(span, 0) for span_id, span in spans.items()}
    roots: list[TreeNode] = []
    orphans: list[AuditEvent] = []
    for span_id, node in nodes.items():
        parent = node.span.parent_span_id
        if parent in nodes and parent != span_id:
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    for event in events:
        if event.start_time is None:
            if event.span_id in nodes:
                nodes[event.span_id].points.append(event)
            else:
                orphans.append(event)
    roots.sort(key=_start_key)
    for root in roots:
        _set_depths(root)
    for event in orphans:  # point events of a run that has no span (e.g. an override record)
        roots.append(TreeNode(event, 0))
    return roots


def _start_key(node: TreeNode) -> str:
    start = node.span.start_time or node.span.timestamp
    return start.isoformat() if start else _MIN_KEY


def _set_depths(root: TreeNode) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        node.children.sort(key=_start_key)
        for child in node.children:
            child.depth = node.depth + 1
            stack.append(child)


def kind_of(event: AuditEvent) -> str:
    """A short class for the run: ``llm``, ``tool``, ``route``, ``node``, ``chain``, ``point``."""
    if event.event_type in (E.LLM_INVOKE, E.LLM_ERROR):
        return "llm"
    if event.event_type in (E.TOOL_RESULT, E.TOOL_ERROR, E.TOOL_CALL):
        return "tool"
    if event.event_type == E.AGENT_ROUTE:
        return "route"
    if event.start_time is None:
        return "point"
    langgraph = event.data.get("langgraph")
    if isinstance(langgraph, dict) and langgraph.get("node") == event.action:
        return "node"
    return "chain"


def span_label(event: AuditEvent) -> str:
    """The run's name as a reader wants it: the model for LLM calls, the route's destination."""
    kind = kind_of(event)
    if kind == "llm":
        return f"llm {event.model or event.action}"
    if kind == "tool":
        return f"tool {event.action}"
    if kind == "route":
        return f"route {event.data.get('from_node')} → {event.data.get('destination')}"
    if kind == "point":
        return point_label(event)
    return event.action


def call_text(call: Any) -> str:
    """``name(arg=value, ...)`` of a tool call."""
    if not isinstance(call, dict):
        return str(call)
    args = call.get("args")
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, dict) else args
    return f"{call.get('name')}({shown if shown is not None else ''})"


def point_label(event: AuditEvent) -> str:
    """One line for a point event (a tool selection, a decision, a retry, a fallback...)."""
    data = event.data
    if event.event_type == E.TOOL_SELECTION:
        return "selected tools: " + ", ".join(call_text(c) for c in data.get("calls") or ())
    if event.event_type == E.AGENT_RETRY:
        return f"retry attempt {data.get('attempt')}"
    if event.event_type == E.AGENT_DECISION:
        if data.get("was_overridden"):
            return (f"override by {data.get('overridden_by')}: {data.get('final_decision')}"
                    f" ({data.get('override_reason')})")
        tools = ", ".join(str(t) for t in data.get("tools") or ())
        return f"decision: {data.get('decision')}" + (f" ({tools})" if tools else "")
    if event.event_type == E.PROMPT_EFFICIENCY:
        share, ratio = data.get("system_share"), data.get("output_input_ratio")
        parts = [f"system {share:.0%}" if isinstance(share, float) else "",
                 f"out/in {ratio:.2f}" if isinstance(ratio, float) else ""]
        return "prompt: " + ", ".join(p for p in parts if p)
    if event.event_type == E.AGENT_FALLBACK:
        return f"fallback {data.get('primary')} → {data.get('backup')}"
    return f"{event.event_type} {event.action}"


def message_text(value: Any, limit: int = 2000) -> str:
    """The text content of recorded messages (``{"messages": [...]}``, a list, a string)."""
    parts: list[str] = []

    def visit(item: Any) -> None:
        if sum(len(p) for p in parts) > limit:
            return
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict):
            if "content" in item:
                visit(item["content"])
            elif "text" in item:
                visit(item["text"])
            else:
                for inner in item.values():
                    visit(inner)
        elif isinstance(item, list | tuple):
            for inner in item:
                visit(inner)

    visit(value)
    return " ".join(p for p in parts if p)[:limit]


@dataclass
class DecisionRow:
    """A decision the agent took, and what came of it (the tool runs it chose)."""

    kind: str  # selection, decision, route, retry, fallback, override
    where: str
    text: str
    event: AuditEvent
    tool_runs: list[AuditEvent] = field(default_factory=list)


_DECISION_KINDS = {E.TOOL_SELECTION: "selection", E.AGENT_DECISION: "decision",
                   E.AGENT_ROUTE: "route", E.AGENT_RETRY: "retry", E.AGENT_FALLBACK: "fallback"}


def decisions(trace: Trace) -> list[DecisionRow]:
    """Selections, decisions, routes, retries and fallbacks in recorded order; a tool selection
    is joined to the tool runs it started (by ``tool_call_id``)."""
    tool_runs: dict[str, AuditEvent] = {}
    for event in trace.events:
        call_id = event.data.get("tool_call_id")
        if event.event_type in (E.TOOL_RESULT, E.TOOL_ERROR) and call_id:
            tool_runs[str(call_id)] = event
    rows = []
    for event in trace.events:
        kind = _DECISION_KINDS.get(event.event_type)
        if kind is None:
            continue
        if event.data.get("was_overridden"):
            kind = "override"
        text = point_label(event) if kind != "route" else span_label(event)
        row = DecisionRow(kind, event.agent, text, event)
        if event.event_type == E.TOOL_SELECTION:
            for call in event.data.get("calls") or ():
                run = tool_runs.get(str(call.get("id"))) if isinstance(call, dict) else None
                if run is not None:
                    row.tool_runs.append(run)
        rows.append(row)
    return rows


@dataclass
class CostRow:
    """LLM calls, tokens and cost under one key (a node, a model, a user, a day)."""

    key: str
    calls: int = 0
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float | None = None
    unpriced_calls: int = 0


def breakdown(traces: Iterable[Trace], key: Callable[[Trace, AuditEvent], Any]) -> list[CostRow]:
    """LLM cost and tokens grouped by ``key(trace, llm_event)``, most expensive first.
    ``cost_usd`` sums the priced calls; ``unpriced_calls`` counts the rest."""
    rows: dict[str, CostRow] = defaultdict(lambda: CostRow(""))
    for trace in traces:
        for event in trace.llm_calls:
            name = str(key(trace, event) or "(unknown)")
            row = rows[name]
            row.key = name
            row.calls += 1
            row.tokens_input += event.tokens_input or 0
            row.tokens_output += event.tokens_output or 0
            if event.cost_usd is None:
                row.unpriced_calls += 1
            else:
                row.cost_usd = (row.cost_usd or 0.0) + event.cost_usd
    return sorted(rows.values(), key=lambda r: (-(r.cost_usd or 0.0), r.key))


BREAKDOWN_KEYS: dict[str, Callable[[Trace, AuditEvent], Any]] = {
    "node": lambda trace, event: event.agent,
    "model": lambda trace, event: event.model,
    "user": lambda trace, event: trace.user_id,
    "day": lambda trace, event: event.timestamp.date().isoformat(),
    "thread": lambda trace, event: trace.thread_id,
}
"""The groupings :func:`breakdown` is asked for by name."""


def error_origin(event: AuditEvent) -> str:
    """Where an error happened, for a heading: ``tool get_weather in tools``."""
    label = span_label(event)
    return label if label == event.agent else f"{label} in {event.agent}"


def money(value: float | None) -> str:
    """``$0.000042``, or ``unpriced`` for an unknown price."""
    return "unpriced" if value is None else f"${value:.6f}"


def duration(ms: float | None) -> str:
    """``74.1 ms`` / ``2.31 s``."""
    if ms is None:
        return ""
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"
