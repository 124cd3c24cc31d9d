"""The auditors' summary of a set of traces, computed from the events (no DuckDB needed): runs,
errors, cost by user/model/day, latency, SLO rates, decision records and human overrides, and
the audit chain's verification. The figures follow ``inspect/analytics.py``'s definitions: a
request is a root run; each is weighted by 1 / its keep probability when the root records its
sampling rate."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audit.decisions import OVERRIDE_ACTION, apply_override, decision_record
from ..events import AuditEvent, AuditEventType
from .analytics import SLO_TARGETS
from .traces import Trace, Traces
from .views import BREAKDOWN_KEYS, CostRow, breakdown

E = AuditEventType


@dataclass
class Summary:
    """Everything the report's first page shows."""

    traces: int
    requests: int
    error_requests: int
    traces_with_errors: int
    total_cost_usd: float | None
    unpriced_calls: int
    tokens_input: int
    tokens_output: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    rates: dict[str, float | None]
    slo: list[dict[str, Any]]
    cost_by: dict[str, list[CostRow]] = field(default_factory=dict)
    weighted: bool = False


def _weight(trace: Trace) -> float:
    sampling = trace.root.data.get("sampling") if trace.root is not None else None
    rate = sampling.get("rate") if isinstance(sampling, dict) else None
    return 1.0 / rate if isinstance(rate, int | float) and rate > 0 else 1.0


def _percentile(values: list[tuple[float, float]], share: float) -> float | None:
    """Weighted nearest-rank percentile of ``(value, weight)`` pairs."""
    if not values:
        return None
    values.sort()
    total = sum(w for _, w in values)
    running = 0.0
    for value, weight in values:
        running += weight
        if running >= share * total - 1e-9:
            return value
    return values[-1][0]


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _retries(trace: Trace) -> int:
    return sum(1 for e in trace.events if e.event_type == E.AGENT_RETRY or e.status == "retry")


def summarize(traces: Traces) -> Summary:
    """The summary of ``traces`` (see the module doc for the definitions)."""
    requests = [t for t in traces if t.root is not None]
    weights = {t.trace_id: _weight(t) for t in requests}
    total_w = sum(weights.values())
    errors_w = sum(weights[t.trace_id] for t in requests if t.status == "error")
    timeouts_w = sum(weights[t.trace_id] for t in requests
                     if any(e.status == "timeout" for e in t.events))
    retries_w = sum(weights[t.trace_id] * _retries(t) for t in requests)
    tool_errors = tool_runs = 0.0
    for trace in traces:
        weight = weights.get(trace.trace_id, 1.0)
        for event in trace.events:
            if event.event_type in (E.TOOL_RESULT, E.TOOL_ERROR):
                tool_runs += weight
                tool_errors += weight if event.event_type == E.TOOL_ERROR else 0.0
    latencies = [(t.latency_ms, weights[t.trace_id]) for t in requests
                 if t.latency_ms is not None]
    p95 = _percentile(list(latencies), 0.95)
    rates = {"error_rate": _ratio(errors_w, total_w), "timeout_rate": _ratio(timeouts_w, total_w),
             "tool_failure_rate": _ratio(tool_errors, tool_runs),
             "retry_ratio": _ratio(retries_w, total_w)}
    values = {"p95_latency_ms": p95, **rates}
    slo = [{"metric": t.metric, "target_below": t.below, "value": values[t.metric],
            "ok": None if values[t.metric] is None else values[t.metric] < t.below}  # type: ignore[operator]
           for t in SLO_TARGETS]
    llm = [e for t in traces for e in t.llm_calls]
    priced = [e.cost_usd for e in llm if e.cost_usd is not None]
    return Summary(
        traces=len(traces), requests=len(requests),
        error_requests=sum(1 for t in requests if t.status == "error"),
        traces_with_errors=sum(1 for t in traces if t.has_error),
        total_cost_usd=sum(priced) if priced or not llm else None,
        unpriced_calls=len(llm) - len(priced),
        tokens_input=sum(e.tokens_input or 0 for e in llm),
        tokens_output=sum(e.tokens_output or 0 for e in llm),
        latency_p50_ms=_percentile(list(latencies), 0.5), latency_p95_ms=p95,
        rates=rates, slo=slo,
        cost_by={key: breakdown(traces, BREAKDOWN_KEYS[key]) for key in ("user", "model", "day")},
        weighted=any(w != 1.0 for w in weights.values()),
    )


def decisions_and_overrides(
    traces: Traces, more_overrides: Iterable[AuditEvent] = ()
) -> tuple[list[dict[str, Any]], list[AuditEvent]]:
    """Decision records of every LLM call (amended by the overrides that name them, from the
    traces or ``more_overrides``), and the overrides whose decision is not among ``traces``."""
    overrides: dict[str, AuditEvent] = {}
    for events in (*(t.events for t in traces), more_overrides):
        for event in events:
            if event.action == OVERRIDE_ACTION and event.data.get("override_of"):
                overrides[str(event.data["override_of"])] = event
    records = []
    for trace in traces:
        for event in trace.events:
            if event.event_type != E.LLM_INVOKE:
                continue
            record = decision_record(event)
            override = overrides.pop(event.event_id, None)
            records.append(record if override is None else apply_override(record, override))
    return records, list(overrides.values())


@dataclass
class ChainResult:
    """The audit chain's verification, as the report shows it."""

    checked: bool
    ok: bool = False
    records: int = 0
    files: int = 0
    detail: str = ""


def chain_result(directory: str | os.PathLike[str] | None, key: str | None = None) -> ChainResult:
    """Verify the hash chain in ``directory`` (not checked when it holds no chain files)."""
    from ..audit import verify
    from ..audit.layout import chain_files

    if directory is None or not Path(directory).is_dir() or not chain_files(Path(directory)):
        return ChainResult(False, detail="no audit-chain files in the report's directory")
    report = verify(directory, key=key or os.environ.get("AUDIT_CHAIN_KEY") or None)
    if report.ok:
        last = f", last sequence {report.last.sequence}" if report.last else ""
        torn = f"; {len(report.torn_lines)} torn line(s) from crashes" if report.torn_lines else ""
        return ChainResult(True, True, report.records, len(report.files),
                           f"intact: {report.records} records{last}{torn}")
    broken = report.first_broken
    assert broken is not None
    return ChainResult(True, False, report.records, len(report.files),
                       f"BROKEN ({broken.reason}) at {broken.file}:{broken.line} sequence "
                       f"{broken.sequence}: {broken.detail}; {report.records} records verified "
                       "before the break")


def chain_overrides(directory: str | os.PathLike[str] | None) -> Iterator[AuditEvent]:
    """The human overrides recorded in an audit chain directory (they live only there)."""
    from ..audit.layout import chain_files
    from ..replay.reading import scan

    if directory is None or not Path(directory).is_dir():
        return
    for file in chain_files(Path(directory)):
        for event in scan(file, keep=lambda line: OVERRIDE_ACTION in line):
            if event.action == OVERRIDE_ACTION:
                yield event
