"""``AlertEngine``: an observer of the audit stream that evaluates alert rules and SLOs.

    engine = AlertEngine(notifiers=[WebhookNotifier(url, secret=key)])
    handler = AuditCallbackHandler(alerts=engine)      # observes, and evaluates every 60 s
    ...
    engine.check()          # evaluate now (tests pass ``now`` from their own clock)
    engine.slo_status()     # each SLO: value, target, budget left, burn rates

It runs where the metrics run: on the pipeline's worker thread, fed every event before sampling
(only the types it reads are built for sampled-out traces), never on the caller's thread. Each
event costs a few bucket additions; every ``interval_s`` the rules are computed over the sliding
windows, the Prometheus-style states advance, and each firing and resolution is emitted as an
``alert.fired`` / ``alert.resolved`` event through the pipeline (to every sink, the audit chain
included) and handed to the notifiers on their own thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..context import new_event_id, new_span_id, new_trace_id
from ..events import AuditEvent, AuditEventType
from .builtin import builtin_rules
from .keyed import KeyedUsage
from .lifecycle import FIRED, Alert, Lifecycle
from .measures import Observed, measure
from .notifiers import Dispatcher, Notifier
from .rules import AlertRule
from .signals import EVENT_TYPES, TrafficWindows, is_request, root_keys
from .slo import DEFAULT_SLOS, SLO, slo_report
from .windows import Buckets

if TYPE_CHECKING:
    from ..capture.handler import AuditCallbackHandler
    from ..exporters.base import Exporter

logger = logging.getLogger("llm_audit_langchain.alerts")

NOT_DROPS = frozenset({"sampled_out", "filtered"})
"""Drop reasons that are decisions, not losses: they never count as pipeline drops."""
_HORIZON = 90_000.0  # 25 h: a day's baseline plus the hour it is compared with


class AlertEngine:
    """Sliding windows over the audit stream, alert rules over them, SLOs, notifications.

    Args:
        rules: added to the built-in rules; one with a built-in's name replaces it.
        builtin: start from the built-in rules (:func:`builtin_rules`).
        disabled: names of rules to leave out.
        slos: the objectives (default: p95 latency, error, timeout, tool failure, retry ratio).
        notifiers: where announcements go (on their own thread).
        interval_s: how often the handler's worker evaluates the rules.
        clock: seconds since the epoch (inject one in tests).
        bucket_s: the windows' resolution.
        anomaly_window_s, anomaly_history: the per-user/thread anomaly window and how many past
            windows form each key's baseline.
        max_keys: users (and threads) remembered; the least recent is forgotten past it.
        slow_threshold_ms: what a slow request is (the latency SLO's threshold).
    """

    def __init__(
        self,
        rules: Iterable[AlertRule] = (),
        *,
        builtin: bool = True,
        disabled: Iterable[str] = (),
        slos: Sequence[SLO] = DEFAULT_SLOS,
        notifiers: Sequence[Notifier] = (),
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        bucket_s: float = 10.0,
        anomaly_window_s: float = 3_600.0,
        anomaly_history: int = 24,
        max_keys: int = 100_000,
        slow_threshold_ms: float = 1500.0,
    ) -> None:
        merged = {rule.name: rule for rule in (builtin_rules() if builtin else [])}
        merged.update({rule.name: rule for rule in rules})
        for name in disabled:
            merged.pop(name, None)
        self.rules: list[AlertRule] = list(merged.values())
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = Observed(
            traffic=TrafficWindows(bucket_s, _HORIZON, slow_threshold_ms),
            users=KeyedUsage(anomaly_window_s, anomaly_history, max_keys),
            threads=KeyedUsage(anomaly_window_s, anomaly_history, max_keys),
            drops=Buckets(bucket_s, _HORIZON), slos={slo.name: slo for slo in slos})
        self._lifecycle = Lifecycle()
        self.dispatcher = Dispatcher(notifiers)
        self._handler: weakref.ref[AuditCallbackHandler] | None = None
        self._exporters: Callable[[], Sequence[Exporter]] | None = None
        self._last_drops = 0.0  # bound at the handler's creation: every drop is news
        self._exporter_marks: dict[str, tuple[int, int, float | None]] = {}
        self._counts = {"observed": 0, "evaluations": 0, "fired": 0, "resolved": 0,
                        "evaluation_errors": 0}
        self._warned: set[str] = set()
        _live.add(self)

    def _after_fork(self) -> None:
        """In a forked child: a lock the parent's worker held would never be released."""
        self._lock = threading.Lock()

    # ---- wiring -------------------------------------------------------------------------------

    def bind(self, handler: AuditCallbackHandler,
             exporters: Callable[[], Sequence[Exporter]] | None = None) -> None:
        """Emit alert events through ``handler`` and read its ``stats()`` (held weakly);
        ``exporters`` gives the exporters whose own ``stats()`` may report store KPIs."""
        self._handler = weakref.ref(handler)
        self._exporters = exporters

    def observe(self, event: AuditEvent) -> None:
        """The pipeline observer (worker thread): add one event to the windows."""
        now = self._clock()
        seen = self._seen
        with self._lock:
            self._counts["observed"] += 1
            seen.traffic.record(event, now)
            if is_request(event):
                user, thread, cost, tokens = root_keys(event)
                if user is not None:
                    seen.users.add(user, now, cost, tokens, event.trace_id)
                if thread is not None:
                    seen.threads.add(thread, now, cost, tokens, event.trace_id)

    # The types ``observe`` reads besides errors and root-run ends (always built), so traces
    # that are sampled out still need not be built in full.
    observe.event_types = EVENT_TYPES  # type: ignore[attr-defined]

    def evaluate(self) -> None:
        """The timer's entry point: ``check()`` now, never raising (worker thread)."""
        try:
            self.check()
        except Exception as exc:
            self._warn_once("evaluation", exc)

    # ---- evaluating ---------------------------------------------------------------------------

    def check(self, now: float | None = None) -> list[Alert]:
        """Evaluate every rule at ``now`` (default: the clock); return what was announced.

        Announcements are emitted as events through the bound handler and queued for the
        notifiers."""
        now = self._clock() if now is None else now
        stats = self._handler_stats()
        exporter_stats = self._exporter_stats()
        alerts: list[Alert] = []
        with self._lock:
            self._counts["evaluations"] += 1
            self._read_pipeline(stats, now)
            self._seen.exporter_stats = exporter_stats
            for rule in self.rules:
                try:
                    measured = measure(rule, self._seen, now)
                except Exception as exc:
                    self._counts["evaluation_errors"] += 1
                    self._warn_once(f"rule {rule.name}", exc)
                    continue
                alerts.extend(self._lifecycle.step(rule, measured, now))
            for alert in alerts:
                self._counts["fired" if alert.state == FIRED else "resolved"] += 1
        if alerts:
            self._emit(alerts)
            self.dispatcher.submit(alerts)
        return alerts

    def slo_status(self, now: float | None = None, period_s: float = 86_400.0
                   ) -> list[dict[str, Any]]:
        """Each SLO over the last ``period_s`` (at most a day is kept in memory): value,
        target, budget left, burn rates over 5 min, 1 h and 6 h."""
        now = self._clock() if now is None else now
        with self._lock:
            return slo_report(self._seen.traffic, now, min(period_s, _HORIZON),
                              self._seen.slos.values())

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts now."""
        with self._lock:
            return self._lifecycle.active()

    def stats(self) -> dict[str, Any]:
        """Events observed, evaluations, fired, resolved, suppressed (cooldown), evaluation
        errors, and the notifiers' delivered / failed / dropped counts."""
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
            counts["suppressed"] = self._lifecycle.suppressed
            counts["active"] = len(self._lifecycle.active())
        counts["notifiers"] = self.dispatcher.stats()
        return counts

    def flush_notifications(self, timeout: float = 5.0) -> bool:
        """Wait until queued notifications are delivered (or failed)."""
        return self.dispatcher.flush(timeout)

    # ---- inputs besides events ----------------------------------------------------------------

    def _handler_stats(self) -> dict[str, Any]:
        handler = self._handler() if self._handler is not None else None
        if handler is None:
            return {}
        try:
            return handler.stats()
        except Exception as exc:
            self._warn_once("handler stats", exc)
            return {}

    def _exporter_stats(self) -> dict[str, dict[str, Any]]:
        """Exporters' own ``stats()`` (store KPIs), read outside the lock: they may do I/O."""
        found: dict[str, dict[str, Any]] = {}
        if self._exporters is None:
            return found
        for exporter in self._exporters():
            read = getattr(exporter, "stats", None)
            if not callable(read):
                continue
            name = getattr(exporter, "name", None) or type(exporter).__name__
            try:
                value = read()
            except Exception as exc:
                self._warn_once(f"exporter {name} stats", exc)
                continue
            if isinstance(value, dict):
                found[str(name)] = value
        return found

    def _read_pipeline(self, stats: dict[str, Any], now: float) -> None:
        """Drops since the last evaluation, and how long each exporter has been failing."""
        dropped = stats.get("dropped")
        if isinstance(dropped, dict):
            lost = float(sum(v for k, v in dropped.items() if k not in NOT_DROPS))
            if lost > self._last_drops:
                self._seen.drops.add(now, lost - self._last_drops)
            self._last_drops = lost
        failing: dict[str, float] = {}
        for name, counts in (stats.get("exporters") or {}).items():
            exported, failed = int(counts.get("exported", 0)), int(counts.get("failed", 0))
            last_exported, last_failed, since = self._exporter_marks.get(name, (0, 0, None))
            if exported > last_exported or not counts.get("pending"):
                since = None  # it delivered, or has nothing left to deliver: not failing
            elif failed > last_failed and since is None:
                since = now
            self._exporter_marks[name] = (exported, failed, since)
            if since is not None:
                failing[name] = now - since
        self._seen.exporter_failing_s = failing

    # ---- outputs ------------------------------------------------------------------------------

    def _emit(self, alerts: list[Alert]) -> None:
        handler = self._handler() if self._handler is not None else None
        if handler is None:
            return
        for alert in alerts:
            try:
                handler.emit_event(alert_event(alert))
            except Exception as exc:
                self._warn_once("alert event", exc)

    def _warn_once(self, what: str, exc: BaseException) -> None:
        cause = f"{what}:{type(exc).__name__}"
        if cause not in self._warned:
            self._warned.add(cause)
            logger.warning("llm-audit alerts: %s failed: %r (counted; further ones are not "
                           "logged)", what, exc)


_live: weakref.WeakSet[AlertEngine] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for engine in list(_live):
        engine._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def alert_event(alert: Alert) -> AuditEvent:
    """The ``alert.fired`` / ``alert.resolved`` event of an announcement (its own trace)."""
    from datetime import UTC, datetime

    kind = AuditEventType.ALERT_FIRED if alert.state == FIRED else AuditEventType.ALERT_RESOLVED
    return AuditEvent(
        event_id=new_event_id(), trace_id=new_trace_id(), span_id=new_span_id(),
        timestamp=datetime.fromtimestamp(alert.at, UTC), event_type=kind,
        agent="llm-audit-alerts", action=alert.rule.name, status="ok",
        data={"alert": alert.as_dict(), "trace_root": True})
