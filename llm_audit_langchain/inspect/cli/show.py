"""One trace as a tree: timings, tokens, cost, decisions and errors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...errors import AuditError
from ...events import AuditEvent, AuditEventType
from ...replay.reading import ScanStats
from .common import (
    EXIT_OK,
    CliError,
    call_text,
    default_dir,
    json_flag,
    load_trace_events,
    print_json,
)

E = AuditEventType


def _decisions(events: list[AuditEvent]) -> list[str]:
    lines = []
    for event in events:
        where = event.agent
        if event.event_type == E.TOOL_SELECTION:
            calls = ", ".join(call_text(c) for c in event.data.get("calls", []))
            lines.append(f"{where}: LLM chose {calls}")
        elif event.event_type == E.AGENT_ROUTE:
            lines.append(f"{event.data.get('from_node')}: routed to "
                         f"{event.data.get('destination')}")
    return lines


def _errors(events: list[AuditEvent]) -> list[AuditEvent]:
    """Each distinct error once, at the run where it started (it bubbles up through parents)."""
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


def _show(args: argparse.Namespace) -> int:
    from ...replay.plan import is_run_root
    from ..tree import render_trace, trace_totals

    stats = ScanStats()
    if args.source:
        from ..stores import read_trace

        try:
            events = read_trace(args.source, args.trace_id, table=args.table)
        except (AuditError, FileNotFoundError):
            raise
        except Exception as exc:  # the driver's connection or query error
            raise CliError(f"cannot read {args.source}: {type(exc).__name__}: {exc}") from None
    else:
        events = load_trace_events(args.dir, args.trace_id, stats)
    totals = trace_totals(events)
    errors = _errors(events)
    if args.json:
        print_json({"trace_id": events[0].trace_id, "totals": totals,
                     "decisions": _decisions(events),
                     "errors": [e.model_dump(mode="json") for e in errors],
                     "events": [e.model_dump(mode="json") for e in events],
                     "scan": stats.as_dict()})
        return EXIT_OK
    root = next((e for e in events if is_run_root(e)), None)
    out = [f"trace {events[0].trace_id}"]
    if root is not None:
        out[0] += f"  {root.status}  {root.latency_ms or 0:.1f} ms  started {root.start_time}"
    cost = totals["cost_usd"]
    out.append(f"tokens {totals['tokens_input']} in / {totals['tokens_output']} out   cost "
               + ("unknown (unpriced model)" if cost is None else f"${cost:.6f}"))
    out += ["", render_trace(events)]
    decisions = _decisions(events)
    if decisions:
        out += ["", "decisions:"] + [f"  {d}" for d in decisions]
    for event in errors:
        assert event.error is not None
        out += ["", f"error in {event.event_type} {event.action} ({event.agent}): "
                    f"{event.error.type}: {event.error.message}"]
        if event.error.input_snapshot is not None:
            out.append(f"  input: {json.dumps(event.error.input_snapshot, default=str)[:300]}")
        if event.error.traceback and args.traceback:
            out += ["  " + line for line in event.error.traceback.rstrip().splitlines()]
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit show``."""
    show = commands.add_parser("show", help="one trace as a tree with timings, cost, decisions")
    show.add_argument("trace_id", metavar="TRACE_ID", help="trace id (or a unique prefix)")
    show.add_argument("--dir", default=default_dir(), help="JSONL directory ($AUDIT_LOG_DIR)")
    show.add_argument("--from", dest="source", metavar="URI|DIR", default=None,
                      help="read from a store: mongodb://..., postgresql://... or a directory")
    show.add_argument("--table", default="llm_audit",
                      help="table or collection of the store given with --from")
    show.add_argument("--traceback", action="store_true", help="print error tracebacks")
    json_flag(show)
    show.set_defaults(func=_show)
