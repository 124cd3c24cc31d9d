"""Feedback on a trace, and the reconstruction of one transaction across two services, each with
its own recorded directory, joined by the W3C trace id that travelled between them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import react_agent, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditLogExporter,
    ConfigError,
    JsonlExporter,
    MemoryExporter,
    SamplingPolicy,
    TraceContext,
    current_traceparent,
    record_feedback,
)
from llm_audit_langchain.audit import verify
from llm_audit_langchain.errors import TraceNotFoundError
from llm_audit_langchain.inspect.reconstruct import reconstruct
from llm_audit_langchain.replay.reading import scan


def two_services(tmp_path: Path) -> tuple[str, Path, Path, list[str]]:
    """A gateway agent whose tool hands the request to a payments agent (another service: its
    own handler and directory, the trace id passed as a traceparent header)."""
    gateway_dir, payments_dir = tmp_path / "gateway", tmp_path / "payments"
    headers: list[str] = []

    @tool
    def ask_payments(question: str) -> str:
        """Forward to the payments service."""
        header = current_traceparent()
        assert header is not None
        headers.append(header)
        return "queued"

    gateway = AuditCallbackHandler(exporters=[JsonlExporter(gateway_dir)], config=fast_config())
    payments = AuditCallbackHandler(exporters=[AuditLogExporter(payments_dir)],
                                    config=fast_config())
    try:
        react_agent([tool_call("ask_payments", {"question": "refund 20"}, "call_g"),
                     AIMessage("Your refund is on its way.")], tools=[ask_payments]).invoke(
            {"messages": [HumanMessage("refund please")]}, config={"callbacks": [gateway]})
        with TraceContext.from_traceparent(headers[0]):  # the payments service's request
            react_agent([AIMessage("Refund of 20 approved.")]).invoke(
                {"messages": [HumanMessage("refund 20")]}, config={"callbacks": [payments]})
        assert gateway.flush(10) and payments.flush(10)
    finally:
        gateway.shutdown(5)
        payments.shutdown(5)
    trace_id = headers[0].split("-")[1]
    return trace_id, gateway_dir, payments_dir, headers


def test_reconstruct_joins_services_by_trace_id(tmp_path: Path) -> None:
    trace_id, gateway_dir, payments_dir, headers = two_services(tmp_path)
    story = reconstruct(trace_id, gateway_dir, payments_dir)
    assert story["trace_id"] == trace_id
    services = [t["service"] for t in story["service_touchpoints"]]
    assert services == ["gateway", "payments"]
    assert sum(t["events"] for t in story["service_touchpoints"]) == len(story["timeline"])
    assert {e["service"] for e in story["timeline"]} == {"gateway", "payments"}
    times = [e["time"] for e in story["timeline"]]
    assert times == sorted(times)

    (root,) = story["call_tree"]  # one tree: the payments run hangs under the gateway's tool
    assert root["service"] == "gateway" and root["action"] == "LangGraph"
    tool_span = headers[0].split("-")[2]

    def find(node: dict[str, Any], span_id: str) -> dict[str, Any] | None:
        if node["span_id"] == span_id:
            return node
        return next((f for c in node["children"] if (f := find(c, span_id))), None)

    tool_node = find(root, tool_span)
    assert tool_node is not None and tool_node["action"] == "ask_payments"
    assert [c["service"] for c in tool_node["children"]] == ["payments"]

    decisions = story["ai_decisions"]
    assert len(decisions) == 3  # two gateway LLM calls, one payments LLM call
    assert decisions[0]["tools_chosen"] == [{"name": "ask_payments", "id": "call_g"}]
    assert [d["agent"] for d in decisions] == ["agent", "agent", "agent"]
    assert story["total_duration_ms"] > 0
    assert story["open_tool_calls"] == []
    # the same trace read from one service alone is a part of the story
    alone = reconstruct(trace_id, gateway_dir)
    assert [t["service"] for t in alone["service_touchpoints"]] == ["gateway"]
    with pytest.raises(TraceNotFoundError):
        reconstruct("0" * 32, gateway_dir, payments_dir)


def test_feedback_joins_the_trace_and_the_chain(tmp_path: Path) -> None:
    chain_dir = tmp_path / "audit"
    memory = MemoryExporter()
    # a 0 % success rate: the trace itself is sampled out, what a person said about it is not
    config = fast_config(debug=False, sampling=SamplingPolicy(success_rate=0.0))
    audit = AuditCallbackHandler(exporters=[memory, AuditLogExporter(chain_dir)], config=config)
    seen: list[str] = []

    @tool
    def balance(account: str) -> str:
        """Read a balance."""
        seen.append(str(current_traceparent()).split("-")[1])
        return "20"

    try:
        react_agent([tool_call("balance", {"account": "a"}, "c1"), AIMessage("It is 20.")],
                    tools=[balance]).invoke({"messages": [HumanMessage("balance?")]},
                                            config={"callbacks": [audit]})
        assert audit.flush(10)
        assert memory.events == []
        (trace_id,) = seen
        event = record_feedback(trace_id, score=0.0, label="wrong",
                                comment="mail me at maria.lopez@example.com", by="ana@bank",
                                span_id="cd" * 8, handler=audit)
        record_feedback("ef" * 16, score=1, by="evaluator:faithfulness", handler=audit)
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    recorded = [e for e in scan(chain_dir)]
    assert [e.event_type for e in recorded] == ["feedback", "feedback"]
    first = recorded[0]
    assert first.event_id == event.event_id and first.trace_id == trace_id
    assert first.parent_span_id == "cd" * 8 and first.data["about_span_id"] == "cd" * 8
    assert (first.data["score"], first.data["label"], first.data["by"]) == (0.0, "wrong",
                                                                            "ana@bank")
    assert "maria.lopez@example.com" not in json.dumps(first.data)  # sanitized like the rest
    assert verify(chain_dir).ok


def test_feedback_on_a_recorded_decision_is_in_its_reconstruction(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    audit = AuditCallbackHandler(exporters=[JsonlExporter(logs)], config=fast_config())
    try:
        react_agent([AIMessage("42")]).invoke({"messages": [HumanMessage("answer?")]},
                                              config={"callbacks": [audit]})
        assert audit.flush(10)
        (llm,) = [e for e in scan(logs) if e.event_type == "llm.invoke"]
        record_feedback(llm.trace_id, score=0.9, label="helpful", span_id=llm.span_id,
                        by="customer-1")  # through the default handler
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    story = reconstruct(llm.trace_id, logs)
    assert [f["label"] for f in story["feedback"]] == ["helpful"]
    (decision,) = story["ai_decisions"]
    assert [(f["score"], f["by"]) for f in decision["feedback"]] == [(0.9, "customer-1")]


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"trace_id": "xyz", "score": 1}, "trace_id"),
    ({"trace_id": "ab" * 16, "score": 1, "span_id": "nope"}, "span_id"),
    ({"trace_id": "ab" * 16}, "score, label or comment"),
    ({"trace_id": "ab" * 16, "score": "high"}, "score"),
])
def test_feedback_mistakes_fail_naming_the_argument(kwargs: dict[str, Any], named: str,
                                                    handler: AuditCallbackHandler) -> None:
    with pytest.raises(ConfigError, match=named):
        record_feedback(**kwargs, handler=handler)


def test_show_with_several_directories_reconstructs(tmp_path: Path, capsys: Any) -> None:
    from llm_audit_langchain.inspect.cli import main as cli_main

    trace_id, gateway_dir, payments_dir, _ = two_services(tmp_path)
    assert cli_main(["show", trace_id, "--dir", str(gateway_dir), "--dir",
                     str(payments_dir)]) == 0
    text = capsys.readouterr().out
    assert "gateway:" in text and "payments:" in text and "ask_payments" in text
    assert cli_main(["show", trace_id, "--json", "--dir", str(gateway_dir), "--dir",
                     str(payments_dir)]) == 0
    story = json.loads(capsys.readouterr().out)
    assert [t["service"] for t in story["service_touchpoints"]] == ["gateway", "payments"]
