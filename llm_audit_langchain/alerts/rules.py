"""``AlertRule``: what to watch, over which window, and when it is bad enough to tell someone.

The vocabulary is Prometheus's alerting rules: a rule compares a metric over a window with a
threshold; when the comparison holds the alert is *pending*, after ``for_s`` seconds of holding it
is *firing* (notified once), and when it stops holding it is *resolved* (notified once). A rule
with ``short_window_s`` holds only when both windows are over the threshold: the multi-window
burn-rate alerts of the Google SRE workbook, which fire fast on a real incident and stop soon
after it ends.

Metric names are listed in :data:`METRICS` (``docs/alerts.md`` explains each).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

SEVERITIES = ("info", "warning", "critical")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}

METRICS: dict[str, str] = {
    "requests": "requests (root runs) that ended in the window",
    "error_rate": "requests whose root run ended with status error / requests",
    "timeout_rate": "requests with a timeout anywhere in the trace / requests",
    "slow_request_rate": "requests slower than the latency SLO's threshold / requests",
    "latency_p50_ms": "median request latency (ms); any latency_pNN_ms works",
    "latency_p95_ms": "95th percentile of request latency (ms)",
    "tool_failure_rate": "tool.error / (tool.result + tool.error)",
    "retries_per_request": "retries (agent.retry events, status retry) / requests",
    "cost_usd": "LLM cost in the window (USD)",
    "cost_usd_per_hour": "LLM cost in the window, scaled to one hour (USD/h)",
    "cost_spike_ratio": "cost in the window / mean cost of a window of that length over "
                        "the baseline before it",
    "tokens": "LLM tokens (input + output) in the window",
    "pipeline_dropped": "events the pipeline dropped in the window (queue full, exporter "
                        "backlog full, build or sanitizer errors; sampling is not a drop)",
    "exporter_failing_s": "seconds an exporter has been failing without a success (per "
                          "exporter)",
    "store_write_latency_p95_ms": "write latency p95 a store exporter reports in stats()",
    "store_size_bytes": "size of the audit collection/table a store exporter reports",
    "store_growth_bytes_per_month": "growth rate a store exporter reports",
    "user_cost_usd_day": "LLM cost per user since midnight UTC",
    "user_tokens_day": "LLM tokens per user since midnight UTC",
    "thread_cost_usd_day": "LLM cost per LangGraph thread since midnight UTC",
    "thread_tokens_day": "LLM tokens per LangGraph thread since midnight UTC",
    "user_requests_anomaly": "robust deviations of a user's requests in the window from "
                             "their own baseline (median/MAD)",
    "user_cost_anomaly": "robust deviations of a user's cost in the window from their baseline",
    "thread_requests_anomaly": "as user_requests_anomaly, per thread",
    "thread_cost_anomaly": "as user_cost_anomaly, per thread",
    "burn_rate:<slo>": "how fast an SLO's error budget burns (1 = exactly on budget)",
}
_QUANTILE = re.compile(r"^latency_p(\d{1,2}(?:\.\d+)?)_ms$")
_BURN = "burn_rate:"


def known_metric(name: str) -> bool:
    """True for a name in :data:`METRICS`, any ``latency_pNN_ms`` or ``burn_rate:<slo>``."""
    return (name in METRICS and name != "burn_rate:<slo>") or bool(_QUANTILE.match(name)) or (
        name.startswith(_BURN) and len(name) > len(_BURN))


def latency_quantile(name: str) -> float | None:
    """0.95 for ``latency_p95_ms``; None for other metrics."""
    match = _QUANTILE.match(name)
    return float(match.group(1)) / 100 if match else None


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule.

    Args:
        name: unique; a rule of the same name replaces a built-in one.
        metric: what to compute (see :data:`METRICS`).
        threshold: the value the metric is compared with.
        comparison: ``>`` (default), ``>=``, ``<`` or ``<=``.
        window_s: the sliding window the metric is computed over.
        for_s: how long the comparison must hold before the alert fires (pending until then).
        severity: ``info``, ``warning`` or ``critical``.
        labels: added to the alert (routing keys for the receiver).
        short_window_s: also require the metric over this shorter window to hold (burn rates).
        baseline_s: for ``cost_spike_ratio``: how far back the baseline reaches.
        min_count: the least volume (requests, tool calls, or the anomaly's minimum) under which
            the rule does not hold; keeps one failure in one request from paging anyone.
        cooldown_s: after a resolution, a new firing of the same rule and labels within this time
            is not notified again (it is still tracked).
        description: what it means, for the person who receives it.
    """

    name: str
    metric: str
    threshold: float
    comparison: str = ">"
    window_s: float = 300.0
    for_s: float = 0.0
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    short_window_s: float | None = None
    baseline_s: float = 86_400.0
    min_count: float = 1.0
    cooldown_s: float = 600.0
    description: str = ""

    def __post_init__(self) -> None:
        def bad(field_name: str, why: str) -> ConfigError:
            return ConfigError(f"alert rule {self.name!r}: field {field_name!r} {why}")

        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"alert rule {self.name!r}: field 'name' must be a non-empty text")
        if not isinstance(self.metric, str) or not known_metric(self.metric):
            raise bad("metric", f"is {self.metric!r}, not a known metric (one of "
                                f"{', '.join(sorted(METRICS))})")
        if self.comparison not in COMPARISONS:
            raise bad("comparison", f"is {self.comparison!r}; use one of >, >=, <, <=")
        if self.severity not in SEVERITIES:
            raise bad("severity", f"is {self.severity!r}; use info, warning or critical")
        for name in ("threshold", "window_s", "for_s", "baseline_s", "min_count", "cooldown_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                    value):
                raise bad(name, f"must be a finite number, not {value!r}")
        if self.window_s <= 0:
            raise bad("window_s", "must be greater than 0")
        for name in ("for_s", "min_count", "cooldown_s"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        short = self.short_window_s
        if short is not None and (isinstance(short, bool) or not isinstance(short, int | float)
                                  or not 0 < short <= self.window_s):
            raise bad("short_window_s", "must be greater than 0 and at most window_s")
        if not isinstance(self.labels, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()):
            raise bad("labels", "must map text to text")

    def holds(self, value: float) -> bool:
        """True when ``value`` is on the bad side of the threshold."""
        return COMPARISONS[self.comparison](value, self.threshold)

    def as_dict(self) -> dict[str, Any]:
        """The rule as plain data (alert events, notifications, the Prometheus export)."""
        return {"name": self.name, "metric": self.metric, "threshold": self.threshold,
                "comparison": self.comparison, "window_s": self.window_s, "for_s": self.for_s,
                "severity": self.severity, "labels": dict(self.labels),
                "short_window_s": self.short_window_s, "description": self.description}
