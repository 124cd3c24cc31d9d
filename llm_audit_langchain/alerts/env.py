"""The alert engine from the environment alone, for a handler built from the environment.

| variable | default | meaning |
|---|---|---|
| ``AUDIT_ALERTS`` | ``false`` | ``true`` attaches an engine with the built-in rules |
| ``AUDIT_ALERT_RULES`` | | a TOML file of rules that add to or replace the built-in ones |
| ``AUDIT_ALERT_INTERVAL_S`` | ``60`` | how often the rules are evaluated |
| ``AUDIT_ALERT_WEBHOOK_URL`` | | POST each announcement as JSON here |
| ``AUDIT_ALERT_WEBHOOK_SECRET`` | | sign the webhook's body (HMAC-SHA256) |
| ``AUDIT_ALERT_SNS_TOPIC_ARN`` | | publish each announcement to this SNS topic |

Announcements are always logged (logger ``llm_audit_langchain.alerts``). A mistake in any of
these fails when the handler is created, with a :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from urllib.parse import urlparse

from ..errors import ConfigError
from .engine import AlertEngine
from .notifiers import LoggingNotifier, Notifier, SnsNotifier, WebhookNotifier
from .rulefile import load_rules

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
_DEPENDENT = ("AUDIT_ALERT_RULES", "AUDIT_ALERT_INTERVAL_S", "AUDIT_ALERT_WEBHOOK_URL",
              "AUDIT_ALERT_WEBHOOK_SECRET", "AUDIT_ALERT_SNS_TOPIC_ARN")


def alerts_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``AUDIT_ALERTS`` as a boolean; a set ``AUDIT_ALERT_*`` without it is a mistake."""
    env = os.environ if environ is None else environ
    raw = env.get("AUDIT_ALERTS")
    if raw is None:
        for name in _DEPENDENT:
            if env.get(name, "").strip():
                raise ConfigError(f"{name} is set but AUDIT_ALERTS is not: set AUDIT_ALERTS=true "
                                  f"to turn alerts on")
        return False
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ConfigError(f"AUDIT_ALERTS={raw!r} must be true or false")
    return value in _TRUE


def alerts_from_env(environ: Mapping[str, str] | None = None) -> AlertEngine | None:
    """An engine configured by the variables above; None unless ``AUDIT_ALERTS`` is true."""
    env = os.environ if environ is None else environ
    if not alerts_enabled(env):
        return None
    rules, disabled = [], []
    path = env.get("AUDIT_ALERT_RULES", "").strip()
    if path:
        loaded = load_rules(path)
        rules, disabled = loaded.rules, loaded.disabled
    return AlertEngine(rules, disabled=disabled, notifiers=_notifiers(env),
                       interval_s=_interval(env))


def _interval(env: Mapping[str, str]) -> float:
    raw = env.get("AUDIT_ALERT_INTERVAL_S", "").strip()
    if not raw:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"AUDIT_ALERT_INTERVAL_S={raw!r} must be a number of seconds above 0")
    return value


def _notifiers(env: Mapping[str, str]) -> list[Notifier]:
    notifiers: list[Notifier] = [LoggingNotifier()]
    url = env.get("AUDIT_ALERT_WEBHOOK_URL", "").strip()
    secret = env.get("AUDIT_ALERT_WEBHOOK_SECRET", "").strip() or None
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"AUDIT_ALERT_WEBHOOK_URL={url!r} must be an http(s) URL")
        notifiers.append(WebhookNotifier(url, secret=secret))
    elif secret:
        raise ConfigError("AUDIT_ALERT_WEBHOOK_SECRET is set without AUDIT_ALERT_WEBHOOK_URL")
    arn = env.get("AUDIT_ALERT_SNS_TOPIC_ARN", "").strip()
    if arn:
        if not arn.startswith("arn:") or arn.count(":") < 5:
            raise ConfigError(f"AUDIT_ALERT_SNS_TOPIC_ARN={arn!r} is not an SNS topic ARN "
                              f"(arn:aws:sns:REGION:ACCOUNT:NAME)")
        notifiers.append(SnsNotifier(arn))
    return notifiers
