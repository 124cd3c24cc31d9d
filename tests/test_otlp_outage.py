"""The OTLP sink through a collector outage: rotel stopped mid-run and started again on the same
port; every span arrives once the collector is back, and the counts are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
from collector import Collector, collector
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter
from llm_audit_langchain.otel import OtlpExporter

__all__ = ["collector"]  # the fixture, imported so pytest finds it


def test_collector_outage_and_recovery_deliver_every_span(
        collector: Collector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    memory = MemoryExporter()
    otlp = OtlpExporter(endpoint=f"{collector.endpoint}/v1/traces")
    handler = AuditCallbackHandler(exporters=[memory, otlp], config=fast_config(
        retry_initial_backoff_s=0.05, retry_max_backoff_s=0.3))
    agent = weather_agent()

    def run() -> None:
        agent.invoke({"messages": [HumanMessage("Weather in Paris?")]},
                     config={"callbacks": [handler]})

    run()
    assert handler.flush(10)
    per_run = len([e for e in memory.events if e.start_time is not None])
    assert len(collector.wait_for_spans(per_run)) == per_run
    collector.stop()
    for _ in range(3):
        run()
    assert not handler.flush(1.0)  # nothing reaches a stopped collector
    second_dir = tmp_path / "after"
    second_dir.mkdir()
    restarted = Collector(collector.process.args[0], second_dir,  # type: ignore[index]
                          http_port=collector.http_port)
    try:
        assert handler.flush(30)
        spans = restarted.wait_for_spans(3 * per_run)
        ours = {e.span_id for e in memory.events if e.start_time is not None}
        first = {s.span_id for s in collector.spans()}
        assert len(spans) == 3 * per_run
        assert {s.span_id for s in spans} | first == ours
        stats = handler.stats()
        assert stats["exporters"]["otlp"]["exported"] == stats["exported"]
        assert not any(stats["dropped"].values())
    finally:
        handler.shutdown(5)
        restarted.stop()
