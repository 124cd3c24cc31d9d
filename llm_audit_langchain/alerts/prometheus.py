"""The alert rules as a Prometheus rules file, over the project's own metric names.

For users who already run Prometheus (and Alertmanager): ``AuditMetrics`` exposes the counters
and histograms (``prometheus_port=``), and this file holds the same rules as the in-process
engine, in PromQL. Names are as OpenTelemetry's Prometheus exporter writes them: attributes
become labels with dots as underscores (``llm_audit_status``), histograms in ms gain
``_milliseconds``, and the USD counter its unit (``cost_usd_USD_total``).

A *request* here is a root run (``agent_runs_total``), as close as the metrics come to the
engine's trace roots. Rules over what the metrics do not carry (per-user and per-thread budgets
and anomalies, pipeline drops, failing exporters, store KPIs, and the latency SLO's burn rate,
whose 1,500 ms threshold is not a bucket boundary) are left out, and named in the file's header.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .rules import AlertRule, latency_quantile
from .slo import DEFAULT_SLOS, SLO

REQUESTS = "agent_runs_total"
LATENCY_BUCKETS = "agent_run_latency_milliseconds_bucket"
TOOLS = "tool_calls_total"
RETRIES = "retries_total"
COST = "cost_usd_USD_total"
TOKENS = "tokens_total"


def duration(seconds: float) -> str:
    """A Prometheus duration: ``5m``, ``1h``, ``1d``, ``90s``, ``1500ms``."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _sum(kind: str, metric: str, window: float, selector: str = "") -> str:
    return f"sum({kind}({metric}{selector}[{duration(window)}]))"


def _status_ratio(metric: str, status: str, window: float) -> str:
    bad = _sum("rate", metric, window, f'{{llm_audit_status="{status}"}}')
    return f"({bad} / {_sum('rate', metric, window)})"


_RATIOS = {  # series pairs of the SLOs → PromQL ratio over a window
    ("errors", "requests"): lambda w: _status_ratio(REQUESTS, "error", w),
    ("timeouts", "requests"): lambda w: _status_ratio(REQUESTS, "timeout", w),
    ("tool_errors", "tool_calls"): lambda w: _status_ratio(TOOLS, "error", w),
    ("retries", "requests"): lambda w: f"({_sum('increase', RETRIES, w)} / "
                                       f"{_sum('increase', REQUESTS, w)})",
}
_BASES = {"error_rate": ("errors", "requests"), "timeout_rate": ("timeouts", "requests"),
          "tool_failure_rate": ("tool_errors", "tool_calls"),
          "retries_per_request": ("retries", "requests")}


def expression(rule: AlertRule, slos: Iterable[SLO] = DEFAULT_SLOS) -> str | None:
    """The rule's condition in PromQL; None when the metrics cannot express it."""
    window, cmp, threshold = rule.window_s, rule.comparison, f"{rule.threshold:g}"
    quantile = latency_quantile(rule.metric)
    if quantile is not None:
        return (f"histogram_quantile({quantile:g}, sum by (le) (rate({LATENCY_BUCKETS}"
                f"[{duration(window)}]))) {cmp} {threshold}" + _volume(rule, REQUESTS))
    if rule.metric in _BASES:
        bad, total = _BASES[rule.metric]
        volume = _volume(rule, TOOLS if total == "tool_calls" else REQUESTS)
        return f"{_RATIOS[bad, total](window)} {cmp} {threshold}{volume}"
    if rule.metric.startswith("burn_rate:"):
        return _burn(rule, {slo.name: slo for slo in slos})
    totals = {"requests": (REQUESTS, 1.0), "cost_usd": (COST, 1.0), "tokens": (TOKENS, 1.0),
              "cost_usd_per_hour": (COST, 3_600.0 / window)}
    if rule.metric in totals:
        metric, factor = totals[rule.metric]
        scaled = "" if factor == 1.0 else f" * {factor:g}"
        return f"{_sum('increase', metric, window)}{scaled} {cmp} {threshold}"
    if rule.metric == "cost_spike_ratio":
        current = _sum("increase", COST, window)
        baseline = (f"sum(increase({COST}[{duration(rule.baseline_s)}] offset "
                    f"{duration(window)}))")
        return (f"({current} / ({baseline} * {window / rule.baseline_s:g})) {cmp} {threshold}"
                f" and {current} >= {rule.min_count:g}")
    return None


def _volume(rule: AlertRule, metric: str) -> str:
    if rule.min_count <= 0:
        return ""
    return f" and {_sum('increase', metric, rule.window_s)} >= {rule.min_count:g}"


def _burn(rule: AlertRule, slos: dict[str, SLO]) -> str | None:
    slo = slos.get(rule.metric.partition(":")[2])
    ratio = None if slo is None else _RATIOS.get((slo.bad, slo.total))
    if slo is None or ratio is None:
        return None
    windows = [rule.window_s] + ([rule.short_window_s] if rule.short_window_s else [])
    return " and ".join(f"{ratio(w)} / {slo.target:g} {rule.comparison} {rule.threshold:g}"
                        for w in windows)


def rules_file(rules: Iterable[AlertRule], slos: Iterable[SLO] = DEFAULT_SLOS,
               group: str = "llm-audit") -> str:
    """A Prometheus rules file (YAML) with one alerting rule per expressible rule."""
    slos = list(slos)
    lines: list[str] = []
    skipped: list[str] = []
    for rule in rules:
        expr = expression(rule, slos)
        if expr is None:
            skipped.append(rule.name)
            continue
        lines += [f"      - alert: {json.dumps(rule.name)}",
                  f"        expr: {json.dumps(expr)}"]
        if rule.for_s:
            lines.append(f"        for: {duration(rule.for_s)}")
        lines.append("        labels:")
        for key, value in {"severity": rule.severity, **rule.labels}.items():
            lines.append(f"          {json.dumps(key)}: {json.dumps(value)}")
        lines += ["        annotations:",
                  f"          summary: {json.dumps(rule.description or rule.name)}",
                  f"          metric: {json.dumps(rule.metric)}"]
    header = ["# Generated by `llm-audit alerts export-prometheus` from the llm-audit-langchain",
              "# alert rules, over the metrics AuditMetrics exposes (prometheus_port=).",
              "# Not expressible in these metrics, evaluated only by the in-process AlertEngine:",
              *(f"#   {name}" for name in skipped)]
    return "\n".join([*header, "groups:", f"  - name: {json.dumps(group)}", "    rules:",
                      *lines]) + "\n"
