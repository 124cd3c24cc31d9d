"""Assertions on recorded traces that several test modules share."""

from __future__ import annotations

from collections import Counter

from llm_audit_langchain import AuditEvent


def assert_valid_tree(events: list[AuditEvent]) -> AuditEvent:
    """One trace, one root span, every parent a span of the same trace; returns the root."""
    assert len({e.trace_id for e in events}) == 1, "events of one run span several traces"
    spans = {e.span_id: e for e in events if e.start_time is not None}
    assert len(spans) == len([e for e in events if e.start_time is not None]), "span id reused"
    roots = [e for e in spans.values() if e.parent_span_id not in spans]
    assert len(roots) == 1, f"expected one root span, got {[r.action for r in roots]}"
    for event in events:
        if event.start_time is None:
            assert event.span_id in spans, f"point event {event.event_type} outside any span"
    for span in spans.values():
        if span is not roots[0]:
            parent = spans[span.parent_span_id]  # type: ignore[index]
            assert parent.start_time <= span.start_time  # type: ignore[operator]
            assert span.timestamp <= parent.timestamp
    return roots[0]


def by_trace(events: list[AuditEvent]) -> dict[str, list[AuditEvent]]:
    traces: dict[str, list[AuditEvent]] = {}
    for event in events:
        traces.setdefault(event.trace_id, []).append(event)
    return traces


def type_counts(events: list[AuditEvent]) -> Counter[str]:
    return Counter(str(e.event_type) for e in events)
