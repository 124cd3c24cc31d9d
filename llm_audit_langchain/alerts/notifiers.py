"""Where announcements go: logging, a Python callback, a webhook, Amazon SNS.

A notifier is anything with ``notify(alert) -> None`` that raises when it could not deliver. The
engine never calls one on the pipeline's worker: :class:`Dispatcher` hands alerts to one small
daemon thread through a bounded queue, so a notifier that hangs or is down delays only other
notifications, never the audit record; a full queue drops the newest and counts it, and each
notifier's failures are counted (``engine.stats()["notifiers"]``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .lifecycle import FIRED, Alert

logger = logging.getLogger("llm_audit_langchain.alerts")

SIGNATURE_HEADER = "X-LLM-Audit-Signature-256"
"""``sha256=<hex HMAC-SHA256 of the body with the shared secret>`` (GitHub's webhook form)."""


class Notifier(Protocol):
    """Delivers one announcement; raises when it could not."""

    def notify(self, alert: Alert) -> None:
        """Deliver ``alert`` (called on the dispatcher's thread)."""


class LoggingNotifier:
    """Logs each announcement (``WARNING`` when fired, ``INFO`` when resolved)."""

    name = "logging"

    def __init__(self, logger_name: str = "llm_audit_langchain.alerts") -> None:
        self._logger = logging.getLogger(logger_name)

    def notify(self, alert: Alert) -> None:
        """Log one line."""
        level = logging.WARNING if alert.state == FIRED else logging.INFO
        self._logger.log(level, "llm-audit alert %s", alert.summary())


class CallbackNotifier:
    """Calls ``fn(alert)`` (for tests, notebooks, chat bots)."""

    name = "callback"

    def __init__(self, fn: Callable[[Alert], Any]) -> None:
        self._fn = fn

    def notify(self, alert: Alert) -> None:
        """Call the function."""
        self._fn(alert)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` + hex HMAC-SHA256."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    """POSTs the alert as JSON to ``url``.

    Args:
        url: the receiver (``AUDIT_ALERT_WEBHOOK_URL``).
        secret: when set (``AUDIT_ALERT_WEBHOOK_SECRET``), each request carries
            ``X-LLM-Audit-Signature-256: sha256=<HMAC-SHA256 of the body>`` so the receiver can
            tell it came from us (compare with ``hmac.compare_digest``).
        timeout_s: per attempt.
        attempts: tries in all; connection errors, 429 and 5xx are retried, other 4xx are not.
        backoff_s: the first wait; it doubles each time, with full jitter in [0.5, 1.5).
    """

    name = "webhook"

    def __init__(self, url: str, *, secret: str | None = None, timeout_s: float = 5.0,
                 attempts: int = 3, backoff_s: float = 0.5) -> None:
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.retries = 0

    def notify(self, alert: Alert) -> None:
        """POST it; raise after the last failed attempt."""
        body = json.dumps(alert.as_dict(), separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "llm-audit-langchain"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        for attempt in range(1, self.attempts + 1):
            try:
                request = urllib.request.Request(self.url, body, headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                if (exc.code != 429 and exc.code < 500) or attempt == self.attempts:
                    raise
            except (urllib.error.URLError, OSError):
                if attempt == self.attempts:
                    raise
            self.retries += 1
            time.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))


class SnsNotifier:
    """Publishes the alert to an Amazon SNS topic (``AUDIT_ALERT_SNS_TOPIC_ARN``; needs boto3).

    The message is the alert's JSON; the subject its one-line summary; ``severity`` and ``state``
    are message attributes (for subscription filter policies). The client is created once, on
    first use, with the usual AWS configuration (``AWS_REGION``, ``AWS_ENDPOINT_URL``...).
    """

    name = "sns"

    def __init__(self, topic_arn: str, *, client: Any = None, region_name: str | None = None,
                 endpoint_url: str | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client
        self._region = region_name or _region_of(topic_arn)
        self._endpoint = endpoint_url

    def notify(self, alert: Alert) -> None:
        """Publish one message."""
        if self._client is None:
            import boto3

            self._client = boto3.client("sns", region_name=self._region,
                                        endpoint_url=self._endpoint)
        self._client.publish(
            TopicArn=self.topic_arn, Message=json.dumps(alert.as_dict(), default=str),
            # SNS subjects: at most 100 printable ASCII characters, no line breaks
            Subject=alert.summary().encode("ascii", "replace").decode()[:100],
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": alert.severity},
                "state": {"DataType": "String", "StringValue": alert.state}})


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 and parts[3] else os.environ.get("AWS_REGION")


class Dispatcher:
    """Delivers announcements to the notifiers on its own daemon thread (bounded queue)."""

    def __init__(self, notifiers: Sequence[Notifier], queue_size: int = 1_000) -> None:
        self.notifiers = list(notifiers)
        self._queue: deque[Alert] = deque()
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._busy = 0
        self.dropped = 0
        self.delivered: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self._warned: set[str] = set()

    def submit(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` for every notifier; never blocks (a full queue drops, counted)."""
        if not self.notifiers or not alerts:
            return
        with self._lock:
            for alert in alerts:
                if len(self._queue) >= self._queue_size:
                    self.dropped += 1
                    continue
                self._queue.append(alert)
            self._ensure_thread()
            self._wake.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is delivered (or failed); True if done in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(min(remaining, 0.05))
        return True

    def stats(self) -> dict[str, Any]:
        """Delivered and failed per notifier, dropped, queued."""
        with self._lock:
            return {"delivered": dict(self.delivered), "failed": dict(self.failed),
                    "dropped": self.dropped, "queued": len(self._queue)}

    def _ensure_thread(self) -> None:  # under the lock
        if self._pid != os.getpid():  # forked: the parent's thread does not exist here
            self._pid, self._thread = os.getpid(), None
            self._queue.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="llm-audit-alerts",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait(30.0)
                    if not self._queue:
                        self._thread = None  # idle: let the thread end, restarted on demand
                        return
                alert = self._queue.popleft()
                self._busy += 1
            try:
                for notifier in self.notifiers:
                    self._deliver(notifier, alert)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._wake.notify_all()

    def _deliver(self, notifier: Notifier, alert: Alert) -> None:
        name = getattr(notifier, "name", None) or type(notifier).__name__
        try:
            notifier.notify(alert)
        except Exception as exc:  # a notifier must never take the thread down
            with self._lock:
                self.failed[name] = self.failed.get(name, 0) + 1
            if name not in self._warned:
                self._warned.add(name)
                logger.warning("llm-audit alert notifier %s failed: %r (counted; further "
                               "failures are not logged)", name, exc)
            return
        with self._lock:
            self.delivered[name] = self.delivered.get(name, 0) + 1
