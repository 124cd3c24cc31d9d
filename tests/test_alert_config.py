"""Alerts from the environment alone: AUDIT_ALERTS attaches the engine to a handler built from
the environment, a TOML rule file adds, replaces and disables rules, mistakes fail at start naming
the rule and field; and alert events reach every sink, the hash-chained audit log included."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from alert_streams import Clock
from graphs import weather_agent

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, AuditLogExporter, verify
from llm_audit_langchain.alerts import AlertEngine, AlertRule, WebhookNotifier, load_rules
from llm_audit_langchain.errors import ConfigError

RULES = """
[[rule]]
name = "error_rate"
metric = "error_rate"
threshold = 0.10
window = "10m"
for = "2m"
severity = "critical"
labels = { team = "agents" }

[[rule]]
name = "any_request"
metric = "requests"
threshold = 0
window = 300

[[rule]]
name = "daily_requests_warning"
enabled = false
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_ALERTS", "AUDIT_ALERT_RULES", "AUDIT_ALERT_INTERVAL_S",
                 "AUDIT_ALERT_WEBHOOK_URL", "AUDIT_ALERT_WEBHOOK_SECRET",
                 "AUDIT_ALERT_SNS_TOPIC_ARN"):
        monkeypatch.delenv(name, raising=False)


def test_rule_file_adds_replaces_and_disables(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    loaded = load_rules(path)
    rules = {r.name: r for r in loaded.rules}
    assert rules["error_rate"] == AlertRule("error_rate", "error_rate", 0.10, window_s=600,
                                            for_s=120, severity="critical",
                                            labels={"team": "agents"})
    assert loaded.disabled == ["daily_requests_warning"]
    engine = AlertEngine(loaded.rules, disabled=loaded.disabled)
    names = [r.name for r in engine.rules]
    assert "any_request" in names and "daily_requests_warning" not in names
    assert {r.name: r for r in engine.rules}["error_rate"].threshold == 0.10


@pytest.mark.parametrize(("text", "message"), [
    ('[[rule]]\nname = "slow"\nmetric = "latency_p95_ms"\nthreshold = 1500\nwindow = "5 min"',
     r"rule #1 \('slow'\): field 'window': '5 min' is not a duration"),
    ('[[rule]]\nname = "a"\nmetric = "error_rate"\nthreshold = 0.1\n'
     '[[rule]]\nname = "b"\nmetric = "eror_rate"\nthreshold = 0.1',
     r"rule #2 \('b'\): field 'metric' is 'eror_rate', not a known metric"),
    ('[[rule]]\nname = "c"\nmetric = "error_rate"\nthreshold = "high"',
     r"rule #1 \('c'\): field 'threshold' must be a finite number"),
    ('[[rule]]\nname = "d"\nmetric = "error_rate"\nthreshold = 0.1\nseverity = "page"',
     r"rule #1 \('d'\): field 'severity' is 'page'"),
    ('[[rule]]\nname = "e"\nmetric = "error_rate"', r"rule #1 \('e'\): field 'threshold' is "
                                                    r"required"),
    ('[[rule]]\nname = "f"\nmetric = "error_rate"\nthreshold = 1\nwindw = 60',
     r"rule #1 \('f'\): unknown field 'windw'"),
    ('[[rule]\nname = "g"', r"not valid TOML"),
])
def test_a_bad_rule_file_names_the_rule_and_the_field(tmp_path: Path, text: str,
                                                      message: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    monkeypatch.setenv("AUDIT_ALERTS", "true")
    monkeypatch.setenv("AUDIT_ALERT_RULES", str(path))
    with pytest.raises(ConfigError, match=message) as caught:
        AuditCallbackHandler(config=AuditConfig(exporter="none"))
    assert f"AUDIT_ALERT_RULES={path}" in str(caught.value)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("AUDIT_ALERTS", "maybe", "AUDIT_ALERTS='maybe' must be true or false"),
    ("AUDIT_ALERT_INTERVAL_S", "0", "AUDIT_ALERT_INTERVAL_S='0' must be a number"),
    ("AUDIT_ALERT_WEBHOOK_URL", "hooks.example/x", "AUDIT_ALERT_WEBHOOK_URL='hooks.example/x'"),
    ("AUDIT_ALERT_SNS_TOPIC_ARN", "my-topic", "AUDIT_ALERT_SNS_TOPIC_ARN='my-topic'"),
])
def test_environment_mistakes_fail_at_construction(monkeypatch: pytest.MonkeyPatch,
                                                   variable: str, value: str,
                                                   message: str) -> None:
    monkeypatch.setenv("AUDIT_ALERTS", "true")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        AuditCallbackHandler(config=AuditConfig(exporter="none"))


