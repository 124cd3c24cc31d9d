"""Render one trace as an indented tree with timings, tokens, cost, decisions and errors.

Used by the demo and by ``llm-audit show``. Works on ``AuditEvent`` objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ..events import AuditEvent, AuditEventType
from ..exporters.stdout import event_measures

E = AuditEventType


def _span_line(event: AuditEvent) -> str:
    parts = [f"{event.action}"]
    if event.event_type in (E.LLM_INVOKE, E.LLM_ERROR):
        parts[0] = f"llm {event.model or event.action}"
    elif event.event_type in (E.TOOL_RESULT, E.TOOL_ERROR):
        parts[0] = f"tool {event.action}"
    elif event.event_type == E.AGENT_ROUTE:
        parts[0] = f"route {event.data.get('from_node')} → {event.data.get('destination')}"
    parts.extend(event_measures(event, spelled_out=True))
    if event.status != "ok":
        parts.append(event.status.upper())
    if event.error is not None:
        parts.append(f"{event.error.type}: {event.error.message[:100]}")
    return "  ".join(parts)


def _point_line(event: AuditEvent) -> str:
    if event.event_type == E.TOOL_SELECTION:
        calls = ", ".join(f"{c.get('name')}#{c.get('id')}" for c in event.data.get("calls", []))
        return f"↳ selected tools: {calls}"
    if event.event_type == E.AGENT_RETRY:
        return f"↳ retry attempt {event.data.get('attempt')}"
    if event.event_type == E.AGENT_DECISION:
        tools = ", ".join(str(t) for t in event.data.get("tools") or ())
        return f"↳ decision: {event.data.get('decision')}" + (f" ({tools})" if tools else "")
    if event.event_type == E.PROMPT_EFFICIENCY:
        share = event.data.get("system_share")
        ratio = event.data.get("output_input_ratio")
        parts = [f"system {share:.0%}" if isinstance(share, float) else None,
                 f"out/in {ratio:.2f}" if isinstance(ratio, float) else None]
        return "↳ prompt: " + ", ".join(p for p in parts if p)
    if event.event_type == E.AGENT_FALLBACK:
        return f"↳ fallback {event.data.get('primary')} → {event.data.get('backup')}"
    return _evidence_line(event) or f"↳ {event.event_type} {event.action}"


def _evidence_line(event: AuditEvent) -> str | None:
    """Tool calls, reviews, context versions and feedback (recorded content stays out)."""
    data = event.data
    if event.event_type == E.TOOL_CALL:
        return f"↳ call {event.action}" + (" (write-ahead)" if data.get("write_ahead") else "")
    if event.event_type == E.HUMAN_REVIEW:
        override = " — override" if data.get("was_overridden") else ""
        return f"↳ human review by {data.get('reviewer')}: {data.get('outcome')}{override}"
    if event.event_type == E.CONTEXT_VERSION and data.get("kind") == "checkpoint":
        changed = ", ".join(str(n) for n in data.get("changed_by") or ())
        return f"↳ context step {data.get('step')} {data.get('checkpoint_id')} by {changed}"
    if event.event_type == E.FEEDBACK:
        return f"↳ feedback {data.get('score')} {data.get('label') or ''} by {data.get('by')}"
    return None


def render_trace(events: Iterable[AuditEvent]) -> str:
    """The tree of one trace's spans, children in start order, point events under their span."""
    events = list(events)
    spans = {e.span_id: e for e in events if e.start_time is not None}
    children: dict[str | None, list[AuditEvent]] = defaultdict(list)
    points: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in events:
        if event.start_time is None:
            points[event.span_id].append(event)
        else:
            parent = event.parent_span_id if event.parent_span_id in spans else None
            children[parent].append(event)
    lines: list[str] = []

    def walk(span: AuditEvent, depth: int) -> None:
        pad = "  " * depth
        lines.append(pad + _span_line(span))
        for point in points.get(span.span_id, []):
            lines.append(pad + "  " + _point_line(point))
        for child in sorted(children.get(span.span_id, []), key=lambda e: e.start_time or 0):
            walk(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda e: e.start_time or 0):
        walk(root, 0)
    return "\n".join(lines)


def trace_totals(events: Iterable[AuditEvent]) -> dict[str, float | int | None]:
    """Tokens and cost summed over a trace's LLM calls (None when a price was unknown)."""
    tokens_in = tokens_out = 0
    cost: float | None = 0.0
    for event in events:
        if event.event_type not in (E.LLM_INVOKE, E.LLM_ERROR):
            continue
        tokens_in += event.tokens_input or 0
        tokens_out += event.tokens_output or 0
        cost = None if cost is None or event.cost_usd is None else cost + event.cost_usd
    return {"tokens_input": tokens_in, "tokens_output": tokens_out, "cost_usd": cost}
