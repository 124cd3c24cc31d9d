"""Reconstruct one transaction across services from what each of them recorded.

Every service that embeds the package writes its own JSONL directory, audit chain or store
(PostgreSQL, MongoDB); the W3C trace id that travelled between them (``traceparent``) joins
the records. :func:`reconstruct` reads any number of such sources and returns, for one trace
id:

* ``timeline``: every event in time order, with the service (source) that recorded it;
* ``call_tree``: spans nested by parent span id, across services;
* ``ai_decisions``: each LLM decision as a decision record, with the context version it was
  made from, the human reviews that approved or overrode it, and feedback on it;
* ``reviews``, ``context_versions``, ``feedback``, ``open_tool_calls`` (calls with no result);
* ``total_duration_ms`` and ``service_touchpoints`` (per service: events, agents, first/last).

Example::

    story = reconstruct(trace_id, "gateway/logs", "agent/audit", "payments/logs")
    story["service_touchpoints"], story["ai_decisions"][0]["checkpoint_id"]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..audit.decisions import decision_record, graph_task_id
from ..errors import TraceNotFoundError
from ..events import AuditEvent, AuditEventType
from ..replay.reading import scan
from .context_versions import ContextHistory
from .stores.base import is_store_uri

E = AuditEventType
PathLike = str | os.PathLike[str]
_CALL_ENDS = (E.TOOL_RESULT, E.TOOL_ERROR)
_CONTEXT = f'"{E.CONTEXT_VERSION.value}"'


def open_tool_calls(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """``tool.call`` records with no ``tool.result``/``tool.error`` for the same span: the
    process died inside the tool, or the run was abandoned."""
    calls: dict[tuple[str, str], AuditEvent] = {}
    closed: set[tuple[str, str]] = set()
    for event in events:
        key = (event.trace_id, event.span_id)
        if event.event_type == E.TOOL_CALL:
            calls.setdefault(key, event)
        elif event.event_type in _CALL_ENDS:
            closed.add(key)
    return sorted((e for k, e in calls.items() if k not in closed), key=lambda e: e.timestamp)


def _store_events(uri: str, trace_id: str, table: str) -> Iterator[AuditEvent]:
    """From a store: the trace's events, then every review and context version (the same
    events the line filter below keeps from files)."""
    from .stores import open_store

    store = open_store(uri, table=table)
    try:
        try:
            own = store.trace_events(trace_id)
        except TraceNotFoundError:  # another source may hold it
            own = []
        yield from own
        yield from store.events(event_types=(E.HUMAN_REVIEW.value, E.CONTEXT_VERSION.value))
    finally:
        store.close()


def _service_name(source: PathLike) -> str:
    """A directory's name; a store URI's host and database, never its credentials."""
    text = os.fspath(source)
    if not is_store_uri(text):
        return Path(text).name or text
    parts = urlsplit(text)
    return f"{parts.scheme}:{parts.hostname or ''}{parts.path.rstrip('/')}"


def _service_events(sources: tuple[PathLike, ...], trace_id: str, table: str
                    ) -> tuple[list[tuple[str, AuditEvent]], ContextHistory]:
    """(service, event) for every event of the trace, each event once, and the context history
    of every source (reviews and checkpoints of a thread may sit in neighbouring traces)."""
    seen: set[str] = set()
    found: list[tuple[str, AuditEvent]] = []
    context_events: list[AuditEvent] = []
    for source in sources:
        service = _service_name(source)
        text = os.fspath(source)
        # the trace's own lines, reviews of its interrupts, and every context version
        events = _store_events(text, trace_id, table) if is_store_uri(text) else scan(
            source, keep=lambda line: trace_id in line or _CONTEXT in line)
        for event in events:
            if event.event_id in seen:
                continue
            if event.event_type == E.CONTEXT_VERSION:
                context_events.append(event)
            related = event.trace_id == trace_id or (
                event.event_type == E.HUMAN_REVIEW
                and event.data.get("interrupt_trace_id") == trace_id)
            if related:
                seen.add(event.event_id)
                found.append((service, event))
    found.sort(key=lambda pair: pair[1].timestamp)
    return found, ContextHistory(context_events)


def _call_tree(events: list[tuple[str, AuditEvent]]) -> list[dict[str, Any]]:
    """Span events nested by parent span id (a span whose parent was not recorded is a root)."""
    nodes: dict[str, dict[str, Any]] = {}
    for service, event in events:
        if event.trace_id and event.is_span:
            nodes[event.span_id] = {
                "span_id": event.span_id, "parent_span_id": event.parent_span_id,
                "service": service, "type": str(event.event_type), "agent": event.agent,
                "action": event.action, "status": event.status, "latency_ms": event.latency_ms,
                "start_time": event.start_time.isoformat() if event.start_time else None,
                "children": [],
            }
    roots: list[dict[str, Any]] = []
    for node in sorted(nodes.values(), key=lambda n: n["start_time"] or ""):
        parent = nodes.get(node["parent_span_id"] or "")
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def _duration_ms(events: list[AuditEvent]) -> float | None:
    starts = [e.start_time or e.timestamp for e in events]
    if not starts:
        return None
    return (max(e.timestamp for e in events) - min(starts)).total_seconds() * 1000


def _touchpoints(events: list[tuple[str, AuditEvent]]) -> list[dict[str, Any]]:
    services: dict[str, dict[str, Any]] = {}
    for service, event in events:
        entry = services.setdefault(service, {"service": service, "events": 0, "agents": set(),
                                              "first": event.timestamp,
                                              "last": event.timestamp})
        entry["events"] += 1
        entry["agents"].add(event.agent)
        entry["first"] = min(entry["first"], event.start_time or event.timestamp)
        entry["last"] = max(entry["last"], event.timestamp)
    return [{**entry, "agents": sorted(entry["agents"]), "first": entry["first"].isoformat(),
             "last": entry["last"].isoformat()}
            for entry in sorted(services.values(), key=lambda e: e["first"])]


def _decisions(events: list[AuditEvent], history: ContextHistory) -> list[dict[str, Any]]:
    """Decision records of the LLM calls, with their context version, reviews and feedback."""
    reviews = [e for e in events if e.event_type == E.HUMAN_REVIEW]
    feedback = [e for e in events if e.event_type == E.FEEDBACK]
    decisions: list[dict[str, Any]] = []
    for event in events:
        if event.event_type != E.LLM_INVOKE:
            continue
        record = decision_record(event, checkpoints=history.task_checkpoints)
        version = history.versions.get(record["checkpoint_id"] or "")
        record["context_version"] = version.as_dict() if version is not None else None
        record["reviews"] = [r.data for r in reviews
                             if r.data.get("decision_span_id") == event.span_id]
        overrides = [r for r in record["reviews"] if r.get("was_overridden")]
        if overrides:
            last = overrides[-1]
            record.update(was_overridden=True, overridden_by=last.get("overridden_by"),
                          override_reason=last.get("override_reason"),
                          final_decision=last.get("final_decision"))
        record["feedback"] = [f.data for f in feedback
                              if f.data.get("about_span_id") == event.span_id]
        decisions.append(record)
    return decisions


def _agent_decision(event: AuditEvent, history: ContextHistory) -> dict[str, Any]:
    """An ``agent.decision`` with the checkpoint its task ran from (its context version)."""
    task = graph_task_id(event)
    return {**event.data, "span_id": event.span_id, "task_id": task,
            "checkpoint_id": history.task_checkpoints.get(task) if task else None}


def _timeline_entry(service: str, event: AuditEvent) -> dict[str, Any]:
    return {"time": event.timestamp.isoformat(), "service": service,
            "type": str(event.event_type), "agent": event.agent, "action": event.action,
            "status": event.status, "span_id": event.span_id, "event_id": event.event_id}


def reconstruct(trace_id: str, *sources: PathLike, table: str = "llm_audit") -> dict[str, Any]:
    """The whole story of ``trace_id`` from one or more recorded sources (one per service):
    JSONL or audit-chain directories, or store URIs (``postgresql://``, ``mongodb://``, whose
    table or collection is ``table``).

    Raises :class:`TraceNotFoundError` when no source holds an event of the trace.
    """
    wanted = trace_id.strip().lower()
    pairs, history = _service_events(sources, wanted, table)
    if not pairs:
        raise TraceNotFoundError(f"no events for trace {trace_id!r} in {len(sources)} source(s)")
    events = [event for _, event in pairs]
    own = [e for e in events if e.trace_id == wanted]
    return {
        "trace_id": wanted,
        "timeline": [_timeline_entry(service, event) for service, event in pairs],
        "call_tree": _call_tree([(s, e) for s, e in pairs if e.trace_id == wanted]),
        "ai_decisions": _decisions(events, history),
        "agent_decisions": [_agent_decision(e, history) for e in own
                            if e.event_type == E.AGENT_DECISION],
        "reviews": [e.data for e in events if e.event_type == E.HUMAN_REVIEW],
        "context_versions": [v.as_dict() for v in history.versions.values()
                             if v.trace_id == wanted],
        "feedback": [e.data for e in own if e.event_type == E.FEEDBACK],
        "open_tool_calls": [{"tool": e.action, "span_id": e.span_id,
                             "tool_call_id": e.data.get("tool_call_id"),
                             "time": e.timestamp.isoformat()} for e in open_tool_calls(own)],
        "total_duration_ms": _duration_ms(own),
        "service_touchpoints": _touchpoints(pairs),
    }
