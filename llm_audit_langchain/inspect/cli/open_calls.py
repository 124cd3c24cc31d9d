"""List tool calls that never got a result: the process died inside the tool, or the run was
abandoned. Exit code 1 when there is any (a negative answer), 0 when every call was closed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    CliError,
    default_dir,
    existing_dir,
    json_flag,
    print_json,
)


def _open_calls(args: argparse.Namespace) -> int:
    from ..context_versions import load_events
    from ..reconstruct import open_tool_calls

    directories = [*args.directories, *(args.dir or [])] or [default_dir()]
    for directory in directories:
        existing_dir(directory)
    try:
        calls = open_tool_calls(load_events(*directories))
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    rows = [{"time": call.timestamp.isoformat(), "trace_id": call.trace_id,
             "span_id": call.span_id, "tool": call.action,
             "tool_call_id": call.data.get("tool_call_id"),
             "write_ahead": bool(call.data.get("write_ahead")), "input": call.data.get("input")}
            for call in calls]
    if args.json:
        print_json({"open_calls": rows})
    elif not rows:
        sys.stdout.write("no open tool calls\n")
    else:
        for row in rows:
            mark = " (write-ahead)" if row["write_ahead"] else ""
            sys.stdout.write(f"{row['time']}  {row['tool']}{mark}  trace {row['trace_id']}  "
                             f"span {row['span_id']}  call {row['tool_call_id']}\n")
        sys.stdout.write(f"{len(rows)} tool call(s) with no result\n")
    return EXIT_NEGATIVE if rows else EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit open-calls``."""
    parser = commands.add_parser("open-calls", help="tool calls with no recorded result")
    parser.add_argument("directories", nargs="*", metavar="DIR",
                        help="JSONL or audit-chain directories (default $AUDIT_LOG_DIR or logs)")
    parser.add_argument("--dir", action="append", metavar="DIR", help="same as DIR; repeatable")
    json_flag(parser)
    parser.set_defaults(func=_open_calls)
