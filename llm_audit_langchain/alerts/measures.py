"""Compute a rule's metric from what the engine observed: one value per label set.

Global metrics have one value (no labels); per-exporter, per-user and per-thread metrics have one
per exporter, user or thread. A metric with too little data to mean anything (fewer requests
than the rule's ``min_count``, no baseline yet) has no value, and a rule without a value does not
hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .anomaly import anomaly_scores
from .keyed import KeyedUsage
from .rules import AlertRule, latency_quantile
from .signals import TrafficWindows
from .slo import SLO, burn_rate
from .windows import Buckets

Labels = tuple[tuple[str, str], ...]
Measurement = tuple[float, list[str]]  # value, example trace ids
_HOUR = 3_600.0
_MONTH = 30 * 86_400.0

STORE_KPIS = {
    "store_write_latency_p95_ms": ("write_latency_p95_ms", "audit_write_latency_p95"),
    "store_size_bytes": ("collection_size_bytes", "size_bytes", "audit_collection_size_bytes"),
    "store_growth_bytes_per_month": ("growth_bytes_per_month", "storage_growth_bytes_per_month"),
}
"""Metric → the keys of an exporter's ``stats()`` it reads (first found wins)."""


@dataclass
class Observed:
    """Everything the rules are computed from (owned by the engine, read under its lock)."""

    traffic: TrafficWindows
    users: KeyedUsage
    threads: KeyedUsage
    drops: Buckets
    slos: dict[str, SLO]
    exporter_failing_s: dict[str, float] = field(default_factory=dict)
    exporter_stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def measure(rule: AlertRule, seen: Observed, now: float) -> dict[Labels, Measurement]:
    """The rule's metric now, by label set (empty when there is no value)."""
    metric = rule.metric
    quantile = latency_quantile(metric)
    if quantile is not None:
        return _one(_latency(seen.traffic, now, rule, quantile), seen.traffic, "slow")
    if metric.startswith("burn_rate:"):
        return _burn(rule, seen, now)
    compute = _GLOBAL.get(metric)
    if compute is not None:
        value, examples = compute(seen.traffic, now, rule)
        return _one(value, seen.traffic, examples)
    if metric in STORE_KPIS:
        return _store(metric, seen)
    if metric == "exporter_failing_s":
        return {(("exporter", name),): (seconds, [])
                for name, seconds in seen.exporter_failing_s.items()}
    if metric == "pipeline_dropped":
        return {(): (seen.drops.total(now, rule.window_s), [])}
    return _keyed(metric, seen, now, rule)


def _one(value: float | None, traffic: TrafficWindows, examples: str
         ) -> dict[Labels, Measurement]:
    return {} if value is None else {(): (value, traffic.example_ids(examples))}


def _latency(traffic: TrafficWindows, now: float, rule: AlertRule, q: float) -> float | None:
    if traffic.total("requests", now, rule.window_s) < max(rule.min_count, 1):
        return None
    return traffic.latency.quantile(now, rule.window_s, q)


def _ratio(bad: str, total: str) -> Callable[[TrafficWindows, float, AlertRule],
                                              tuple[float | None, str]]:
    def compute(traffic: TrafficWindows, now: float, rule: AlertRule
                ) -> tuple[float | None, str]:
        return traffic.ratio(bad, total, now, rule.window_s, rule.min_count), bad
    return compute


def _sum(series: str, per_hour: bool = False) -> Callable[
        [TrafficWindows, float, AlertRule], tuple[float | None, str]]:
    def compute(traffic: TrafficWindows, now: float, rule: AlertRule
                ) -> tuple[float | None, str]:
        value = traffic.total(series, now, rule.window_s)
        return (value * _HOUR / rule.window_s if per_hour else value), series
    return compute


def _cost_spike(traffic: TrafficWindows, now: float, rule: AlertRule
                ) -> tuple[float | None, str]:
    """Cost in the window / mean cost per window-length over the baseline just before it."""
    current = traffic.total("cost_usd", now, rule.window_s)
    if current < rule.min_count:
        return None, "cost_usd"
    history = traffic.series["cost_usd"].covered(now) - rule.window_s
    baseline_span = min(rule.baseline_s, history)
    if baseline_span < rule.window_s:  # less than one window of history: nothing to compare
        return None, "cost_usd"
    baseline = traffic.total("cost_usd", now, baseline_span, end_ago=rule.window_s)
    mean = baseline * rule.window_s / baseline_span
    if mean <= 0:
        return None, "cost_usd"
    return current / mean, "cost_usd"


_GLOBAL: dict[str, Callable[[TrafficWindows, float, AlertRule], tuple[float | None, str]]] = {
    "error_rate": _ratio("errors", "requests"),
    "timeout_rate": _ratio("timeouts", "requests"),
    "slow_request_rate": _ratio("slow", "requests"),
    "tool_failure_rate": _ratio("tool_errors", "tool_calls"),
    "retries_per_request": _ratio("retries", "requests"),
    "requests": _sum("requests"),
    "cost_usd": _sum("cost_usd"),
    "cost_usd_per_hour": _sum("cost_usd", per_hour=True),
    "tokens": _sum("tokens"),
    "cost_spike_ratio": _cost_spike,
}


def _burn(rule: AlertRule, seen: Observed, now: float) -> dict[Labels, Measurement]:
    slo = seen.slos.get(rule.metric.partition(":")[2])
    if slo is None:
        return {}
    long_rate = burn_rate(seen.traffic, slo, now, rule.window_s, rule.min_count)
    if long_rate is None:
        return {}
    if rule.short_window_s is not None:
        short_rate = burn_rate(seen.traffic, slo, now, rule.short_window_s)
        if short_rate is None or not rule.holds(short_rate):
            # both windows must hold; report the one that does not, so the alert resolves
            long_rate = min(long_rate, short_rate or 0.0)
    return {(): (long_rate, seen.traffic.example_ids(slo.bad))}


def _store(metric: str, seen: Observed) -> dict[Labels, Measurement]:
    found: dict[Labels, Measurement] = {}
    for name, stats in seen.exporter_stats.items():
        for key in STORE_KPIS[metric]:
            value = stats.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[(("exporter", name),)] = (float(value), [])
                break
    return found


def _keyed(metric: str, seen: Observed, now: float, rule: AlertRule
           ) -> dict[Labels, Measurement]:
    who, _, what = metric.partition("_")
    usage = seen.users if who == "user" else seen.threads
    label = "user_id" if who == "user" else "thread_id"
    # Only the keys on the bad side are reported: with 10,000 users, building a value for
    # every one on every evaluation was most of its cost (a resolution then has no value).
    holds = rule.holds
    if what.endswith("_day"):
        cost = what.startswith("cost")
        found: dict[Labels, Measurement] = {}
        for key, state in usage.today(now):
            value = state.cost_today if cost else float(state.tokens_today)
            if holds(value):
                found[((label, key),)] = (value, [state.last_trace])
        return found
    kind = "requests" if what.startswith("requests") else "cost"
    return {((label, key),): (score, [trace])
            for key, score, trace in anomaly_scores(usage, now, kind, min_value=rule.min_count)
            if holds(score)}