def test_alert_settings_without_audit_alerts_are_a_mistake(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_ALERT_WEBHOOK_URL", "https://hooks.example/audit")
    with pytest.raises(ConfigError, match="AUDIT_ALERT_WEBHOOK_URL is set but AUDIT_ALERTS"):
        AuditCallbackHandler(config=AuditConfig(exporter="none"))


def test_audit_alerts_attaches_the_engine_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    monkeypatch.setenv("AUDIT_ALERTS", "true")
    monkeypatch.setenv("AUDIT_ALERT_RULES", str(rules))
    monkeypatch.setenv("AUDIT_ALERT_INTERVAL_S", "30")
    monkeypatch.setenv("AUDIT_ALERT_WEBHOOK_URL", "https://hooks.example/audit")
    monkeypatch.setenv("AUDIT_ALERT_WEBHOOK_SECRET", "k")
    monkeypatch.setenv("AUDIT_EXPORTER", "none")
    handler = AuditCallbackHandler()
    try:
        engine = handler.alerts
        assert isinstance(engine, AlertEngine) and engine.interval_s == 30
        names = {r.name for r in engine.rules}
        assert {"p95_latency", "any_request", "slo_error_rate_burn_14.4x"} <= names
        kinds = [type(n).__name__ for n in engine.dispatcher.notifiers]
        assert kinds == ["LoggingNotifier", "WebhookNotifier"]
        webhook = engine.dispatcher.notifiers[1]
        assert isinstance(webhook, WebhookNotifier) and webhook.url.endswith("/audit")
    finally:
        handler.shutdown(timeout=5)
    monkeypatch.setenv("AUDIT_ALERTS", "false")
    monkeypatch.delenv("AUDIT_EXPORTER")
    off = AuditCallbackHandler(config=AuditConfig(exporter="none"))
    assert off.alerts is None
    off.shutdown(timeout=5)


def test_alert_events_reach_every_sink_with_default_sampling(tmp_path: Path) -> None:
    """Sampled like any event, an alert is always kept: it reaches JSONL and the audit chain."""
    clock = Clock()
    engine = AlertEngine([AlertRule("any_request", "requests", 0, window_s=300)],
                         builtin=False, clock=clock)
    chain = AuditLogExporter(tmp_path / "chain")
    from llm_audit_langchain import JsonlExporter

    jsonl = JsonlExporter(tmp_path / "logs")
    handler = AuditCallbackHandler(exporters=[jsonl, chain], alerts=engine,
                                   config=AuditConfig(flush_interval_ms=20))
    try:
        graph = weather_agent()
        graph.invoke({"messages": [("user", "weather in Paris?")]},
                     config={"callbacks": [handler]})
        assert handler.flush(timeout=10)
        [fired] = engine.check(clock.now)
        clock.now += 600
        [resolved] = engine.check()
        assert handler.flush(timeout=10)
    finally:
        handler.shutdown(timeout=5)
    lines = [json.loads(line) for f in sorted((tmp_path / "logs").glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    alerts = [e for e in lines if e["event_type"].startswith("alert.")]
    assert [e["event_type"] for e in alerts] == ["alert.fired", "alert.resolved"]
    assert alerts[0]["data"]["alert"]["rule"] == "any_request"
    assert alerts[0]["data"]["alert"]["value"] == 1.0
    assert alerts[0]["data"]["alert"]["example_trace_ids"] == []
    chained = verify(tmp_path / "chain")
    assert chained.ok
    recorded = "\n".join(f.read_text() for f in (tmp_path / "chain").rglob("*.jsonl"))
    assert recorded.count('"alert.fired"') == 1 and recorded.count('"alert.resolved"') == 1
    assert fired.state == "fired" and resolved.state == "resolved"


def test_the_engine_counts_sampled_out_traces_without_building_them(tmp_path: Path) -> None:
    """The engine observes every request, sampled out or not, while the pipeline still builds
    only the event types it reads for traces it drops (the default's saving stays on)."""
    from llm_audit_langchain import JsonlExporter
    from llm_audit_langchain.capture.pending import PendingEvent

    built: list[str] = []
    original = PendingEvent.build

    def counting_build(self: PendingEvent) -> object:
        built.append(str(self.event_type))
        return original(self)

    clock = Clock()
    engine = AlertEngine(clock=clock)
    handler = AuditCallbackHandler(exporters=[JsonlExporter(tmp_path)], alerts=engine,
                                   config=AuditConfig(flush_interval_ms=20))
    graph = weather_agent()
    PendingEvent.build = counting_build  # type: ignore[method-assign]
    try:
        for _ in range(20):
            graph.invoke({"messages": [("user", "weather in Paris?")]},
                         config={"callbacks": [handler]})
        assert handler.flush(timeout=10)
    finally:
        PendingEvent.build = original  # type: ignore[method-assign]
        handler.shutdown(timeout=5)
    status = {s["slo"]: s for s in engine.slo_status()}
    assert status["error_rate"]["total"] == 20  # every request, kept or not
    assert status["tool_failure_rate"]["total"] == 20
    kept_roots = sum(1 for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()
                     if '"trace_root": true' in line or '"trace_root":true' in line)
    assert kept_roots < 20  # default sampling dropped some traces...
    # ...and their inner runs were never built: a run has 4 chain ends, only roots (always
    # built: they decide the trace) and those of kept traces were
    assert built.count("chain.end") == 20 + 3 * kept_roots
    assert built.count("tool.result") == 20  # read by the engine: built, sampled out or not
    assert handler.stats()["alerts"]["observed"] > 0


def test_the_worker_evaluates_on_its_timer() -> None:
    from llm_audit_langchain import MemoryExporter

    memory = MemoryExporter()
    engine = AlertEngine([AlertRule("any_request", "requests", 0, window_s=300)],
                         builtin=False, interval_s=0.05)
    handler = AuditCallbackHandler(exporters=[memory], alerts=engine,
                                   config=AuditConfig(flush_interval_ms=20))
    try:
        weather_agent().invoke({"messages": [("user", "weather in Paris?")]},
                               config={"callbacks": [handler]})
        for _ in range(200):  # no call to check(): the worker's timer evaluates
            handler.flush(timeout=5)
            if memory.events_of("alert.fired"):
                break
            threading.Event().wait(0.05)
        [fired] = memory.events_of("alert.fired")
        assert fired.action == "any_request" and fired.data["alert"]["value"] == 1.0
    finally:
        handler.shutdown(timeout=5)


def test_rules_in_yaml_too(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rule:\n  - name: error_rate\n    metric: error_rate\n    threshold: 0.1\n"
                    "    window: 10m\n    labels: {team: agents}\n"
                    "  - name: broken\n    metric: error_rate\n    threshold: 0.1\n"
                    "    for: soon\n")
    with pytest.raises(ConfigError, match=r"rule #2 \('broken'\): field 'for'"):
        load_rules(path)
    path.write_text("rule:\n  - name: error_rate\n    metric: error_rate\n    threshold: 0.1\n"
                    "    window: 10m\n    labels: {team: agents}\n")
    [rule] = load_rules(path).rules
    assert rule.window_s == 600 and rule.labels == {"team": "agents"}
