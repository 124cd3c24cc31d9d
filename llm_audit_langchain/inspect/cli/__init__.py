"""The ``llm-audit`` command: look at what was recorded.

    llm-audit tail DIR [--type T] [--status S] [--trace ID] [--once]   # follow new events
    llm-audit show TRACE_ID --dir DIR        # the trace tree: timings, tokens, cost, decisions
    llm-audit verify DIR [--key K] [--anchor SEQ[:HASH]]   # check the hash-chained audit log
    llm-audit stats DIR                      # cost by model/day/user, latency, SLO rates (DuckDB)
    llm-audit stats --from URI|DIR           # the store report from mongodb://, postgresql://
    llm-audit show TRACE_ID --from URI|DIR   # a trace read from a store
    llm-audit retention --from postgresql://...   # drop expired monthly partitions
    llm-audit replay TRACE_ID --dir DIR      # the replay plan: recorded answers, results, error
    llm-audit schema                         # the JSON Schema of the event model

Every command takes ``--json``. Exit codes: 0 done; 1 done and the answer is negative (a broken
chain, a breached SLO with ``--check-slo``); 2 could not run (bad arguments, a missing
directory, an unknown trace id, DuckDB missing). Corrupt lines are skipped and counted on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from ...errors import AuditError
from . import replay, retention, show, stats, tail, verify
from .common import EXIT_ERROR, EXIT_OK, CliError

Command = Callable[[argparse.Namespace], int]


def _schema(args: argparse.Namespace) -> int:
    from ...schema import load_schema

    json.dump(load_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="llm-audit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    schema = commands.add_parser("schema", help="print the JSON Schema of audit events")
    schema.set_defaults(func=_schema)
    for command in (tail, show, verify, stats, replay, retention):
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
