"""Every built-in alert rule fires and resolves on a stream built from real agent runs, on an
injected clock: pending → firing → resolved, announced once each, cooldown respected."""

from __future__ import annotations

from typing import Any

import pytest
from alert_streams import Clock, Runs, replay, spread

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter
from llm_audit_langchain.alerts import Alert, AlertEngine, AlertRule, CallbackNotifier, lifecycle
from llm_audit_langchain.alerts.measures import Labels, Measurement
from llm_audit_langchain.errors import ConfigError

HOUR = 3_600.0


@pytest.fixture(scope="module")
def runs() -> Runs:
    return Runs.record()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> AlertEngine:
    return AlertEngine(clock=clock)


def announced(alerts: list[Alert], state: str = "fired") -> set[str]:
    return {a.name for a in alerts if a.state == state}


def test_error_rate_is_pending_for_a_minute_then_fires_once_then_resolves(
        engine: AlertEngine, clock: Clock, runs: Runs) -> None:
    start = clock.now
    spread(engine, runs.ok, clock, 18, start, 10)
    spread(engine, runs.llm_error, clock, 2, start + 180, 10)  # 2 of 20 = 10 % > 5 %
    assert "error_rate" not in announced(engine.check(start + 200))
    assert {"rule": "error_rate", "labels": {}, "since": start + 200, "state": "pending"} in (
        engine.active())
    fired = [a for a in engine.check(start + 260) if a.name == "error_rate"]
    assert len(fired) == 1 and fired[0].state == "fired" and fired[0].severity == "critical"
    assert fired[0].value == pytest.approx(0.1)
    assert len(fired[0].examples) == 2  # the failing traces, for whoever investigates
    assert "error_rate" not in announced(engine.check(start + 270))  # deduped while firing
    spread(engine, runs.ok, clock, 30, start + 300, 10)  # errors leave the 5-minute window
    resolved = [a for a in engine.check(start + 600) if a.name == "error_rate"]
    assert [a.state for a in resolved] == ["resolved"]


def test_p95_latency_fires_on_slow_requests_and_resolves(engine: AlertEngine, clock: Clock,
                                                         runs: Runs) -> None:
    start = clock.now
    spread(engine, runs.ok, clock, 20, start, 5, latency_ms=2_400.0)
    engine.check(start + 100)
    alerts = engine.check(start + 160)
    [p95] = [a for a in alerts if a.name == "p95_latency"]
    assert p95.value == 2_400.0 and p95.rule.threshold == 1_500.0
    spread(engine, runs.ok, clock, 20, start + 400, 5)
    assert "p95_latency" in announced(engine.check(start + 500), "resolved")


def test_tool_failure_rate_fires_and_resolves(engine: AlertEngine, clock: Clock,
                                              runs: Runs) -> None:
    start = clock.now
    spread(engine, runs.ok, clock, 10, start, 10)
    spread(engine, runs.tool_error, clock, 2, start + 100, 10)  # 2 of 12 tool calls fail
    engine.check(start + 130)
    assert "tool_failure_rate" in announced(engine.check(start + 200))
    spread(engine, runs.ok, clock, 12, start + 320, 10)
    assert "tool_failure_rate" in announced(engine.check(start + 500), "resolved")


def test_retries_per_request_fires_and_resolves(engine: AlertEngine, clock: Clock,
                                                runs: Runs) -> None:
    start = clock.now
    spread(engine, runs.retried, clock, 6, start, 10)  # 3 retries in every request
    [alert] = [a for a in engine.check(start + 60) if a.name == "retries_per_request"]
    assert alert.value == 3.0
    spread(engine, runs.ok, clock, 6, start + 400, 10)
    assert "retries_per_request" in announced(engine.check(start + 460), "resolved")


def test_token_cost_spike_against_the_trailing_day(engine: AlertEngine, clock: Clock,
                                                   runs: Runs) -> None:
    start = clock.now
    spread(engine, runs.ok, clock, 24, start, HOUR)  # one run an hour for a day
    now = start + 24 * HOUR
    assert "token_cost_spike" not in announced(engine.check(now))
    spread(engine, runs.ok, clock, 10, now + 60, 60)  # ten in the next quarter hour
    [spike] = [a for a in engine.check(now + 900) if a.name == "token_cost_spike"]
    assert spike.value > 3.0
    assert "token_cost_spike" in announced(engine.check(now + 900 + HOUR), "resolved")


