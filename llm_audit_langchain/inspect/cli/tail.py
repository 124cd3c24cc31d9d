"""Follow new events as they are written (like ``tail -f``)."""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...events import AuditEvent, AuditEventType
from ...exporters.stdout import event_measures
from ...replay.reading import ScanStats, jsonl_files
from ..trace_list import TraceFilter, TraceSummary
from . import terminal
from .common import (
    EXIT_OK,
    CliError,
    chosen_dir,
    dir_option,
    existing_dir,
    json_flag,
    report_corrupt,
    trace_filter,
    trace_filter_options,
)

E = AuditEventType


def _event_line(event: AuditEvent) -> str:
    parts = [event.timestamp.strftime("%H:%M:%S.%f")[:-3], event.trace_id[:12],
             str(event.event_type), event.action, event.status]
    parts.extend(event_measures(event))
    if event.event_type == E.AGENT_ROUTE:
        parts.append(f"{event.data.get('from_node')}→{event.data.get('destination')}")
    if event.error is not None:
        parts.append(f"{event.error.type}: {event.error.message[:120]}")
    return "  ".join(parts)


_BLOCK = 1 << 20


class _Follower:
    """Reads complete new lines from a directory's JSONL files, remembering offsets (of the
    files there now: a file that is gone is forgotten, so a follow of months stays small)."""

    def __init__(self, directory: Path, stats: ScanStats) -> None:
        self.directory = directory
        self.stats = stats
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}
        self.numbers: dict[Path, int] = {}

    def read_new(self) -> Iterator[tuple[Path, int, bytes]]:
        paths = jsonl_files(self.directory)
        for gone in set(self.offsets).difference(paths):  # deleted or rotated away: forget it
            self.offsets.pop(gone)
            self.partial.pop(gone, None)
            self.numbers.pop(gone, None)
        for path in paths:
            try:
                size = path.stat().st_size
            except OSError:
                continue
            offset = self.offsets.get(path, 0)
            if size < offset:  # truncated or replaced: start over
                offset, self.partial[path], self.numbers[path] = 0, b"", 0
            if size == offset:
                continue
            with open(path, "rb") as handle:
                handle.seek(offset)
                while offset < size:  # in blocks: a big backlog never sits in memory whole
                    chunk = handle.read(min(_BLOCK, size - offset))
                    if not chunk:
                        break
                    offset += len(chunk)
                    self.offsets[path] = offset
                    yield from self._lines(path, chunk)

    def _lines(self, path: Path, chunk: bytes) -> Iterator[tuple[Path, int, bytes]]:
        *complete, rest = (self.partial.pop(path, b"") + chunk).split(b"\n")
        if rest:
            self.partial[path] = rest  # a line still being written
        for raw in complete:
            self.numbers[path] = self.numbers.get(path, 0) + 1
            yield path, self.numbers[path], raw


def _parse_line(path: Path, number: int, raw: bytes, stats: ScanStats) -> AuditEvent | None:
    from pydantic import ValidationError

    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    stats.lines += 1
    try:
        event = AuditEvent.model_validate_json(text)
    except ValidationError as exc:
        reason = "not JSON" if exc.errors()[0].get("type") == "json_invalid" else "invalid event"
        stats.add_corrupt(str(path), number, reason)
        if stats.corrupt <= 5:
            sys.stderr.write(f"llm-audit: skipped corrupt line {path}:{number} ({reason})\n")
        return None
    stats.events += 1
    return event


def _matches(event: AuditEvent, args: argparse.Namespace) -> bool:
    if args.type and not any(fnmatch.fnmatchcase(str(event.event_type), t) for t in args.type):
        return False
    if args.status and event.status not in args.status:
        return False
    wanted: TraceFilter = args.trace_filter
    if wanted.since is not None and event.timestamp < wanted.since:
        return False
    if wanted.until is not None and event.timestamp > wanted.until:
        return False
    return not (args.trace and not event.trace_id.startswith(args.trace.lower()))


_MAX_HELD = 10_000
_MAX_DECIDED = 100_000


