"""Anomalies per user against their own baseline; SLO error budgets and multi-window burn-rate
alerts firing at the right window; all on an injected clock over real agent runs."""

from __future__ import annotations

import pytest
from alert_streams import Clock, Runs, replay, spread

from llm_audit_langchain.alerts import AlertEngine, AlertRule, builtin_rules, burn_rate_rules
from llm_audit_langchain.alerts.anomaly import robust_score

HOUR = 3_600.0


@pytest.fixture(scope="module")
def runs() -> Runs:
    return Runs.record()


def test_robust_score_ignores_one_old_outlier() -> None:
    history = [5.0, 6.0, 5.0, 4.0, 50.0, 5.0, 6.0]  # one burst long ago
    assert robust_score(7.0, history, 1.0) < 3  # a normal hour is not unusual
    assert robust_score(60.0, history, 1.0) > 5


def anomaly_rules() -> list[AlertRule]:
    return [r for r in builtin_rules(slos=False) if r.metric.endswith("_anomaly")]


def test_user_whose_spend_jumps_is_flagged_and_a_steady_one_is_not(runs: Runs) -> None:
    clock = Clock()
    engine = AlertEngine(anomaly_rules(), builtin=False, clock=clock)
    start = clock.now
    for hour in range(6):  # both users: 4 or 5 requests an hour for six hours
        base = start + hour * HOUR
        for i in range(4 + hour % 2):
            replay(engine, runs.ok, clock, at=base + 60 * i, user="steady", thread="t-steady")
            replay(engine, runs.ok, clock, at=base + 60 * i + 1, user="jumpy", thread="t-jumpy")
    assert engine.check(start + 6 * HOUR - 1) == []
    now = start + 6 * HOUR
    for i in range(5):
        replay(engine, runs.ok, clock, at=now + 60 * i, user="steady", thread="t-steady")
    for i in range(60):  # twelve times the usual, and ten times the usual spend
        replay(engine, runs.ok, clock, at=now + 30 * i, user="jumpy", thread="t-jumpy",
               scale=10.0)
    for i in range(80):  # a new user with a lot of traffic: no history, not flagged
        replay(engine, runs.ok, clock, at=now + 20 * i, user="newcomer", thread="t-new")
    alerts = engine.check(now + 1_800)
    flagged = {(a.name, *a.labels.values()) for a in alerts if a.state == "fired"}
    assert flagged == {("user_request_anomaly", "jumpy"), ("user_cost_anomaly", "jumpy"),
                       ("thread_request_anomaly", "t-jumpy"), ("thread_cost_anomaly", "t-jumpy")}
    [requests] = [a for a in alerts if a.name == "user_request_anomaly"]
    assert requests.value > 5 and len(requests.examples) == 1
    resolved = engine.check(now + HOUR + 1)  # a new hour: back to nothing unusual
    assert {a.name for a in resolved if a.state == "resolved"} == {r.name for r in
                                                                   anomaly_rules()}


def burn_engine(clock: Clock) -> AlertEngine:
    return AlertEngine(burn_rate_rules(), builtin=False, clock=clock)


def test_error_budget_burn_pages_at_14x_only_once_the_hour_agrees(runs: Runs) -> None:
    clock = Clock()
    engine = burn_engine(clock)
    start = clock.now
    spread(engine, runs.ok, clock, 7 * 360, start, 10, roots_only=True)  # 7 clean hours
    incident = start + 7 * HOUR
    spread(engine, runs.llm_error, clock, 90, incident, 10, roots_only=True)  # every one fails
    # 15 minutes in: the 5 min window burns at 50x, the hour only at 90/360/0.02 = 12.5x
    early = engine.check(incident + 900)
    assert "slo_error_rate_burn_14.4x" not in {a.name for a in early}
    spread(engine, runs.llm_error, clock, 30, incident + 900, 10, roots_only=True)
    # 20 minutes in: the hour burns at 120/360/0.02 = 16.7x and the last 5 minutes agree
    [page] = [a for a in engine.check(incident + 1_200) if a.name == "slo_error_rate_burn_14.4x"]
    assert page.severity == "critical" and 14.4 < page.value < 17
    # the 6x ticket needs 6 h over 12 %: 120 errors of 2,160 requests is 5.6 %, not yet
    assert "slo_error_rate_burn_6x" not in {a["rule"] for a in engine.active()}
    # the incident ends: the 5 min window clears long before the hour does, and resolves it
    spread(engine, runs.ok, clock, 36, incident + 1_200, 10, roots_only=True)
    assert "slo_error_rate_burn_14.4x" in {
        a.name for a in engine.check(incident + 1_560) if a.state == "resolved"}


def test_slo_status_reports_value_target_budget_and_burn_rates(runs: Runs) -> None:
    clock = Clock()
    engine = burn_engine(clock)
    start = clock.now
    spread(engine, runs.ok, clock, 97, start, 30)
    spread(engine, runs.llm_error, clock, 3, start + 3_000, 30)
    spread(engine, runs.tool_error, clock, 1, start + 3_100, 30)
    status = {s["slo"]: s for s in engine.slo_status(start + HOUR - 10)}
    errors = status["error_rate"]
    assert errors["value"] == pytest.approx(3 / 101) and errors["target"] == 0.02
    assert errors["budget_left"] == pytest.approx(1 - (3 / 101) / 0.02)
    assert errors["ok"] is False and errors["burn_rate"]["1h"] == pytest.approx(3 / 101 / 0.02)
    tools = status["tool_failure_rate"]
    assert tools["value"] == pytest.approx(1 / 98) and tools["ok"] is True
    latency = status["p95_latency"]
    assert latency["value"] == 0 and latency["p95_latency_ms"] < 1_500
    assert status["timeout_rate"]["budget_left"] == 1.0
