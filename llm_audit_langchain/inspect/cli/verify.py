"""Check a hash-chained audit directory."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import terminal
from .common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    CliError,
    chosen_dir,
    dir_option,
    existing_dir,
    json_flag,
    print_json,
    progress,
)


def _anchor(text: str | None) -> Any:
    if text is None:
        return None
    from ...audit import ChainHead

    sequence, _, digest = text.partition(":")
    try:
        number = int(sequence)
    except ValueError:
        raise CliError(f"--anchor must be SEQ or SEQ:HASH, not {text!r}") from None
    return ChainHead(number, digest) if digest else number


def _verify(args: argparse.Namespace) -> int:
    from ...audit import verify

    directory = existing_dir(chosen_dir(args))
    anchor = _anchor(args.anchor)
    key = args.key if args.key is not None else os.environ.get("AUDIT_CHAIN_KEY") or None
    with progress(f"verifying {directory}…"):
        report = verify(directory, key=key, anchor=anchor, allow_torn=not args.strict_torn,
                        allow_pruned_start=args.allow_pruned_start)
    broken = report.first_broken
    if not report.files:
        raise CliError(f"no audit-chain-*.jsonl files in {directory}: the hash-chained log is "
                       f"written by AuditLogExporter (or AUDIT_EXPORTER=audit with "
                       f"AUDIT_CHAIN_DIR); pass its directory with --dir")
    if broken is not None and broken.reason == "wrong_key" and key is None:
        raise CliError(f"key required: the chain in {directory} is keyed (HMAC); pass --key "
                       f"or set AUDIT_CHAIN_KEY")
    if args.json:
        print_json({"ok": report.ok, "records": report.records, "files": report.files,
                     "torn_lines": [vars(t) for t in report.torn_lines],
                     "first_broken": vars(broken) if broken else None,
                     "last": report.last.to_dict() if report.last else None})
    elif terminal.enabled():
        terminal.print_verify(report)
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
    return EXIT_OK if report.ok else EXIT_NEGATIVE


def add_parser(commands: Any) -> None:
    """Register ``llm-audit verify``."""
    verify = commands.add_parser("verify", help="verify a hash-chained audit directory")
    dir_option(verify, positional=True)
    verify.add_argument("--key", help="HMAC key (default $AUDIT_CHAIN_KEY)")
    verify.add_argument("--anchor", metavar="SEQ[:HASH]", help="external anchor")
    verify.add_argument("--strict-torn", action="store_true", help="a torn line is a failure")
    verify.add_argument("--allow-pruned-start", action="store_true",
                        help="oldest files deleted by retention")
    json_flag(verify)
    verify.set_defaults(func=_verify)