class _TraceGate:
    """For the filters only a whole trace answers (user, thread, model, cost): holds a trace's
    events until its root run ends, then lets them all through or none. Bounded: past
    ``_MAX_HELD`` held events the oldest open trace is let go unprinted (counted)."""

    def __init__(self, wanted: TraceFilter) -> None:
        self.wanted = replace(wanted, since=None, until=None)  # those apply per event
        self.open: OrderedDict[str, tuple[TraceSummary, list[AuditEvent]]] = OrderedDict()
        self.decided: OrderedDict[str, bool] = OrderedDict()
        self.held = 0
        self.given_up = 0

    def offer(self, event: AuditEvent, shown: bool) -> list[AuditEvent]:
        """The events to print now (``event`` and the held ones of its trace, or none).
        Every event counts towards its trace's summary; only ``shown`` ones are printed."""
        if not self.wanted.needs_whole_trace:
            return [event] if shown else []
        decided = self.decided.get(event.trace_id)
        if decided is not None:
            return [event] if decided and shown else []
        summary, held = self.open.setdefault(event.trace_id,
                                             (TraceSummary(event.trace_id), []))
        summary.add(event.model_dump(mode="json"))
        if shown:
            held.append(event)
            self.held += 1
        if summary.status is None:  # the root has not ended yet
            while self.held > _MAX_HELD or len(self.open) > _MAX_HELD:
                _, (_, dropped) = self.open.popitem(last=False)
                self.held -= len(dropped)
                self.given_up += len(dropped)
            return []
        del self.open[event.trace_id]
        self.held -= len(held)
        keep = self.wanted.matches(summary)
        self.decided[event.trace_id] = keep
        if len(self.decided) > _MAX_DECIDED:
            self.decided.popitem(last=False)
        return held if keep else []


def _tail(args: argparse.Namespace) -> int:
    directory = existing_dir(chosen_dir(args))
    if not directory.is_dir():
        raise CliError(f"not a directory: {directory}")
    stats = ScanStats()
    follower = _Follower(directory, stats)
    shown = 0

    def emit(event: AuditEvent) -> None:
        nonlocal shown
        shown += 1
        if args.json:
            sys.stdout.write(json.dumps(event.model_dump(mode="json"), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(terminal.status_line(_event_line(event), event.status) + "\n")

    args.trace_filter = trace_filter(args)
    gate = _TraceGate(args.trace_filter)
    # --once without -n prints everything that matches, streamed (big files are never held in
    # memory); otherwise the last -n matching events (10 by default) come first.
    stream_all = args.once and args.lines is None
    keep = 10 if args.lines is None else max(args.lines, 0)
    backlog: deque[AuditEvent] = deque(maxlen=keep)
    for path, number, raw in follower.read_new():
        event = _parse_line(path, number, raw, stats)
        if event is not None:
            for passed in gate.offer(event, _matches(event, args)):
                if stream_all:
                    emit(passed)
                else:
                    backlog.append(passed)
    for event in backlog:
        emit(event)
    sys.stdout.flush()
    if args.once:
        report_corrupt(stats)
        return EXIT_OK
    try:
        while True:
            time.sleep(args.interval)
            for path, number, raw in follower.read_new():
                new = _parse_line(path, number, raw, stats)
                if new is not None:
                    for passed in gate.offer(new, _matches(new, args)):
                        emit(passed)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit tail``."""
    tail = commands.add_parser("tail", help="print events as they are written (like tail -f)")
    dir_option(tail, positional=True)
    trace_filter_options(tail)
    tail.add_argument("--type", action="append", help="event type or glob (tool.*); repeatable")
    tail.add_argument("--status", action="append", choices=["ok", "error", "timeout", "retry"])
    tail.add_argument("--trace", help="trace id (or prefix)")
    tail.add_argument("--once", action="store_true",
                      help="print what exists and exit (every matching event, unless -n)")
    tail.add_argument("-n", "--lines", type=int, default=None,
                      help="matching events already written to show first (default 10; "
                           "with --once, all)")
    tail.add_argument("--interval", type=float, default=0.5, help="poll interval, seconds")
    json_flag(tail)
    tail.set_defaults(func=_tail)
