"""Alerts, SLOs and anomaly detection over the audit stream: act on what is recorded.

    from llm_audit_langchain.alerts import AlertEngine, AlertRule, WebhookNotifier

    engine = AlertEngine([AlertRule("errors", "error_rate", 0.10, window_s=600)],
                         notifiers=[WebhookNotifier("https://hooks.example/audit", secret=key)])
    handler = AuditCallbackHandler(alerts=engine)     # or AUDIT_ALERTS=true

Worker-thread code like the metrics: an observer of every event (sampled out or not) keeps
sliding windows; a timer evaluates the rules; each firing and resolution is an ``alert.fired`` /
``alert.resolved`` event for every sink and a notification on the notifiers' own thread.
"""

from __future__ import annotations

from .builtin import builtin_rules
from .engine import AlertEngine, alert_event
from .env import alerts_from_env
from .lifecycle import Alert
from .notifiers import (
    CallbackNotifier,
    LoggingNotifier,
    Notifier,
    SnsNotifier,
    WebhookNotifier,
)
from .rulefile import load_rules
from .rules import METRICS, AlertRule
from .slo import DEFAULT_SLOS, SLO, burn_rate_rules, slo_report

__all__ = [
    "DEFAULT_SLOS",
    "METRICS",
    "SLO",
    "Alert",
    "AlertEngine",
    "AlertRule",
    "CallbackNotifier",
    "LoggingNotifier",
    "Notifier",
    "SnsNotifier",
    "WebhookNotifier",
    "alert_event",
    "alerts_from_env",
    "builtin_rules",
    "burn_rate_rules",
    "load_rules",
    "slo_report",
]
