"""One trace as a tree: timings, tokens, cost, decisions and errors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...errors import AuditError
from ...events import AuditEvent, AuditEventType
from ...replay.reading import ScanStats
from ..trace_list import summarize
from ..traces import distinct_errors
from . import terminal
from .common import (
    EXIT_OK,
    CliError,
    call_text,
    default_dir,
    existing_dir,
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


def _show(args: argparse.Namespace) -> int:
    from ...replay.plan import is_run_root
    from ..tree import render_trace, trace_totals

    directories = args.dir or [default_dir()]
    if len(directories) > 1:
        return _show_across(args.trace_id, directories, args.json)
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
        events = load_trace_events(directories[0], args.trace_id, stats)
    totals = trace_totals(events)
    errors = distinct_errors(events)
    [summary] = summarize(e.model_dump(mode="json") for e in events)
    if args.json:
        print_json({"trace_id": events[0].trace_id, "totals": totals,
                     "summary": summary.as_dict(),
                     "decisions": _decisions(events),
                     "errors": [e.model_dump(mode="json") for e in errors],
                     "events": [e.model_dump(mode="json") for e in events],
                     "scan": stats.as_dict()})
        return EXIT_OK
    if terminal.enabled():
        from ..traces import Trace

        terminal.print_trace(Trace(events), tracebacks=args.traceback)
        return EXIT_OK
    root = next((e for e in events if is_run_root(e)), None)
    out = [f"trace {events[0].trace_id}"]
    if root is not None:
        out[0] += f"  {root.status}  {root.latency_ms or 0:.1f} ms  started {root.start_time}"
    cost = totals["cost_usd"]
    out.append(f"tokens {totals['tokens_input']} in / {totals['tokens_output']} out   cost "
               + ("unknown (unpriced model)" if cost is None else f"${cost:.6f}"))
    out.append(f"user {summary.user_id or '-'}   thread {summary.thread_id or '-'}")
    if args.io:
        out += ["", f"input: {summary.input if summary.input is not None else '(not recorded)'}",
                f"answer: {summary.answer if summary.answer is not None else '(not recorded)'}"]
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


def _show_across(trace_id: str, directories: list[str], as_json: bool) -> int:
    """One trace recorded by several services (one directory each), reconstructed."""
    from ..reconstruct import reconstruct

    for directory in directories:
        existing_dir(directory)
    story = reconstruct(trace_id, *directories)
    if as_json:
        print_json(story)
        return EXIT_OK
    duration = story["total_duration_ms"]
    out = [f"trace {story['trace_id']}  {len(story['timeline'])} events  "
           + (f"{duration:.1f} ms" if duration is not None else "")]
    out += [f"  {t['service']}: {t['events']} events, agents {', '.join(t['agents'])}"
            for t in story["service_touchpoints"]]
    out += ["", "timeline:"] + [f"  {e['time']}  {e['service']:<12} {e['type']:<18} {e['action']}"
                                + ("" if e["status"] == "ok" else f"  {e['status'].upper()}")
                                for e in story["timeline"]]
    for decision in story["ai_decisions"]:
        chosen = ", ".join(str(t["name"]) for t in decision["tools_chosen"]) or "answer"
        line = f"  {decision['agent']}: {chosen}"
        if decision["checkpoint_id"]:
            line += f"  (context {decision['checkpoint_id']})"
        if decision["was_overridden"]:
            line += f"  OVERRIDDEN by {decision['overridden_by']}"
        out.append(line)
    for call in story["open_tool_calls"]:
        out.append(f"  open tool call: {call['tool']} (span {call['span_id']})")
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit show``."""
    show = commands.add_parser("show", help="one trace as a tree with timings, cost, decisions")
    show.add_argument("trace_id", metavar="TRACE_ID", help="trace id (or a unique prefix)")
    show.add_argument("--dir", action="append", metavar="DIR",
                      help="JSONL or audit-chain directory (default $AUDIT_LOG_DIR, else logs); "
                      "repeat it for a trace that crossed services: the trace is then "
                      "reconstructed")
    show.add_argument("--io", action="store_true",
                      help="print the run's input and final answer")
    show.add_argument("--from", dest="source", metavar="URI|DIR", default=None,
                      help="read from a store: mongodb://..., postgresql://... or a directory")
    show.add_argument("--table", default="llm_audit",
                      help="table or collection of the store given with --from")
    show.add_argument("--traceback", action="store_true", help="print error tracebacks")
    json_flag(show)
    show.set_defaults(func=_show)
