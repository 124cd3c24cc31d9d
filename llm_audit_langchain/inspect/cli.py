"""The ``llm-audit`` command: look at what was recorded.

    llm-audit tail DIR [--type T] [--status S] [--trace ID] [--once]   # follow new events
    llm-audit show TRACE_ID --dir DIR        # the trace tree: timings, tokens, cost, decisions
    llm-audit verify DIR [--key K] [--anchor SEQ[:HASH]]   # check the hash-chained audit log
    llm-audit stats DIR                      # cost by model/day/user, latency, SLO rates (DuckDB)
    llm-audit replay TRACE_ID --dir DIR      # the replay plan: recorded answers, results, error
    llm-audit schema                         # the JSON Schema of the event model

Every command takes ``--json``. Exit codes: 0 done; 1 done and the answer is negative (a broken
chain, a breached SLO with ``--check-slo``); 2 could not run (bad arguments, a missing
directory, an unknown trace id, DuckDB missing). Corrupt lines are skipped and counted on stderr.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..errors import AuditError
from ..events import AuditEvent, AuditEventType
from ..replay.reading import ScanStats, jsonl_files
from .tree import event_measures

Command = Callable[[argparse.Namespace], int]
E = AuditEventType

EXIT_OK, EXIT_NEGATIVE, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A reason the command cannot run; printed as ``llm-audit: error: ...``, exit code 2."""


# ---- output helpers --------------------------------------------------------------------------


def _print_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(value, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def _progress(message: str) -> None:
    """Progress of a long scan, only for a person watching (stderr is a terminal)."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{message}")
        sys.stderr.flush()


def _progress_done() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def _report_corrupt(stats: ScanStats) -> None:
    if not stats.corrupt:
        return
    sys.stderr.write(f"llm-audit: skipped {stats.corrupt} corrupt line(s)\n")
    for bad in stats.corrupt_lines[:5]:
        sys.stderr.write(f"  {bad.file}:{bad.line}: {bad.reason}\n")


def _existing_dir(path: str) -> Path:
    target = Path(path)
    if not target.exists():
        raise CliError(f"no such directory: {path}")
    return target


def _files(path: str) -> list[Path]:
    try:
        return jsonl_files(_existing_dir(path))
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None


def _load_trace(directory: str, trace_id: str, stats: ScanStats) -> list[AuditEvent]:
    from ..replay.fixture import load_trace

    _existing_dir(directory)
    _progress(f"scanning {len(_files(directory))} file(s) for trace {trace_id}…")
    try:
        return load_trace(directory, trace_id, stats)
    finally:
        _progress_done()
        _report_corrupt(stats)


# ---- schema ----------------------------------------------------------------------------------


def _schema(args: argparse.Namespace) -> int:
    from ..schema import load_schema

    json.dump(load_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return EXIT_OK


# ---- tail ------------------------------------------------------------------------------------


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
    """Reads complete new lines from a directory's JSONL files, remembering offsets."""

    def __init__(self, directory: Path, stats: ScanStats) -> None:
        self.directory = directory
        self.stats = stats
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}
        self.numbers: dict[Path, int] = {}

    def read_new(self) -> Iterator[tuple[Path, int, bytes]]:
        for path in jsonl_files(self.directory):
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
    return not (args.trace and not event.trace_id.startswith(args.trace.lower()))


