"""The ``llm-audit`` command: look at what was recorded.

    llm-audit schema            # the JSON Schema of the event model
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _schema(args: argparse.Namespace) -> int:
    from .schema import load_schema

    json.dump(load_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="llm-audit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    schema = commands.add_parser("schema", help="print the JSON Schema of audit events")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except BrokenPipeError:  # `llm-audit ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
