"""What every ``llm-audit`` command shares: exit codes, the error it raises, JSON and progress
output, finding the JSONL files and loading one trace."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ...events import AuditEvent
from ...replay.reading import ScanStats, jsonl_files
from ..trace_list import TraceFilter, parse_when

EXIT_OK, EXIT_NEGATIVE, EXIT_ERROR = 0, 1, 2


class CliError(Exception):
    """A reason the command cannot run; printed as ``llm-audit: error: ...``, exit code 2."""


def print_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(value, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


@contextmanager
def progress(message: str, stats: ScanStats | None = None) -> Iterator[None]:
    """``message`` on stderr while the block runs, only for a person watching (stderr is a
    terminal), cleared however the block ends; then the corrupt lines ``stats`` counted."""
    shown_now = sys.stderr.isatty()
    if shown_now:
        sys.stderr.write(f"\r\x1b[K{message}")
        sys.stderr.flush()
    try:
        yield
    finally:
        if shown_now:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
        if stats is not None:
            report_corrupt(stats)


def report_corrupt(stats: ScanStats) -> None:
    if not stats.corrupt:
        return
    sys.stderr.write(f"llm-audit: skipped {stats.corrupt} corrupt line(s)\n")
    for bad in stats.corrupt_lines[:5]:
        sys.stderr.write(f"  {bad.file}:{bad.line}: {bad.reason}\n")


def existing_dir(path: str) -> Path:
    target = Path(path)
    if not target.exists():
        raise CliError(f"no such directory: {path}")
    if not target.is_dir():
        raise CliError(f"not a directory: {path} (--dir, or $AUDIT_LOG_DIR, names a file)")
    return target


def files(path: str) -> list[Path]:
    try:
        return jsonl_files(existing_dir(path))
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None


def load_trace_events(directory: str, trace_id: str, stats: ScanStats) -> list[AuditEvent]:
    from ...replay.fixture import load_trace

    existing_dir(directory)
    with progress(f"scanning {len(files(directory))} file(s) for trace {trace_id}…", stats):
        return load_trace(directory, trace_id, stats)


def json_flag(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def default_dir() -> str:
    return os.environ.get("AUDIT_LOG_DIR") or "logs"


def call_text(call: dict[str, Any]) -> str:
    args = call.get("args")
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, dict) else args
    return f"{call.get('name')}({shown})"


def dir_option(parser: Any, *, positional: bool = False) -> None:
    """``--dir DIR`` with the default every command shares ($AUDIT_LOG_DIR, else ``logs``).
    ``positional``: also accept the older ``llm-audit CMD DIR`` form (hidden from help)."""
    parser.add_argument("--dir", default=None, metavar="DIR",
                        help="the JSONL directory (default $AUDIT_LOG_DIR, else logs)")
    if positional:
        parser.add_argument("old_dir", nargs="?", default=None, help=argparse.SUPPRESS)


def chosen_dir(args: Any) -> str:
    """The directory a command reads: ``--dir``, else the older positional form, else the
    shared default."""
    return str(args.dir or getattr(args, "old_dir", None) or default_dir())


def trace_filter_options(parser: Any) -> None:
    """The filters ``traces`` and ``tail`` share."""
    parser.add_argument("--since", metavar="WHEN",
                        help="runs started at or after WHEN: 2026-12-02, 2026-12-02T10:30 (UTC) "
                             "or an age such as 15m, 2h, 7d")
    parser.add_argument("--until", metavar="WHEN", help="runs started at or before WHEN")
    parser.add_argument("--user", help="user id (the user_id in the run's metadata)")
    parser.add_argument("--thread", help="LangGraph thread id")
    parser.add_argument("--model", help="a model id (or part of one) the run called")
    parser.add_argument("--min-cost", type=float, metavar="USD", help="runs that cost at least")


def trace_filter(args: Any, *, status: str | None = None) -> TraceFilter:
    """The ``TraceFilter`` of the parsed options; ``CliError`` for a time it cannot read."""
    try:
        since = parse_when(args.since) if args.since else None
        until = parse_when(args.until) if args.until else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return TraceFilter(since=since, until=until, user=args.user, thread=args.thread,
                       status=status, model=args.model, min_cost=args.min_cost)


def store_options(parser: Any) -> None:
    """``--from URI|DIR`` and ``--table``: read a store (PostgreSQL, MongoDB) instead of
    ``--dir``; a directory given to ``--from`` reads as ``--dir``."""
    parser.add_argument("--from", dest="source", metavar="URI|DIR", default=None,
                        help="read from a store: postgresql://..., mongodb://... or a directory")
    parser.add_argument("--table", default="llm_audit",
                        help="table or collection of the store given with --from")


def store_uri(args: Any) -> str | None:
    """The store URI of ``--from``, or None when the command reads a directory (``--from DIR``
    then takes the place of ``--dir``)."""
    from ..stores import is_store_uri

    source = getattr(args, "source", None)
    if source and not is_store_uri(source):
        args.dir, args.source = source, None
        return None
    return source or None


def store_events(args: Any, **query: Any) -> Iterator[AuditEvent]:
    """The events ``store.events(**query)`` streams from ``--from``; ``CliError`` names the
    store when the driver cannot connect or query."""
    from ...errors import AuditError
    from ..stores import open_store

    with progress(f"reading {shown(args.source)}…"):
        try:
            store = open_store(args.source, table=args.table)
            try:
                yield from store.events(**query)
            finally:
                store.close()
        except AuditError:
            raise
        except Exception as exc:  # the driver's connection or query error
            raise CliError(f"cannot read {shown(args.source)}: {type(exc).__name__}: "
                           f"{exc}") from None


def shown(source: str) -> str:
    """``source`` as printed: a URI's password replaced by ``***``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(source)
        password = parts.password
    except ValueError:
        return source
    if not password:
        return source
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1)).geturl()
