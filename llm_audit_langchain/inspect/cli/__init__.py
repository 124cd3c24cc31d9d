"""The ``llm-audit`` command: look at what was recorded.

    llm-audit traces [--since 2h] [--user U] [--thread T] [--status S]   # one line per run
    llm-audit show TRACE_ID [--io]           # the trace tree: timings, tokens, cost, decisions
    llm-audit tail [--type T] [--status S] [--user U] [--once]   # follow new events
    llm-audit verify [--key K] [--anchor SEQ[:HASH]]   # check the hash-chained audit log
    llm-audit stats                          # cost by model/day/user, latency, SLO rates (DuckDB)
    llm-audit stats --from URI|DIR           # the store report from mongodb://, postgresql://
    llm-audit show TRACE_ID --from URI|DIR   # a trace read from a store
    llm-audit retention --from postgresql://...   # drop expired monthly partitions
    llm-audit replay TRACE_ID                # the replay plan: recorded answers, results, error
    llm-audit slo [--check]                  # SLOs: value, target, budget left, burn rates
    llm-audit alerts export-prometheus       # the alert rules as a Prometheus rules file
    llm-audit report -o report.html          # a self-contained HTML report for auditors
    llm-audit ui                             # the same pages, served live on 127.0.0.1
    llm-audit open-calls                     # tool calls with no recorded result
    llm-audit schema                         # the JSON Schema of the event model
    llm-audit open-calls DIR...              # tool calls with no result (a crash mid-tool)

Every command reads ``--dir DIR`` (default ``$AUDIT_LOG_DIR``, else ``logs``) and takes
``--json``. Exit codes: 0 done; 1 done and the answer is negative (a broken chain, a breached
SLO with ``stats --check-slo`` or ``slo --check``, calls without a result in ``open-calls``); 2
could not run (bad arguments, a missing directory, an unknown trace id, DuckDB missing). Corrupt
lines are skipped and counted on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from ...errors import AuditError
from . import (
    alerts,
    open_calls,
    replay,
    report,
    retention,
    show,
    slo,
    stats,
    tail,
    traces,
    ui,
    verify,
)
from .common import EXIT_ERROR, EXIT_OK, CliError, json_flag

Command = Callable[[argparse.Namespace], int]


def _schema(args: argparse.Namespace) -> int:
    from ...schema import load_schema

    json.dump(load_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return EXIT_OK


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llm-audit-langchain")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="llm-audit",
                                     description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"llm-audit {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    schema = commands.add_parser("schema", help="print the JSON Schema of audit events")
    json_flag(schema)  # the schema is JSON either way; accepted like every command's
    schema.set_defaults(func=_schema)
    for command in (traces, tail, show, verify, stats, replay, report, ui, slo, alerts,
                    open_calls, retention):
        command.add_parser(commands)
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