def _tail(args: argparse.Namespace) -> int:
    directory = _existing_dir(args.directory)
    if not directory.is_dir():
        raise CliError(f"not a directory: {args.directory}")
    stats = ScanStats()
    follower = _Follower(directory, stats)
    shown = 0

    def emit(event: AuditEvent) -> None:
        nonlocal shown
        shown += 1
        if args.json:
            sys.stdout.write(json.dumps(event.model_dump(mode="json"), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(_event_line(event) + "\n")

    backlog: deque[AuditEvent] = deque(maxlen=None if args.once else max(args.lines, 0))
    for path, number, raw in follower.read_new():
        event = _parse_line(path, number, raw, stats)
        if event is not None and _matches(event, args):
            if args.once:
                emit(event)  # streamed: --once over big files holds nothing in memory
            else:
                backlog.append(event)
    for event in backlog:
        emit(event)
    sys.stdout.flush()
    if args.once:
        _report_corrupt(stats)
        return EXIT_OK
    try:
        while True:
            time.sleep(args.interval)
            for path, number, raw in follower.read_new():
                new = _parse_line(path, number, raw, stats)
                if new is not None and _matches(new, args):
                    emit(new)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK


# ---- show ------------------------------------------------------------------------------------


def _call_text(call: dict[str, Any]) -> str:
    args = call.get("args")
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, dict) else args
    return f"{call.get('name')}({shown})"


def _decisions(events: list[AuditEvent]) -> list[str]:
    lines = []
    for event in events:
        where = event.agent
        if event.event_type == E.TOOL_SELECTION:
            calls = ", ".join(_call_text(c) for c in event.data.get("calls", []))
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
    from ..replay.plan import is_run_root
    from .tree import render_trace, trace_totals

    stats = ScanStats()
    events = _load_trace(args.dir, args.trace_id, stats)
    totals = trace_totals(events)
    errors = _errors(events)
    if args.json:
        _print_json({"trace_id": events[0].trace_id, "totals": totals,
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


# ---- verify ----------------------------------------------------------------------------------


def _anchor(text: str | None) -> Any:
    if text is None:
        return None
    from ..audit import ChainHead

    sequence, _, digest = text.partition(":")
    try:
        number = int(sequence)
    except ValueError:
        raise CliError(f"--anchor must be SEQ or SEQ:HASH, not {text!r}") from None
    return ChainHead(number, digest) if digest else number


def _verify(args: argparse.Namespace) -> int:
    from ..audit import verify

    directory = _existing_dir(args.directory)
    anchor = _anchor(args.anchor)
    key = args.key if args.key is not None else os.environ.get("AUDIT_CHAIN_KEY") or None
    _progress(f"verifying {directory}…")
    report = verify(directory, key=key, anchor=anchor, allow_torn=not args.strict_torn,
                    allow_pruned_start=args.allow_pruned_start)
    _progress_done()
    broken = report.first_broken
    if args.json:
        _print_json({"ok": report.ok, "records": report.records, "files": report.files,
                     "torn_lines": [vars(t) for t in report.torn_lines],
                     "first_broken": vars(broken) if broken else None,
                     "last": report.last.to_dict() if report.last else None})
    elif report.ok:
        last = f", last sequence {report.last.sequence}" if report.last else ""
        sys.stdout.write(f"OK: {report.records} records in {len(report.files)} file(s){last}\n")
        if report.torn_lines:
            sys.stdout.write(f"  {len(report.torn_lines)} torn line(s) from crashes, "
                             "acknowledged\n")
    else:
        assert broken is not None
        sys.stdout.write(f"BROKEN: {broken.reason} at {broken.file}:{broken.line}"
                         f" (sequence {broken.sequence}): {broken.detail}\n"
                         f"  {report.records} record(s) verified before the break\n")
    if not report.files and not args.json:
        sys.stderr.write(f"llm-audit: no audit-chain-*.jsonl files in {directory}\n")
    return EXIT_OK if report.ok else EXIT_NEGATIVE


# ---- stats -----------------------------------------------------------------------------------


def _money(value: Any) -> str:
    return "unpriced" if value is None else f"${value:.6f}"


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _stats_text(report: dict[str, Any]) -> list[str]:
    scan = report["scan"]
    out = [f"{scan['events']} events, {report['requests']} requests, {report['traces']} traces "
           f"in {len(scan['files'])} file(s)"]
    if report["sampling"]["weighted"]:
        out.append("rates are weighted by 1/keep probability of each sampled trace")
    out.append(f"total cost {_money(report['total_cost_usd'])}")
    for title, key in (("model", "cost_by_model"), ("day", "cost_by_day"),
                       ("user", "cost_by_user")):
        out.append(f"cost by {title}:")
        for row in report[key]:
            unpriced = f" ({row['unpriced_calls']} unpriced)" if row["unpriced_calls"] else ""
            out.append(f"  {row['key']:<40} {row['calls']:>6} calls  {row['tokens_input'] or 0:>9}"
                       f" in {row['tokens_output'] or 0:>9} out  {_money(row['cost_usd'])}"
                       f"{unpriced}")
    latency = report["latency_ms"]
    p50, p95 = (("n/a" if v is None else f"{v:.1f}") for v in (latency["p50"], latency["p95"]))
    out.append(f"latency of requests: p50 {p50} ms, p95 {p95} ms")
    out.append("SLOs (seed 000):")
    for slo in report["slo"]:
        ratio = slo["metric"] != "p95_latency_ms"
        value = _percent(slo["value"]) if ratio else (
            "n/a" if slo["value"] is None else f"{slo['value']:.1f} ms")
        target = _percent(slo["target_below"]) if ratio else f"{slo['target_below']:.0f} ms"
        verdict = {True: "ok", False: "BREACHED", None: "no data"}[slo["ok"]]
        out.append(f"  {slo['metric']:<18} {value:>10}  target < {target:<8} {verdict}")
    return out


def _stats(args: argparse.Namespace) -> int:
    from .analytics import AnalyticsUnavailableError, stats

    files = _files(args.directory)
    size = sum(f.stat().st_size for f in files)
    _progress(f"scanning {len(files)} file(s), {size / 1e6:.1f} MB with DuckDB…")
    try:
        report = stats(args.directory, success_rate=args.success_rate)
    except AnalyticsUnavailableError as exc:
        raise CliError(str(exc)) from None
    finally:
        _progress_done()
    if report["scan"]["corrupt"]:
        sys.stderr.write(f"llm-audit: skipped {report['scan']['corrupt']} corrupt line(s)\n")
    if args.json:
        _print_json(report)
    else:
        sys.stdout.write("\n".join(_stats_text(report)) + "\n")
    breached = any(s["ok"] is False for s in report["slo"])
    return EXIT_NEGATIVE if args.check_slo and breached else EXIT_OK


# ---- replay ----------------------------------------------------------------------------------


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _replay(args: argparse.Namespace) -> int:
    from ..replay.plan import build_plan

    stats = ScanStats()
    events = _load_trace(args.dir, args.trace_id, stats)
    plan = build_plan(events[0].trace_id, events)
    if args.json:
        _print_json(plan.as_dict())
        return EXIT_OK
    out = [f"replay plan of trace {plan.trace_id}", f"input: {_short(plan.inputs)}", "",
           f"LLM answers ({len(plan.llm_calls)}):"]
    for call in plan.llm_calls:
        head = f"  #{call.index + 1} {call.node or '-'} step {call.step}, {len(call.prompt)} msgs"
        if call.error is not None:
            out.append(f"{head} → raises {call.error.type}: {call.error.message}")
            continue
        output = call.output or {}
        calls = ", ".join(_call_text(c) for c in output.get("tool_calls") or [])
        out.append(f"{head} → " + (f"calls {calls}" if calls else _short(output.get("content"))))
    out += ["", f"tool results ({len(plan.tool_runs)}):"]
    for run in plan.tool_runs:
        head = f"  #{run.index + 1} {run.name}({_short(run.args, 80)})"
        if run.error is not None:
            out.append(f"{head} → raises {run.error.type}: {run.error.message}")
        else:
            output = run.output
            content = output.get("content") if isinstance(output, dict) else output
            out.append(f"{head} → {_short(content)}")
    out += ["", f"routes ({len(plan.routes)}):"]
    out += [f"  step {r.step}: {r.from_node} → {r.destination}" for r in plan.routes]
    error = plan.error
    out += ["", "outcome: " + ("success" if error is None else
                               f"raises {error.type}: {error.message}")]
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


# ---- parser ----------------------------------------------------------------------------------


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _default_dir() -> str:
    return os.environ.get("AUDIT_LOG_DIR") or "logs"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="llm-audit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    schema = commands.add_parser("schema", help="print the JSON Schema of audit events")
    schema.set_defaults(func=_schema)

    tail = commands.add_parser("tail", help="print events as they are written (like tail -f)")
    tail.add_argument("directory", metavar="DIR")
    tail.add_argument("--type", action="append", help="event type or glob (tool.*); repeatable")
    tail.add_argument("--status", action="append", choices=["ok", "error", "timeout", "retry"])
    tail.add_argument("--trace", help="trace id (or prefix)")
    tail.add_argument("--once", action="store_true", help="print what exists and exit")
    tail.add_argument("-n", "--lines", type=int, default=10,
                      help="matching events already written to show first (default 10)")
    tail.add_argument("--interval", type=float, default=0.5, help="poll interval, seconds")
    _json_flag(tail)
    tail.set_defaults(func=_tail)

    show = commands.add_parser("show", help="one trace as a tree with timings, cost, decisions")
    show.add_argument("trace_id", metavar="TRACE_ID", help="trace id (or a unique prefix)")
    show.add_argument("--dir", default=_default_dir(), help="JSONL directory ($AUDIT_LOG_DIR)")
    show.add_argument("--traceback", action="store_true", help="print error tracebacks")
    _json_flag(show)
    show.set_defaults(func=_show)

    verify = commands.add_parser("verify", help="verify a hash-chained audit directory")
    verify.add_argument("directory", metavar="DIR")
    verify.add_argument("--key", help="HMAC key (default $AUDIT_CHAIN_KEY)")
    verify.add_argument("--anchor", metavar="SEQ[:HASH]", help="external anchor")
    verify.add_argument("--strict-torn", action="store_true", help="a torn line is a failure")
    verify.add_argument("--allow-pruned-start", action="store_true",
                        help="oldest files deleted by retention")
    _json_flag(verify)
    verify.set_defaults(func=_verify)

    stats = commands.add_parser("stats", help="cost, latency and SLO rates (needs duckdb)")
    stats.add_argument("directory", metavar="DIR")
    stats.add_argument("--success-rate", type=float, default=None,
                       help="SUCCESS_SAMPLE_RATE the files were written with, to weight "
                            "sampled traces when the files do not record it")
    stats.add_argument("--check-slo", action="store_true", help="exit 1 when an SLO is breached")
    _json_flag(stats)
    stats.set_defaults(func=_stats)

    replay = commands.add_parser("replay", help="the replay plan of a recorded trace")
    replay.add_argument("trace_id", metavar="TRACE_ID", help="trace id (or a unique prefix)")
    replay.add_argument("--dir", default=_default_dir(), help="JSONL directory ($AUDIT_LOG_DIR)")
    _json_flag(replay)
    replay.set_defaults(func=_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except BrokenPipeError:  # `llm-audit ... | head`
        return EXIT_OK
    except (CliError, AuditError, FileNotFoundError) as exc:
        sys.stderr.write(f"llm-audit: error: {exc}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
