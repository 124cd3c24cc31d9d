"""The built-in rules and their defaults (``docs/alerts.md`` has the table).

Thresholds come from the project's requirements where they give one: error rate over 5 %, p95
latency over 1,500 ms, a token-cost spike, tool failures over 3 %, more than 2 retries per
request; the audit store's KPIs with their warning and critical levels (write latency p95 20/50
ms, collection size 500 MB/1 GB, growth 100/200 MB a month, 300/500 requests a day). Where they
give none (the USD-per-hour ceiling, budgets per user and thread, how long an exporter may fail)
the defaults below are a starting point: override them by name in a rule file.
"""

from __future__ import annotations

from .rules import AlertRule
from .slo import DEFAULT_SLOS, burn_rate_rules

_MB = 1024 * 1024
_HOUR = 3_600.0
_DAY = 86_400.0


def _levels(name: str, metric: str, warning: float, critical: float, **kwargs: object
            ) -> list[AlertRule]:
    """A warning and a critical rule on one metric."""
    return [AlertRule(name=f"{name}_{severity}", metric=metric, threshold=threshold,
                      severity=severity, **kwargs)  # type: ignore[arg-type]
            for severity, threshold in (("warning", warning), ("critical", critical))]


def builtin_rules(*, slos: bool = True) -> list[AlertRule]:
    """Every built-in rule (``slos=False`` leaves out the SLO burn-rate alerts)."""
    rules = [
        AlertRule("error_rate", "error_rate", 0.05, window_s=300, for_s=60, min_count=10,
                  severity="critical",
                  description="more than 5 % of requests failed over 5 minutes"),
        AlertRule("p95_latency", "latency_p95_ms", 1500.0, window_s=300, for_s=60, min_count=10,
                  description="p95 request latency over 1,500 ms over 5 minutes"),
        AlertRule("token_cost_spike", "cost_spike_ratio", 3.0, window_s=_HOUR, baseline_s=_DAY,
                  min_count=0.01,
                  description="cost of the last hour over 3x the hourly mean of the 24 hours "
                              "before (and at least $0.01)"),
        *_levels("cost_per_hour", "cost_usd_per_hour", 10.0, 50.0, window_s=_HOUR,
                 description="LLM spend over the last hour above the USD/hour ceiling"),
        AlertRule("tool_failure_rate", "tool_failure_rate", 0.03, window_s=300, for_s=60,
                  min_count=10, description="more than 3 % of tool calls failed over 5 minutes"),
        AlertRule("retries_per_request", "retries_per_request", 2.0, window_s=300, min_count=5,
                  description="more than 2 retries per request over 5 minutes"),
        AlertRule("pipeline_drops", "pipeline_dropped", 0.0, window_s=300,
                  description="the audit pipeline dropped events (queue or exporter backlog "
                              "full, build or sanitizer errors): the record is incomplete"),
        *_levels("exporter_failing", "exporter_failing_s", 60.0, 300.0, window_s=60,
                 description="an exporter has failed every export for this long"),
        AlertRule("user_daily_cost_budget", "user_cost_usd_day", 10.0,
                  description="a user spent more than $10 today (UTC)"),
        AlertRule("user_daily_token_budget", "user_tokens_day", 1_000_000,
                  description="a user used more than 1,000,000 tokens today (UTC)"),
        AlertRule("thread_daily_cost_budget", "thread_cost_usd_day", 5.0,
                  description="a conversation thread spent more than $5 today (UTC)"),
        AlertRule("thread_daily_token_budget", "thread_tokens_day", 500_000,
                  description="a conversation thread used more than 500,000 tokens today"),
        AlertRule("user_request_anomaly", "user_requests_anomaly", 5.0, window_s=_HOUR,
                  min_count=20, description="a user's requests this hour are over 5 robust "
                                            "deviations above their own usual (and at least 20)"),
        AlertRule("user_cost_anomaly", "user_cost_anomaly", 5.0, window_s=_HOUR, min_count=0.10,
                  description="a user's spend this hour is over 5 robust deviations above "
                              "their own usual (and at least $0.10)"),
        AlertRule("thread_request_anomaly", "thread_requests_anomaly", 5.0, window_s=_HOUR,
                  min_count=20, description="as user_request_anomaly, per thread"),
        AlertRule("thread_cost_anomaly", "thread_cost_anomaly", 5.0, window_s=_HOUR,
                  min_count=0.10, description="as user_cost_anomaly, per thread"),
        *_levels("store_write_latency", "store_write_latency_p95_ms", 20.0, 50.0,
                 description="the audit store's write latency p95 (ms)"),
        *_levels("store_size", "store_size_bytes", 500 * _MB, 1024 * _MB,
                 description="the audit collection's size: review retention"),
        *_levels("store_growth", "store_growth_bytes_per_month", 100 * _MB, 200 * _MB,
                 description="the audit collection's growth per month"),
        *_levels("daily_requests", "requests", 300, 500, window_s=_DAY,
                 description="requests in the last 24 hours: past 500 a day, plan a separate "
                             "audit store"),
    ]
    if slos:
        rules.extend(burn_rate_rules(DEFAULT_SLOS))
    return rules
