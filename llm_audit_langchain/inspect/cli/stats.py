"""Cost, latency and SLO rates over a directory (DuckDB); with ``--from URI|DIR`` the store
report (``inspect/stores``) from MongoDB, PostgreSQL or JSONL, the same on each."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...errors import AuditError
from . import terminal
from .common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    CliError,
    chosen_dir,
    dir_option,
    files,
    json_flag,
    print_json,
    progress,
)


def _money(value: Any) -> str:
    return "unpriced" if value is None else f"${value:.6f}"


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _stats_text(report: dict[str, Any]) -> list[str]:
    scan = report["scan"]
    out = [f"{scan['events']} events, {report['requests']} requests, {report['traces']} traces "
           f"in {len(scan['files'])} file(s)"]
    if report["sampling"]["weighted"]:
        out.append("rates are weighted by 1/keep probability of each sampled trace")
    out.append(f"total cost {_money(report['total_cost_usd'])}")
    for title, key in (("model", "cost_by_model"), ("day", "cost_by_day"),
                       ("user", "cost_by_user")):
        out.append(f"cost by {title}:")
        for row in report[key]:
            unpriced = f" ({row['unpriced_calls']} unpriced)" if row["unpriced_calls"] else ""
            out.append(f"  {row['key']:<40} {row['calls']:>6} calls  {row['tokens_input'] or 0:>9}"
                       f" in {row['tokens_output'] or 0:>9} out  {_money(row['cost_usd'])}"
                       f"{unpriced}")
    latency = report["latency_ms"]
    p50, p95 = (("n/a" if v is None else f"{v:.1f}") for v in (latency["p50"], latency["p95"]))
    out.append(f"latency of requests: p50 {p50} ms, p95 {p95} ms")
    out.append("SLOs (targets the rates should stay below):")
    for slo in report["slo"]:
        ratio = slo["metric"] != "p95_latency_ms"
        value = _percent(slo["value"]) if ratio else (
            "n/a" if slo["value"] is None else f"{slo['value']:.1f} ms")
        target = _percent(slo["target_below"]) if ratio else f"{slo['target_below']:.0f} ms"
        verdict = {True: "ok", False: "BREACHED", None: "no data"}[slo["ok"]]
        out.append(f"  {slo['metric']:<18} {value:>10}  target < {target:<8} {verdict}")
    return out


def _store_text(report: dict[str, Any]) -> list[str]:
    out = [f"{report['events']} events, {report['requests']} requests, {report['traces']} "
           f"traces; total cost {_money(report['total_cost_usd'])}"]
    for title, rows in report["cost_by"].items():
        out.append(f"cost by {title}:")
        out += [f"  {row['key']:<40} {row['calls']:>7} calls  {_money(row['cost_usd'])}"
                for row in rows[:10]]
    out.append("providers (calls, error rate, cost, p50/p95 ms):")
    for row in report["providers"]:
        out.append(f"  {row['provider']:<24} {row['calls']:>7}  {_percent(row['error_rate'])}"
                   f"  {_money(row['cost_usd'])}  {_ms(row['p50_ms'])}/{_ms(row['p95_ms'])}")
    out.append("latency by model (p50/p95/p99 ms):")
    out += [f"  {r['key']:<40} {_ms(r['p50'])}/{_ms(r['p95'])}/{_ms(r['p99'])}"
            for r in report["latency_ms"]["model"]]
    rates = report["rates"]
    out.append(f"error rate {_percent(rates['error_rate'])}, LLM error rate "
               f"{_percent(rates['llm_error_rate'])}, retries per request "
               f"{_percent(rates['retry_rate'])}")
    out.append("most expensive traces:")
    out += [f"  {t['trace_id']}  {_money(t['cost_usd'])}  {t['user_id'] or ''}"
            for t in report["top_traces"]]
    security = report["security"]
    out.append(f"guardrail interventions {security['guardrail_interventions']}, "
               f"rate-limited calls {security['rate_limited']}")
    return out


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _store_stats(args: argparse.Namespace) -> int:
    from ..analytics import AnalyticsUnavailableError
    from ..stores import open_store

    with progress(f"querying {args.source}…"):
        try:
            store = open_store(args.source, table=args.table)
            try:
                report = store.report(top=args.top)
            finally:
                store.close()
        except AnalyticsUnavailableError as exc:
            raise CliError(str(exc)) from None
        except (AuditError, FileNotFoundError):
            raise
        except Exception as exc:  # the driver's connection or query error
            raise CliError(f"cannot read {args.source}: {type(exc).__name__}: {exc}") from None
    if args.json:
        print_json(report)
    else:
        sys.stdout.write("\n".join(_store_text(report)) + "\n")
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    from ..analytics import AnalyticsUnavailableError, stats

    if args.source:
        return _store_stats(args)
    directory = chosen_dir(args)
    paths = files(directory)
    size = sum(f.stat().st_size for f in paths)
    with progress(f"scanning {len(paths)} file(s), {size / 1e6:.1f} MB with DuckDB…"):
        try:
            report = stats(directory, success_rate=args.success_rate)
        except AnalyticsUnavailableError as exc:
            raise CliError(str(exc)) from None
    if report["scan"]["corrupt"]:
        sys.stderr.write(f"llm-audit: skipped {report['scan']['corrupt']} corrupt line(s)\n")
    if args.json:
        print_json(report)
    elif terminal.enabled():
        terminal.print_stats(report)
    else:
        sys.stdout.write("\n".join(_stats_text(report)) + "\n")
    breached = any(s["ok"] is False for s in report["slo"])
    return EXIT_NEGATIVE if args.check_slo and breached else EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit stats``."""
    stats = commands.add_parser("stats", help="cost, latency and SLO rates (needs duckdb)")
    dir_option(stats, positional=True)
    stats.add_argument("--from", dest="source", metavar="URI|DIR", default=None,
                       help="the store report (cost, usage, latency, providers, top traces) "
                            "from mongodb://..., postgresql://... or a JSONL directory")
    stats.add_argument("--table", default="llm_audit",
                       help="table or collection of the store given with --from")
    stats.add_argument("--top", type=int, default=10, help="how many expensive traces")
    stats.add_argument("--success-rate", type=float, default=None,
                       help="SUCCESS_SAMPLE_RATE the files were written with, to weight "
                            "sampled traces when the files do not record it")
    stats.add_argument("--check-slo", action="store_true", help="exit 1 when an SLO is breached")
    json_flag(stats)
    stats.set_defaults(func=_stats)
