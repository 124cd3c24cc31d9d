"""The retention job: drop a PostgreSQL store's monthly partitions that have wholly expired.

MongoDB needs no job (its TTL index removes expired documents); JSONL files are plain files
(delete old days with any file tool). ``PostgresExporter`` also runs this hourly by itself;
the command is for a cron job or for a store no running process writes to.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, CliError, json_flag, print_json


def _retention(args: argparse.Namespace) -> int:
    source: str = args.source
    if source.startswith(("mongodb://", "mongodb+srv://")):
        sys.stdout.write("MongoDB: the TTL index on timestamp expires events; nothing to do\n")
        return EXIT_OK
    if not source.startswith(("postgresql://", "postgres://")):
        raise CliError("--from: a postgresql:// URI (JSONL files are removed with file tools)")
    from ...exporters.postgres import PostgresExporter

    store = PostgresExporter(source, table=args.table, retention_days=args.days)
    try:
        dropped = store.apply_retention(dry_run=args.dry_run)
        kept = store.partitions()
    except Exception as exc:  # the driver's connection or permission error
        raise CliError(f"cannot apply retention to {source}: {type(exc).__name__}: {exc}"
                       ) from None
    finally:
        store.shutdown()
    if args.json:
        print_json({"dropped" if not args.dry_run else "would_drop": dropped,
                    "partitions": kept, "retention_days": args.days})
    else:
        verb = "would drop" if args.dry_run else "dropped"
        sys.stdout.write(f"{verb} {len(dropped)} partition(s) older than {args.days} days"
                         + "".join(f"\n  {name}" for name in dropped) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit retention``."""
    parser = commands.add_parser("retention", help="drop expired monthly partitions (PostgreSQL)")
    parser.add_argument("--from", dest="source", metavar="URI", required=True)
    parser.add_argument("--table", default="llm_audit", help="the audit table")
    parser.add_argument("--days", type=int, default=90, help="retention in days (default 90)")
    parser.add_argument("--dry-run", action="store_true", help="list, do not drop")
    json_flag(parser)
    parser.set_defaults(func=_retention)
