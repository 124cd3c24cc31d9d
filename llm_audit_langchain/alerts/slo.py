"""Service level objectives, their error budgets, and multi-window multi-burn-rate alerts.

Every SLO here is a ratio: the share of *bad* events among *total* events must stay under
``target``. The latency objective "p95 < 1,500 ms" is the same thing said as a ratio: at most 5 %
of requests may be slower than 1,500 ms. That makes each one an error budget: over a period,
``target x total`` bad events are allowed; the *budget left* is ``1 - (bad share / target)``
(negative once overspent), and the *burn rate* over a window is ``bad share / target`` (1 spends
the budget exactly over the period; 14.4 spends a 30-day budget's 2 % in one hour).

Alerts follow the Google SRE workbook's multi-window, multi-burn-rate recipe: page when the burn
rate is over 14.4 over both the last hour and the last 5 minutes, open a ticket when it is over 6
over both the last 6 hours and the last 30 minutes. The long window proves it matters, the
short one that it is still happening (so the alert resolves minutes after the incident ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .rules import AlertRule
from .signals import SERIES, TrafficWindows


@dataclass(frozen=True)
class SLO:
    """A ratio objective: ``bad / total`` below ``target`` (e.g. 0.02 for 2 %)."""

    name: str
    bad: str
    total: str
    target: float
    description: str = ""

    def __post_init__(self) -> None:
        for field_name in ("bad", "total"):
            if getattr(self, field_name) not in SERIES:
                raise ConfigError(f"SLO {self.name!r}: field {field_name!r} must be one of "
                                  f"{', '.join(SERIES)}")
        if not 0 < self.target < 1:
            raise ConfigError(f"SLO {self.name!r}: field 'target' must be between 0 and 1")


DEFAULT_SLOS = (
    SLO("p95_latency", "slow", "requests", 0.05,
        "p95 request latency < 1,500 ms: at most 5 % of requests slower than the threshold"),
    SLO("error_rate", "errors", "requests", 0.02, "error rate < 2 % of requests"),
    SLO("timeout_rate", "timeouts", "requests", 0.01, "timeout rate < 1 % of requests"),
    SLO("tool_failure_rate", "tool_errors", "tool_calls", 0.03, "tool failures < 3 % of calls"),
    SLO("retry_ratio", "retries", "requests", 0.05, "retries < 5 % of requests"),
)
"""The initial SLOs: p95 latency, error, timeout, tool failure and retry ratios."""

BURN_ALERTS = ((3_600.0, 300.0, 14.4, "critical"), (21_600.0, 1_800.0, 6.0, "warning"))
"""(long window s, short window s, burn rate, severity): the SRE workbook's page and ticket."""
REPORT_WINDOWS = (300.0, 3_600.0, 21_600.0)
"""The windows ``slo_report`` gives burn rates over by default (5 min, 1 h, 6 h)."""
_MIN_EVENTS = 10.0


def burn_rate_rules(slos: Iterable[SLO] = DEFAULT_SLOS,
                    alerts: Sequence[tuple[float, float, float, str]] = BURN_ALERTS
                    ) -> list[AlertRule]:
    """One alert rule per SLO and burn-rate pair, named ``slo_<name>_burn_<rate>x``."""
    rules = []
    for slo in slos:
        for long_s, short_s, rate, severity in alerts:
            rules.append(AlertRule(
                name=f"slo_{slo.name}_burn_{rate:g}x", metric=f"burn_rate:{slo.name}",
                threshold=rate, window_s=long_s, short_window_s=short_s, severity=severity,
                min_count=_MIN_EVENTS, labels={"slo": slo.name},
                description=f"{slo.description}: the error budget burns at over {rate:g}x "
                            f"over {_span(long_s)} and {_span(short_s)}"))
    return rules


def burn_rate(windows: TrafficWindows, slo: SLO, now: float, window: float,
              min_count: float = 1.0) -> float | None:
    """``(bad / total) / target`` over the window; None below ``min_count`` events."""
    share = windows.ratio(slo.bad, slo.total, now, window, min_count)
    return None if share is None else share / slo.target


def slo_report(windows: TrafficWindows, now: float, period: float,
               slos: Iterable[SLO] = DEFAULT_SLOS,
               burn_windows: Sequence[float] = REPORT_WINDOWS) -> list[dict[str, Any]]:
    """Each SLO over ``period`` seconds up to ``now``: value, target, budget left, burn rates.

    ``ok`` is None when there was nothing to measure, False when the budget is overspent."""
    report = []
    for slo in slos:
        value = windows.ratio(slo.bad, slo.total, now, period)
        entry: dict[str, Any] = {
            "slo": slo.name, "description": slo.description, "target": slo.target,
            "value": value, "bad": windows.total(slo.bad, now, period),
            "total": windows.total(slo.total, now, period),
            "budget_left": None if value is None else 1.0 - value / slo.target,
            "burn_rate": {_span(w): burn_rate(windows, slo, now, w) for w in burn_windows},
            "ok": None if value is None else value <= slo.target,
        }
        if slo.bad == "slow":
            entry["p95_latency_ms"] = windows.latency.quantile(now, period, 0.95)
            entry["threshold_ms"] = windows.slow_threshold_ms
        report.append(entry)
    return report


def _span(seconds: float) -> str:
    """``300`` → ``5m``, ``3600`` → ``1h``, ``86400`` → ``1d``."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
