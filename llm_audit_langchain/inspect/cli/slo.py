"""``llm-audit slo``: each SLO over recorded files, with its error budget and burn rates."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from ...alerts.signals import TrafficWindows, is_request
from ...alerts.slo import DEFAULT_SLOS, slo_report
from ...events import AuditEvent
from ...replay.reading import ScanStats, scan
from .common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    CliError,
    default_dir,
    existing_dir,
    json_flag,
    print_json,
    progress,
    shown,
    store_events,
    store_options,
    store_uri,
)

_WIDTH = 60.0  # one-minute buckets: a month of files stays small


def _weight(root: AuditEvent, success_rate: float | None) -> float:
    """1 / the probability the trace was kept (tail sampling keeps normal traces at a rate)."""
    sampling = root.data.get("sampling")
    if isinstance(sampling, dict):
        rate = sampling.get("rate")
        if isinstance(rate, int | float) and rate > 0:
            return 1.0 / rate
        if sampling.get("reason") == "rate" and success_rate:
            return 1.0 / success_rate
    return 1.0


def measure_files(directory: str, success_rate: float | None, stats: ScanStats
                  ) -> tuple[TrafficWindows, float, float] | None:
    """The windows filled from every event under ``directory``, and the first and last
    moments; None when there are no events. Each trace counts with its root's weight."""
    return measure_events(list(scan(directory, stats)), success_rate)


def measure_events(events: list[AuditEvent], success_rate: float | None
                   ) -> tuple[TrafficWindows, float, float] | None:
    """:func:`measure_files` over events read from anywhere (a store)."""
    if not events:
        return None
    first = min(e.timestamp for e in events).timestamp()
    last = max(e.timestamp for e in events).timestamp()
    period = last - first + _WIDTH
    windows = TrafficWindows(_WIDTH, period + _WIDTH, latency_horizon=period + _WIDTH)
    weights = {e.trace_id: _weight(e, success_rate) for e in events if is_request(e)}
    for event in sorted(events, key=lambda e: e.timestamp):
        windows.record(event, event.timestamp.timestamp(), weights.get(event.trace_id, 1.0))
    return windows, first, last


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _text(report: list[dict[str, Any]], first: float, last: float) -> list[str]:
    span = " to ".join(datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                       for moment in (first, last))
    windows = list(report[0]["burn_rate"]) if report else []
    out = [f"SLOs over {span} (burn rates over the last {', '.join(windows)} of it)",
           f"  {'slo':<18} {'value':>8} {'target':>8} {'budget left':>12}  "
           + " ".join(f"{'burn ' + w:>9}" for w in windows) + "  status"]
    for slo in report:
        budget = "n/a" if slo["budget_left"] is None else f"{slo['budget_left'] * 100:.1f}%"
        verdict = {True: "ok", False: "BREACHED", None: "no data"}[slo["ok"]]
        rates = " ".join(f"{_rate(slo['burn_rate'][w]):>9}" for w in windows)
        out.append(f"  {slo['slo']:<18} {_percent(slo['value']):>8} {_percent(slo['target']):>8}"
                   f" {budget:>12}  {rates}  {verdict}")
        if "p95_latency_ms" in slo and slo["p95_latency_ms"] is not None:
            out.append(f"  {'':<18} p95 {slo['p95_latency_ms']:.0f} ms "
                       f"(threshold {slo['threshold_ms']:.0f} ms)")
    return out


def _slo(args: argparse.Namespace) -> int:
    source = store_uri(args)
    if source:
        measured = measure_events(list(store_events(args)), args.success_rate)
        where = shown(source)
    else:
        where = args.dir or default_dir()
        existing_dir(where)
        stats = ScanStats()
        with progress(f"reading {where}…", stats):
            measured = measure_files(where, args.success_rate, stats)
    if measured is None:
        raise CliError(f"no audit events in {where}")
    windows, first, last = measured
    report = slo_report(windows, last, last - first + _WIDTH, DEFAULT_SLOS)
    if args.json:
        print_json({"from": first, "to": last, "slos": report})
    else:
        sys.stdout.write("\n".join(_text(report, first, last)) + "\n")
    breached = [slo for slo in report if slo["ok"] is False]
    if args.check and breached:
        names = ", ".join(f"{s['slo']} ({_percent(s['value'])} > {_percent(s['target'])})"
                          for s in breached)
        sys.stderr.write(f"llm-audit: SLO breached: {names}\n")
        return EXIT_NEGATIVE
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit slo``."""
    slo = commands.add_parser("slo", help="SLOs: value, target, error budget left, burn rates")
    slo.add_argument("--dir", default=None, help="the JSONL directory (default: $AUDIT_LOG_DIR "
                                                 "or ./logs)")
    store_options(slo)
    slo.add_argument("--check", action="store_true",
                     help="exit 1 when an SLO's budget is overspent, naming it (for CI)")
    slo.add_argument("--success-rate", type=float, default=None,
                     help="SUCCESS_SAMPLE_RATE the files were written with, when they do not "
                          "record it")
    json_flag(slo)
    slo.set_defaults(func=_slo)
