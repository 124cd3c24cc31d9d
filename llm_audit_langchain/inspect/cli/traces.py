"""List the recorded runs, one line each, with filters: how to find the trace to ``show``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...replay.reading import ScanStats, scan_records
from ..trace_list import TraceFilter, TraceSummary, summarize
from .common import (
    EXIT_OK,
    chosen_dir,
    dir_option,
    existing_dir,
    json_flag,
    print_json,
    progress,
    shown,
    store_events,
    store_options,
    store_uri,
    trace_filter,
    trace_filter_options,
)

_HEADER = (f"{'start (UTC)':<19}  {'trace id':<32}  {'status':<7} {'latency':>10}  "
           f"{'cost':>10}  {'user':<12} {'thread':<12} input")


def _from_store(args: argparse.Namespace, wanted: TraceFilter) -> list[TraceSummary]:
    """The same summaries from a store: the time filters pick whole traces in the query, the
    others are checked here on each summary, as for files."""
    events = store_events(args, since=wanted.since, until=wanted.until)
    records = (e.model_dump(mode="json") for e in events)
    return [t for t in summarize(records) if wanted.matches(t)]


def _traces(args: argparse.Namespace) -> int:
    wanted = trace_filter(args, status=args.status)
    source = store_uri(args)
    if source:
        summaries, where = _from_store(args, wanted), shown(source)
    else:
        directory = existing_dir(chosen_dir(args))
        stats = ScanStats()
        with progress(f"scanning {directory}…", stats):
            summaries = [t for t in summarize(scan_records(directory, stats))
                         if wanted.matches(t)]
        where = str(directory)
    matched = len(summaries)
    if args.limit is not None and args.limit >= 0:
        summaries = summaries[-args.limit:] if args.limit else []
    if len(summaries) < matched:  # on stderr: stdout stays one trace per line (or JSON)
        sys.stderr.write(f"llm-audit: the {len(summaries)} most recent of {matched} matching "
                         f"traces shown (--limit N for more, -1 for all)\n")
    if args.json:
        print_json([t.as_dict() for t in summaries])
        return EXIT_OK
    if not summaries:
        sys.stderr.write(f"llm-audit: no traces match in {where}\n")
        return EXIT_OK
    sys.stdout.write("\n".join([_HEADER, *(t.line() for t in summaries)]) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit traces``."""
    traces = commands.add_parser(
        "traces", help="one line per recorded run (start, id, status, latency, cost, user, "
                       "thread, input), filtered")
    dir_option(traces)
    store_options(traces)
    trace_filter_options(traces)
    traces.add_argument("--status", choices=["ok", "error", "timeout"],
                        help="the run's outcome")
    traces.add_argument("--limit", type=int, default=50,
                        help="the most recent N matching runs (default 50; 0: none, -1: all)")
    json_flag(traces)
    traces.set_defaults(func=_traces)
