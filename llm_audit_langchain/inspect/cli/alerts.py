"""``llm-audit alerts``: the alert rules in effect, and as a Prometheus rules file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ...alerts.builtin import builtin_rules
from ...alerts.prometheus import rules_file
from ...alerts.rulefile import load_rules
from ...alerts.rules import AlertRule
from .common import EXIT_OK, json_flag, print_json


def _rules(args: argparse.Namespace) -> list[AlertRule]:
    """The built-in rules with the rule file's (``--rules`` or ``$AUDIT_ALERT_RULES``) applied."""
    merged = {rule.name: rule for rule in builtin_rules()}
    path = args.rules or os.environ.get("AUDIT_ALERT_RULES", "").strip()
    if path:
        loaded = load_rules(path, variable="--rules" if args.rules else "AUDIT_ALERT_RULES")
        merged.update({rule.name: rule for rule in loaded.rules})
        for name in loaded.disabled:
            merged.pop(name, None)
    return list(merged.values())


def _list(args: argparse.Namespace) -> int:
    rules = _rules(args)
    if args.json:
        print_json([rule.as_dict() for rule in rules])
        return EXIT_OK
    for rule in rules:
        extra = f" and {rule.short_window_s:g}s" if rule.short_window_s else ""
        sys.stdout.write(f"{rule.name:<34} {rule.severity:<8} {rule.metric} {rule.comparison} "
                         f"{rule.threshold:g} over {rule.window_s:g}s{extra}\n")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    text = rules_file(_rules(args))
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        sys.stderr.write(f"llm-audit: wrote {args.output}\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit alerts list`` and ``llm-audit alerts export-prometheus``."""
    alerts = commands.add_parser("alerts", help="the alert rules; export them for Prometheus")
    actions = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the rules in effect (built-in + rule file)")
    export = actions.add_parser("export-prometheus",
                                help="write the rules as a Prometheus rules file")
    export.add_argument("-o", "--output", default=None, help="file to write (default: stdout)")
    for parser in (listing, export):
        parser.add_argument("--rules", default=None,
                            help="a TOML rule file (default: $AUDIT_ALERT_RULES)")
    json_flag(listing)
    listing.set_defaults(func=_list)
    export.set_defaults(func=_export)
