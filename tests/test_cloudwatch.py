"""``CloudWatchExporter``: the PutLogEvents limits in our batching (the local server does not
enforce them all), then real calls to moto's server started here: group and stream creation,
retention, restamping, EMF lines, the environment alone, and an outage with recovery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

pytest.importorskip("boto3", reason="the aws extra is part of the test extra")

import boto3
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage
from sink_servers import MotoServer, moto_available

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, AuditEvent, AuditEventType
from llm_audit_langchain.errors import ConfigError
from llm_audit_langchain.exporters import CloudWatchExporter
from llm_audit_langchain.exporters.cloudwatch import emf_line
from llm_audit_langchain.exporters.cloudwatch_batches import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    LogEvent,
    PrepareCounts,
    batch_fits,
    batches,
    message_parts,
    restamp,
)
from llm_audit_langchain.exporters.registry import exporters_from_config

NOW_MS = 1_800_000_000_000


def event(i: int = 0, *, when: datetime | None = None, data: dict[str, Any] | None = None,
          **fields: Any) -> AuditEvent:
    return AuditEvent(event_id=uuid4().hex, trace_id=uuid4().hex, span_id=uuid4().hex[:16],
                      timestamp=when or datetime.now(UTC), event_type=AuditEventType.CHAIN_END,
                      agent="node", action=f"step{i}", data=data or {"i": i}, **fields)


# ---- the limits, in our own batching -----------------------------------------------------------


def test_ten_thousand_events_per_call_at_most() -> None:
    events = [LogEvent(NOW_MS + i, "x", str(i)) for i in range(25_001)]
    calls = batches(events)
    assert [len(c) for c in calls] == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 5_001]
    assert all(batch_fits(c) for c in calls)


def test_bytes_per_call_count_26_bytes_per_event() -> None:
    # 1,022 x (1,000 + 26) = 1,048,572 <= 1,048,576: 1,022 such events fit, not 1,023.
    message = "a" * 1_000
    calls = batches([LogEvent(NOW_MS, message, str(i)) for i in range(2_100)])
    assert [len(c) for c in calls] == [1_022, 1_022, 56]
    assert sum(e.size for e in calls[0]) <= MAX_BATCH_BYTES
    assert sum(e.size for e in calls[0]) + 1_000 + EVENT_OVERHEAD_BYTES > MAX_BATCH_BYTES


def test_multibyte_text_counts_utf8_bytes() -> None:
    message = "é" * 500  # 1,000 bytes in UTF-8, 500 characters
    calls = batches([LogEvent(NOW_MS, message, str(i)) for i in range(1_100)])
    assert len(calls[0]) == 1_022


def test_calls_are_chronological_and_within_24_hours() -> None:
    hour = 3_600_000
    stamps = [NOW_MS + 30 * hour, NOW_MS, NOW_MS + 2 * hour, NOW_MS + 25 * hour, NOW_MS + hour]
    calls = batches([LogEvent(t, "m", str(t)) for t in stamps])
    assert [[e.timestamp for e in c] for c in calls] == [
        [NOW_MS, NOW_MS + hour, NOW_MS + 2 * hour],
        [NOW_MS + 25 * hour, NOW_MS + 30 * hour],
    ]
    assert all(batch_fits(c) for c in calls)


def test_equal_timestamps_keep_their_order() -> None:
    calls = batches([LogEvent(NOW_MS, f"m{i}", str(i)) for i in range(50)])
    assert [e.message for e in calls[0]] == [f"m{i}" for i in range(50)]


def test_a_line_over_256_kb_is_split_into_parts_that_rebuild_it() -> None:
    line = json.dumps({"blob": 'q"\\é' * 120_000})  # quotes and backslashes double when escaped
    counts = PrepareCounts()
    parts = message_parts(line, "e" * 32, "t" * 32, counts)
    assert len(parts) > 1 and counts.split_events == 1 and counts.truncated_events == 0
    decoded = [json.loads(p) for p in parts]
    assert all(len(p.encode()) + EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES for p in parts)
    assert [d["split"] for d in decoded] == [{"part": i + 1, "of": len(parts)}
                                            for i in range(len(parts))]
    assert "".join(d["chunk"] for d in decoded) == line
    assert {d["event_id"] for d in decoded} == {"e" * 32}


def test_a_huge_line_is_truncated_with_a_marker_never_dropped() -> None:
    line = "x" * (200 * MAX_EVENT_BYTES)
    counts = PrepareCounts()
    parts = message_parts(line, "e" * 32, "t" * 32, counts)
    last = json.loads(parts[-1])
    assert counts.truncated_events == 1
    assert last["truncated"] is True and last["original_bytes"] == len(line)


def test_a_line_that_fits_is_sent_as_is() -> None:
    assert message_parts('{"a":1}', "e", "t") == ['{"a":1}']


def test_timestamps_outside_the_accepted_window_are_restamped_and_counted() -> None:
    day = 86_400_000
    events = [LogEvent(NOW_MS - 15 * day, "old", "a"), LogEvent(NOW_MS + 3 * 3_600_000, "new", "b"),
              LogEvent(NOW_MS - 13 * day, "fine", "c")]
    counts = PrepareCounts()
    fixed = restamp(events, NOW_MS, counts)
    assert [e.timestamp for e in fixed] == [NOW_MS, NOW_MS, NOW_MS - 13 * day]
    assert counts.restamped_events == 2


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ConfigError, match="log group"):
        CloudWatchExporter("bad group name!", client=object())
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        CloudWatchExporter("/audit", retention_days=10, client=object())
    with pytest.raises(ConfigError, match="AUDIT_CLOUDWATCH_LOG_GROUP"):
        exporters_from_config(AuditConfig(exporter="cloudwatch"))


def test_emf_line_names_the_metrics_it_carries() -> None:
    llm = event(model="gpt-4o", cost_usd=0.5, tokens_input=10, tokens_output=3, latency_ms=12.0)
    document = json.loads(emf_line(llm, "LLMAudit") or "")
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "LLMAudit"
    assert {m["Name"] for m in directive["Metrics"]} == {"CostUSD", "TokensInput",
                                                          "TokensOutput", "LatencyMs"}
    assert document["model"] == "gpt-4o" and document["CostUSD"] == 0.5
    assert emf_line(event(), "LLMAudit") is None


# ---- against moto's server ------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def moto(tmp_path: Path, aws_env: None) -> Iterator[MotoServer]:
    if not moto_available():
        pytest.skip("moto[server] is not installed (it is part of the test extra)")
    server = MotoServer(tmp_path)
    yield server
    server.stop()


def logs_client(server: MotoServer) -> Any:
    return boto3.client("logs", endpoint_url=server.endpoint, region_name="us-east-1")


def stored(server: MotoServer, group: str, stream: str) -> list[dict[str, Any]]:
    client = logs_client(server)
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                              "startFromHead": True}
    while True:
        page = client.get_log_events(**kwargs)
        found.extend(page["events"])
        if not page["events"]:
            return found
        kwargs["nextToken"] = page["nextForwardToken"]


def test_creates_group_stream_and_retention_then_delivers(moto: MotoServer) -> None:
    exporter = CloudWatchExporter("/llm-audit/test", "s1", retention_days=30,
                                  endpoint_url=moto.endpoint)
    sent = [event(i) for i in range(25)]
    exporter.export(sent)
    exporter.export([event(99)])
    lines = [json.loads(e["message"]) for e in stored(moto, "/llm-audit/test", "s1")]
    assert [line["event_id"] for line in lines] == [e.event_id for e in [*sent]] + [
        lines[-1]["event_id"]]
    assert len(lines) == 26
    (group,) = logs_client(moto).describe_log_groups(logGroupNamePrefix="/llm-audit")["logGroups"]
    assert group["retentionInDays"] == 30
    stats = exporter.stats()
    assert stats["events"] == 26 and stats["log_events"] == 26
    assert stats["created_groups"] == 1 and stats["created_streams"] == 1


def test_default_stream_is_host_and_pid(moto: MotoServer) -> None:
    import os
    import socket

    exporter = CloudWatchExporter("/g", endpoint_url=moto.endpoint)
    assert exporter.log_stream == f"{socket.gethostname()}-{os.getpid()}"


def test_old_and_future_events_are_restamped_not_rejected(moto: MotoServer) -> None:
    exporter = CloudWatchExporter("/g", "s", endpoint_url=moto.endpoint)
    now = datetime.now(UTC)
    exporter.export([event(0, when=now - timedelta(days=20)), event(1, when=now),
                     event(2, when=now + timedelta(hours=5))])
    lines = stored(moto, "/g", "s")
    assert len(lines) == 3
    stats = exporter.stats()
    assert stats["restamped_events"] == 2
    assert stats["rejected_too_old"] == stats["rejected_too_new"] == 0


def test_what_the_service_rejects_is_counted(moto: MotoServer) -> None:
    # A clock 20 days slow makes our window check pass events the service finds too old.
    slow = datetime.now(UTC).timestamp() - 20 * 86_400
    exporter = CloudWatchExporter("/g", "s", endpoint_url=moto.endpoint, clock=lambda: slow)
    when = datetime.fromtimestamp(slow, UTC)
    exporter.export([event(0, when=when), event(1, when=when)])
    assert exporter.stats()["rejected_too_old"] == 2


def test_big_event_arrives_in_parts(moto: MotoServer) -> None:
    exporter = CloudWatchExporter("/g", "s", endpoint_url=moto.endpoint)
    big = event(0, data={"text": "z" * 600_000})
    exporter.export([big])
    parts = [json.loads(e["message"]) for e in stored(moto, "/g", "s")]
    assert len(parts) == exporter.stats()["log_events"] > 1
    original = json.loads("".join(p["chunk"] for p in parts))
    assert original["event_id"] == big.event_id and original["data"]["text"] == "z" * 600_000


def test_handler_with_only_environment_variables_reaches_cloudwatch(
        moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "cloudwatch")
    monkeypatch.setenv("AUDIT_CLOUDWATCH_LOG_GROUP", "/llm-audit/env")
    monkeypatch.setenv("AUDIT_CLOUDWATCH_LOG_STREAM", "agent-1")
    monkeypatch.setenv("AUDIT_CLOUDWATCH_METRICS", "true")
    monkeypatch.setenv("AUDIT_DEBUG", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto.endpoint)
    handler = AuditCallbackHandler()
    weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                           config={"callbacks": [handler]})
    assert handler.shutdown(10)
    lines = [json.loads(e["message"]) for e in stored(moto, "/llm-audit/env", "agent-1")]
    audit_lines = [line for line in lines if "_aws" not in line]
    metric_lines = [line for line in lines if "_aws" in line]
    assert len(audit_lines) == handler.stats()["exported"] > 0
    llm_calls = [line for line in audit_lines if line["event_type"] == "llm.invoke"]
    assert len(llm_calls) == 2 and len(metric_lines) == 2
    assert {line["trace_id"] for line in audit_lines} == {llm_calls[0]["trace_id"]}


def test_outage_and_recovery_deliver_everything_once(moto: MotoServer) -> None:
    exporter = CloudWatchExporter("/g", "s", endpoint_url=moto.endpoint, timeout_s=2)
    handler = AuditCallbackHandler(exporters=[exporter], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.2))
    agent = weather_agent()

    def run() -> None:
        agent.invoke({"messages": [HumanMessage("Weather in Paris?")]},
                     config={"callbacks": [handler]})

    run()
    assert handler.flush(10)
    before = len(stored(moto, "/g", "s"))
    assert before == handler.stats()["exported"] > 0
    moto.stop()
    for _ in range(3):
        run()
    assert not handler.flush(1.0)  # nothing can be delivered while the server is down
    moto.start()  # memory only: the group and stream are gone and must be recreated
    assert handler.flush(15)
    after = stored(moto, "/g", "s")
    stats = handler.stats()
    assert len(after) == 3 * before
    assert len({json.loads(e["message"])["event_id"] for e in after}) == len(after)
    assert stats["exported"] == 4 * before
    assert not any(stats["dropped"].values())
    assert exporter.stats()["events"] == 4 * before
    assert exporter.stats()["created_groups"] == 2 and exporter.stats()["failed_calls"] >= 1
    handler.shutdown(5)


def test_throttling_and_5xx_are_retried_with_backoff_and_counted(moto: MotoServer) -> None:
    from sink_servers import FaultyProxy

    proxy = FaultyProxy(moto.endpoint, "PutLogEvents", ["throttle", "503", "throttle"])
    try:
        exporter = CloudWatchExporter("/g", "s", endpoint_url=proxy.endpoint)
        sent = [event(i) for i in range(10)]
        exporter.export(sent)  # three faults, then accepted: within one export
        stats = exporter.stats()
        assert stats["throttled_retries"] == 2 and stats["server_error_retries"] == 1
        assert stats["events"] == 10 and stats["failed_calls"] == 0
        lines = [json.loads(e["message"]) for e in stored(moto, "/g", "s")]
        assert [line["event_id"] for line in lines] == [e.event_id for e in sent]
    finally:
        proxy.stop()


def test_persistent_throttling_fails_the_export_for_the_pipeline_to_retry(
        moto: MotoServer) -> None:
    from botocore.exceptions import ClientError
    from sink_servers import FaultyProxy

    proxy = FaultyProxy(moto.endpoint, "PutLogEvents", ["throttle"] * 3)
    try:
        exporter = CloudWatchExporter("/g", "s", endpoint_url=proxy.endpoint, max_attempts=2)
        sent = [event(i) for i in range(3)]
        with pytest.raises(ClientError):
            exporter.export(sent)
        exporter.export(sent)  # the pipeline's retry of the same batch: one fault left, then in
        assert exporter.stats()["failed_calls"] == 1
        assert len(stored(moto, "/g", "s")) == 3
    finally:
        proxy.stop()


def test_a_retried_batch_never_sends_an_accepted_call_twice(moto: MotoServer) -> None:
    from botocore.exceptions import ClientError
    from sink_servers import FaultyProxy

    # 10,001 events (~4.7 MB) take several calls; the first is accepted, the second throttled.
    proxy = FaultyProxy(moto.endpoint, "PutLogEvents", ["pass", "throttle"])
    try:
        exporter = CloudWatchExporter("/g", "s", endpoint_url=proxy.endpoint, max_attempts=1)
        now = datetime.now(UTC)
        sent = [event(i, when=now, data={}) for i in range(10_001)]
        with pytest.raises(ClientError):
            exporter.export(sent)
        exporter.export(sent)  # what the pipeline does next: the same batch again
        ids = [json.loads(e["message"])["event_id"] for e in stored(moto, "/g", "s")]
        assert len(ids) == len(set(ids)) == 10_001
        stats = exporter.stats()
        assert stats["log_events"] == stats["events"] == 10_001 and stats["failed_calls"] == 1
    finally:
        proxy.stop()


class _EverySecondCallFails:
    """A logs client whose even-numbered PutLogEvents calls fail (not retryable)."""

    class exceptions:  # noqa: N801 - as boto3 names it
        ResourceAlreadyExistsException = type("ResourceAlreadyExistsException", (Exception,), {})

    def __init__(self) -> None:
        self.calls = 0
        self.accepted: list[str] = []

    def create_log_group(self, **_: Any) -> None:
        return None

    def create_log_stream(self, **_: Any) -> None:
        return None

    def put_log_events(self, **call: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls % 2 == 0:
            raise ClientError({"Error": {"Code": "InvalidParameterException", "Message": "no"}},
                              "PutLogEvents")
        self.accepted += [json.loads(e["message"])["event_id"] for e in call["logEvents"]]
        return {}


def test_keys_of_partly_sent_batches_are_not_kept_for_ever() -> None:
    """Batches the pipeline gave up on after their first call went in: their keys must go, or
    a long partial outage grows the set by a batch each time."""
    from botocore.exceptions import ClientError

    client = _EverySecondCallFails()
    exporter = CloudWatchExporter("/g", "s", client=client, max_attempts=1)
    now = datetime.now(UTC)
    firsts = []
    for i in range(100):  # 30 hours apart: two calls per batch, the second one fails
        batch = [event(i, when=now - timedelta(hours=30)), event(i, when=now)]
        firsts.append(batch[0].event_id)
        with pytest.raises(ClientError):
            exporter.export(batch)
        assert len(exporter._accepted_keys) <= len(batch)
    exporter.export(batch)  # the pipeline's retry of the last one: only what did not go in
    assert client.accepted == [*firsts, batch[1].event_id]
    assert not exporter._accepted_keys


def test_emf_lines_go_with_the_header_that_makes_them_metrics(moto: MotoServer) -> None:
    from sink_servers import FaultyProxy

    proxy = FaultyProxy(moto.endpoint, "PutLogEvents", [])
    try:
        exporter = CloudWatchExporter("/g", "s", endpoint_url=proxy.endpoint, metrics=True)
        llm = event(0, model="gpt-4o", cost_usd=0.01, tokens_input=5, tokens_output=2)
        llm = llm.model_copy(update={"event_type": AuditEventType.LLM_INVOKE})
        exporter.export([llm, event(1)])
        (headers,) = proxy.headers_seen
        assert headers["x-amzn-logs-format"] == "json/emf"
        lines = [json.loads(e["message"]) for e in stored(moto, "/g", "s")]
        assert len(lines) == 3 and sum("_aws" in line for line in lines) == 1
        assert exporter.stats()["metric_lines"] == 1
    finally:
        proxy.stop()


def test_no_region_anywhere_is_a_config_error(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="AWS_REGION"):
        CloudWatchExporter("/g", "s")
