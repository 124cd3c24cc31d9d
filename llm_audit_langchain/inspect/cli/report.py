"""``llm-audit report``: a static, self-contained HTML report for auditors."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    CliError,
    default_dir,
    existing_dir,
    json_flag,
    print_json,
    progress,
    report_corrupt,
)


def parse_time(text: str | None, flag: str) -> datetime | None:
    """An ISO 8601 time (``2026-12-01`` or ``2026-12-01T08:00:00Z``; naive means UTC)."""
    if text is None:
        return None
    from ..traces import _aware

    try:
        return _aware(text)
    except ValueError:
        raise CliError(f"{flag} must be an ISO 8601 date or time, not {text!r}") from None


def _report(args: argparse.Namespace) -> int:
    from ..html.report import render_report
    from ..summary import chain_result
    from ..traces import Traces

    directory = existing_dir(args.directory or args.dir)
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    started = time.perf_counter()
    with progress(f"reading {directory}…"):
        everything = Traces.from_jsonl(directory)
    if everything.scan_stats is not None:
        report_corrupt(everything.scan_stats)
    traces = everything.filter(since=since, until=until)
    chain_dir = args.chain or directory
    with progress(f"verifying the audit chain in {chain_dir}…"):
        chain = chain_result(chain_dir, args.key)
    with progress(f"rendering {len(traces)} trace(s)…"):
        html = render_report(traces, chain_dir=chain_dir, title=args.title,
                             period=(since, until), chain=chain)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    seconds = time.perf_counter() - started
    if args.json:
        print_json({"output": str(output), "traces": len(traces), "bytes": len(html.encode()),
                    "seconds": round(seconds, 3),
                    "chain": {"checked": chain.checked, "ok": chain.ok, "detail": chain.detail}})
    else:
        sys.stdout.write(f"wrote {output} ({len(traces)} traces, {len(html) / 1e6:.1f} MB, "
                         f"{seconds:.1f} s); audit chain: {chain.detail}\n")
    return EXIT_NEGATIVE if chain.checked and not chain.ok else EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit report``."""
    report = commands.add_parser(
        "report", help="a self-contained HTML report for auditors (opens from disk)",
        description="Write one HTML file: summary, SLOs, audit chain verification, decisions "
                    "and overrides, and every trace. Exit 1 when the audit chain is broken.")
    report.add_argument("directory", nargs="?", metavar="DIR", help="JSONL directory (or --dir)")
    report.add_argument("--dir", default=default_dir(), help="JSONL directory ($AUDIT_LOG_DIR)")
    report.add_argument("--since", metavar="TIME", help="traces started at or after (ISO 8601)")
    report.add_argument("--until", metavar="TIME", help="traces started before (ISO 8601)")
    report.add_argument("-o", "--output", default="report.html", help="the HTML file to write")
    report.add_argument("--chain", metavar="DIR",
                        help="audit chain directory to verify (default: DIR)")
    report.add_argument("--key", default=os.environ.get("AUDIT_CHAIN_KEY") or None,
                        help="HMAC key of the chain (default $AUDIT_CHAIN_KEY)")
    report.add_argument("--title", default="LLM audit report")
    json_flag(report)
    report.set_defaults(func=_report)
