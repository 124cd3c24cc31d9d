"""Secrets in names never reach a sink: run, node, tool and custom-event names, request paths,
and the "trusted" data fields that repeat them (tools offered, graph coordinates), in every
sink (JSONL, stdout, the audit chain, OTLP span names and attributes, metrics attributes).

A PEM private key is found in a payload, an error message and a traceback; an AWS key glued
after an underscore (``notify_x_AKIA...``) is found in a tool name.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from conftest import fast_config
from graphs import AgentState
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_audit_langchain import (
    AuditCallbackHandler,
    JsonlExporter,
    MemoryExporter,
    StdoutExporter,
)
from llm_audit_langchain.audit import AuditLogExporter
from llm_audit_langchain.otel import AuditMetrics, OtlpExporter
from llm_audit_langchain.privacy.sanitizer import Sanitizer
from llm_audit_langchain.testing import ScriptedChatModel

AWS_KEY = "AKIAQX3J7ZT5MBW2NR4K"
CARD = "4242 4242 4242 4242"
EMAIL = "ana.garcia@example.com"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFuYSJ9."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM_BODY = ("MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onL"
            "Rnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgi"
            "zskuemMghRniWaoLcyehkd3qqGElvW")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       + "\n".join(PEM_BODY[i:i + 64] for i in range(0, len(PEM_BODY), 64))
       + "\n-----END RSA PRIVATE KEY-----")
# What must appear nowhere: each secret, and a piece of it long enough to identify it.
SEEDS = {"aws": AWS_KEY, "card": CARD, "email": EMAIL, "jwt": JWT[:40],
         "pem": PEM_BODY[:48], "pem_line2": PEM_BODY[64:100]}

TOOL_NAME = f"notify_x_{AWS_KEY}"
NODE_NAME = f"kyc_{EMAIL}"
RUN_NAME = f"refund {CARD}"
CUSTOM_NAME = f"kyc.{EMAIL}"


def _leaky_graph() -> Any:
    def notify(text: str) -> str:
        raise ValueError(f"could not notify with key {PEM}")

    leaky_tool = StructuredTool.from_function(notify, name=TOOL_NAME,
                                              description="Notify someone.")
    model = ScriptedChatModel(responses=[
        AIMessage("", tool_calls=[{"name": TOOL_NAME, "args": {"text": "hi"}, "id": "c1"}]),
        AIMessage("done"),
    ]).bind_tools([leaky_tool])

    def agent(state: AgentState) -> dict[str, Any]:
        dispatch_custom_event(CUSTOM_NAME, {"step": 1})
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: AgentState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node(NODE_NAME, agent)
    builder.add_node("tools", ToolNode([leaky_tool], handle_tool_errors=True))
    builder.add_edge(START, NODE_NAME)
    builder.add_conditional_edges(NODE_NAME, route, ["tools", END])
    builder.add_edge("tools", NODE_NAME)
    return builder.compile().with_config(run_name=RUN_NAME)


def _leaks(text: str) -> list[str]:
    return [name for name, seed in SEEDS.items() if seed in text]


def test_secrets_in_names_and_trusted_fields_reach_no_sink(tmp_path: Path) -> None:
    memory = MemoryExporter()
    spans = InMemorySpanExporter()
    stdout = io.StringIO()
    metrics = AuditMetrics(otlp=False)
    handler = AuditCallbackHandler(
        exporters=[memory, JsonlExporter(tmp_path / "jsonl"),
                   StdoutExporter(stdout, colour=False),
                   AuditLogExporter(tmp_path / "chain"),
                   OtlpExporter(spans, capture_content=True)],
        config=fast_config(), observers=[metrics.observe])
    metrics.bind(handler)
    try:
        _leaky_graph().invoke({"messages": [HumanMessage(f"my key is {PEM}")]},
                              config={"callbacks": [handler]})
        assert handler.flush(10)
    finally:
        handler.shutdown(10)
    events = memory.events
    assert any(e.event_type == "tool.error" for e in events)
    assert any(e.event_type == "custom" for e in events)
    # The run happened with the names as given: they were redacted, not lost.
    assert any("[REDACTED_AWS_ACCESS_KEY]" in e.action for e in events)
    assert any("[REDACTED_EMAIL]" in e.agent for e in events)

    jsonl = "".join(p.read_text() for p in (tmp_path / "jsonl").glob("*.jsonl"))
    chain = "".join(p.read_text() for p in (tmp_path / "chain").glob("*.jsonl"))
    span_text = json.dumps([[s.name, dict(s.attributes or {}),
                             [[e.name, dict(e.attributes or {})] for e in s.events]]
                            for s in spans.get_finished_spans()], default=str)
    metric_text = json.dumps(metrics.snapshot(), default=str)
    metrics.shutdown()
    leaks = {sink: _leaks(text) for sink, text in
             {"jsonl": jsonl, "chain": chain, "stdout": stdout.getvalue(), "otlp": span_text,
              "metrics": metric_text}.items()}
    assert leaks == {sink: [] for sink in leaks}
    assert "gen_ai.tool.name" in span_text and "llm_audit.tools_offered" in span_text


def test_request_paths_and_actions_are_redacted_through_the_middleware() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from llm_audit_langchain.capture.middleware import AuditMiddleware

    memory = MemoryExporter()
    spans = InMemorySpanExporter()
    handler = AuditCallbackHandler(exporters=[memory, OtlpExporter(spans)], config=fast_config())

    async def reset(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/users/{user}/reset/{token}", reset, methods=["POST"])])
    app.add_middleware(AuditMiddleware, handler=handler)
    try:
        with TestClient(app) as client:
            client.post(f"/users/{EMAIL}/reset/{JWT}")
        assert handler.flush(5)
    finally:
        handler.shutdown(5)
    text = json.dumps([e.model_dump(mode="json") for e in memory.events])
    span_text = json.dumps([[s.name, dict(s.attributes or {})]
                            for s in spans.get_finished_spans()], default=str)
    assert {e.event_type for e in memory.events} >= {"request.start", "request.end"}
    assert _leaks(text) == [] and _leaks(span_text) == []


@pytest.mark.parametrize("text", [
    f"notify_x_{AWS_KEY}", f"{AWS_KEY}_suffix", f"x-{AWS_KEY}", f"'{AWS_KEY}'",
])
def test_aws_key_glued_to_a_name_is_found(text: str) -> None:
    assert AWS_KEY not in Sanitizer().sanitize_text(text)


@pytest.mark.parametrize("text", [
    PEM,  # as written
    repr(PEM),  # as an error message quoting it shows it (escaped newlines)
    PEM.replace("\n", "\r\n"),
    PEM.split("-----END")[0][:120],  # cut before its end line (a truncated message)
    "-----BEGIN PRIVATE KEY-----\n" + PEM_BODY + "\n-----END PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\n" + PEM_BODY + "\n-----END OPENSSH PRIVATE KEY-----",
])
def test_pem_private_key_bodies_are_redacted(text: str) -> None:
    redacted = Sanitizer().sanitize_text(f"config: {text} end")
    assert _leaks(redacted) == [], redacted
    assert "[REDACTED_PRIVATE_KEY]" in redacted
    assert redacted.startswith("config: ")


def test_public_keys_and_certificates_are_kept() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
    assert Sanitizer().sanitize_text(cert) == cert


@pytest.mark.parametrize("mode", ["none", "redacted"])
def test_names_are_redacted_but_kept_in_every_mode_but_full(mode: str) -> None:
    sanitizer = Sanitizer(mode)  # type: ignore[arg-type]
    assert sanitizer.sanitize_name("get_weather") == "get_weather"
    assert sanitizer.sanitize_name(RUN_NAME) == "refund [REDACTED_CARD]"
    assert sanitizer.sanitize_name(RUN_NAME) == "refund [REDACTED_CARD]"  # cached, same answer
    assert Sanitizer("full").sanitize_name(RUN_NAME) == RUN_NAME