def test_cost_per_hour_ceiling_warning_then_critical(engine: AlertEngine, clock: Clock,
                                                     runs: Runs) -> None:
    start = clock.now
    per_run = sum(e.cost_usd or 0 for e in runs.ok)
    spread(engine, runs.ok, clock, 5, start, 60, scale=12 / (5 * per_run))  # $12 this hour
    assert {"cost_per_hour_warning"} <= announced(engine.check(start + 600))
    spread(engine, runs.ok, clock, 5, start + 700, 60, scale=40 / (5 * per_run))  # $52
    alerts = engine.check(start + 1_200)
    assert "cost_per_hour_critical" in announced(alerts)
    assert "cost_per_hour_warning" not in announced(alerts)  # already firing: not again
    later = engine.check(start + 2 * HOUR)
    assert {"cost_per_hour_warning", "cost_per_hour_critical"} <= announced(later, "resolved")


def test_daily_budgets_per_user_and_thread(engine: AlertEngine, clock: Clock,
                                           runs: Runs) -> None:
    start = clock.now
    per_run = sum(e.cost_usd or 0 for e in runs.ok)
    replay(engine, runs.ok, clock, at=start, user="bob", thread="t-9", scale=11 / per_run)
    replay(engine, runs.ok, clock, at=start + 1, user="carol", thread="t-1")
    alerts = engine.check(start + 10)
    by_rule = {(a.name, tuple(sorted(a.labels.items()))) for a in alerts if a.state == "fired"}
    assert ("user_daily_cost_budget", (("user_id", "bob"),)) in by_rule
    assert ("thread_daily_cost_budget", (("thread_id", "t-9"),)) in by_rule
    assert ("user_daily_token_budget", (("user_id", "bob"),)) in by_rule  # 11/0.0046 x tokens
    assert not any(dict(labels).get("user_id") == "carol" for _, labels in by_rule)
    midnight = (start // 86_400 + 1) * 86_400
    resolved = engine.check(midnight + 1)  # a new UTC day: the budgets start again
    assert "user_daily_cost_budget" in announced(resolved, "resolved")


def test_pipeline_drops_and_a_failing_exporter(clock: Clock, runs: Runs) -> None:
    from fault_exporters import DownThenUp

    sink = DownThenUp()
    engine = AlertEngine(clock=clock, interval_s=3_600)
    handler = AuditCallbackHandler(exporters=[sink], alerts=engine, config=AuditConfig(
        flush_interval_ms=20, debug=True, queue_size=5, retry_initial_backoff_s=0.01,
        retry_max_backoff_s=0.02))
    try:
        for event in runs.ok:  # 14 events, the backlog holds 5: some are dropped
            handler.emit_event(event.model_copy())
        handler.flush(timeout=0.5)
        start = clock.now
        history: list[Alert] = []
        for at in (0, 61, 301):
            history.extend(engine.check(start + at))
        failing = [(a.name, a.state) for a in history if a.name.startswith("exporter_failing")]
        assert failing == [("exporter_failing_warning", "fired"),
                           ("exporter_failing_critical", "fired")]
        sink.up()
        assert handler.flush(timeout=10)
        for at in (400, 800):  # drops seen meanwhile (alert events given up) leave the window
            history.extend(engine.check(start + at))
        assert {"exporter_failing_warning", "exporter_failing_critical"} <= {
            a.name for a in history if a.state == "resolved"}
        drops = [a.state for a in history if a.name == "pipeline_drops"]
        assert drops[0] == "fired" and drops[-1] == "resolved"
        handler.flush(timeout=10)
        kinds = [e.event_type for e in sink.events if e.event_type.startswith("alert.")]
        assert "alert.fired" in kinds and "alert.resolved" in kinds  # the alerts reach the sink
    finally:
        handler.shutdown(timeout=5)


class StoreExporter(MemoryExporter):
    """A store sink that reports its KPIs in ``stats()``, as the store exporters do."""

    name = "store"

    def __init__(self) -> None:
        super().__init__()
        self.kpis: dict[str, Any] = {"write_latency_p95_ms": 12.0,
                                     "collection_size_bytes": 10 * 1024 * 1024,
                                     "growth_bytes_per_month": 1024}

    def stats(self) -> dict[str, Any]:
        return dict(self.kpis)


def test_store_kpis_warning_and_critical_levels(clock: Clock) -> None:
    store = StoreExporter()
    engine = AlertEngine(clock=clock)
    handler = AuditCallbackHandler(exporters=[store], alerts=engine,
                                   config=AuditConfig(flush_interval_ms=20, debug=True))
    try:
        assert not {a for a in announced(engine.check(clock.now)) if a.startswith("store")}
        store.kpis.update(write_latency_p95_ms=30.0, collection_size_bytes=1_200 * 1024 ** 2,
                          growth_bytes_per_month=150 * 1024 ** 2)
        fired = announced(engine.check(clock.now + 10))
        assert {"store_write_latency_warning", "store_size_warning", "store_size_critical",
                "store_growth_warning"} <= fired
        assert "store_write_latency_critical" not in fired
        store.kpis.update(write_latency_p95_ms=5.0)
        assert {"store_write_latency_warning"} == {
            a for a in announced(engine.check(clock.now + 20), "resolved")}
    finally:
        handler.shutdown(timeout=5)


def test_daily_requests_kpi(engine: AlertEngine, clock: Clock, runs: Runs) -> None:
    start = clock.now
    spread(engine, runs.ok, clock, 301, start, 60, roots_only=True)
    assert "daily_requests_warning" in announced(engine.check(clock.now))
    assert "daily_requests_warning" in announced(engine.check(clock.now + 86_400), "resolved")


def test_cooldown_suppresses_a_flapping_alert(clock: Clock, runs: Runs) -> None:
    rule = AlertRule("errors", "error_rate", 0.05, window_s=60, min_count=1, cooldown_s=900)
    received: list[Alert] = []
    engine = AlertEngine([rule], builtin=False, clock=clock,
                         notifiers=[CallbackNotifier(received.append)])
    start = clock.now
    for cycle in range(3):  # fails, recovers, fails again... within the cooldown
        t = start + cycle * 200
        replay(engine, runs.llm_error, clock, at=t)
        engine.check(t + 5)
        engine.check(t + 100)
    assert engine.flush_notifications()
    assert [(a.name, a.state) for a in received] == [("errors", "fired"), ("errors", "resolved")]
    assert engine.stats()["suppressed"] == 2
    replay(engine, runs.llm_error, clock, at=start + 2_000)  # after the cooldown: told again
    engine.check(start + 2_005)
    assert engine.flush_notifications()
    assert [a.state for a in received] == ["fired", "resolved", "fired"]


def test_cooldowns_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A day-long cooldown over threads that each go over budget once: the last announcement of
    each would be kept for a day. Past ``MAX_COOLDOWNS`` the oldest is forgotten."""
    monkeypatch.setattr(lifecycle, "MAX_COOLDOWNS", 50)
    rule = AlertRule("thread_budget", "thread_cost_usd_day", 1.0, cooldown_s=86_400.0)
    states = lifecycle.Lifecycle()
    announced: list[tuple[str, str]] = []
    for i in range(500):  # thread i goes over budget, thread i - 1's day is over: resolved
        measured: dict[Labels, Measurement] = {(("thread_id", f"t{i}"),): (2.0, [])}
        announced += [(a.labels["thread_id"], a.state) for a in states.step(rule, measured, i)]
        assert len(states._last_announced[rule.name]) <= 50
    assert len(announced) == 999  # every thread fired once and all but the last resolved
    again = states.step(rule, {(("thread_id", "t498"),): (2.0, [])}, 500.0)
    assert [a.state for a in again] == ["resolved"]  # t499's; t498 is in its cooldown: silent
    forgotten = states.step(rule, {(("thread_id", "t0"),): (2.0, [])}, 501.0)
    assert [(a.labels["thread_id"], a.state) for a in forgotten] == [("t0", "fired")]


def test_rules_in_code_replace_builtins_by_name_and_fail_on_bad_fields() -> None:
    strict = AlertRule("error_rate", "error_rate", 0.01, severity="critical")
    engine = AlertEngine([strict], disabled=["daily_requests_warning"])
    rules = {r.name: r for r in engine.rules}
    assert rules["error_rate"].threshold == 0.01
    assert "daily_requests_warning" not in rules and "daily_requests_critical" in rules
    with pytest.raises(ConfigError, match=r"alert rule 'x': field 'metric'"):
        AlertRule("x", "error_ratio", 0.1)
    with pytest.raises(ConfigError, match=r"alert rule 'y': field 'window_s'"):
        AlertRule("y", "error_rate", 0.1, window_s=0)
    with pytest.raises(ConfigError, match=r"alert rule 'z': field 'severity'"):
        AlertRule("z", "error_rate", 0.1, severity="page")
