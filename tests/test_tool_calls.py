"""Write-ahead evidence of intent: ``tool.call`` is recorded when a tool starts, before it can have
any effect; side-effecting tools can wait until that record is on disk in the audit chain; a
process killed inside such a tool leaves its call in the chain, listed by ``open-calls``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conftest import fast_config
from graphs import react_agent, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    AuditEvent,
    AuditLogExporter,
    MemoryExporter,
    SamplingPolicy,
)
from llm_audit_langchain.audit import verify
from llm_audit_langchain.inspect.cli import main as cli_main
from llm_audit_langchain.replay.reading import scan

TESTS = Path(__file__).resolve().parent


def run_agent(handler: AuditCallbackHandler, tools: list[Any], name: str,
              args: dict[str, Any]) -> dict[str, Any]:
    graph = react_agent([tool_call(name, args, "call_1"), AIMessage("done")], tools=tools)
    result: dict[str, Any] = graph.invoke({"messages": [HumanMessage("go")]},
                                          config={"callbacks": [handler]})
    return result


def by_type(events: list[AuditEvent], kind: str) -> list[AuditEvent]:
    return [e for e in events if e.event_type == kind]


def test_tool_call_is_recorded_at_start_with_sanitized_args_and_the_selecting_llm(
        handler: AuditCallbackHandler, memory: MemoryExporter) -> None:
    @tool
    def email_customer(address: str, body: str) -> str:
        """Send an email."""
        return "sent"

    run_agent(handler, [email_customer], "email_customer",
              {"address": "maria.lopez@example.com", "body": "your card 4111 1111 1111 1111"})
    assert handler.flush(10)
    events = memory.events
    (call,) = by_type(events, "tool.call")
    (result,) = by_type(events, "tool.result")
    (selection,) = by_type(events, "tool.selection")
    llm = next(e for e in by_type(events, "llm.invoke") if e.span_id == selection.span_id)
    assert call.action == "email_customer" and call.status == "ok"
    assert call.start_time is None and call.span_id == result.span_id  # a point in the tool span
    assert call.data["tool_call_id"] == "call_1"
    assert call.data["selected_by_span_id"] == llm.span_id
    text = json.dumps(call.data)
    assert "maria.lopez@example.com" not in text and "4111 1111 1111 1111" not in text
    assert set(call.data["input"]) == {"address", "body"}
    assert "write_ahead" not in call.data
    assert events.index(call) < events.index(result)
    assert call.timestamp <= result.timestamp


def test_tool_call_of_a_sampled_out_trace_is_dropped_with_its_trace(
        memory: MemoryExporter) -> None:
    config = fast_config(debug=False, sampling=SamplingPolicy(success_rate=0.0))
    audit = AuditCallbackHandler(exporters=[memory], config=config)
    try:
        run_agent(audit, [_lookup], "_lookup", {"key": "a"})
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    assert memory.events == []


@tool
def _lookup(key: str) -> str:
    """Read-only lookup."""
    return key.upper()


def test_write_ahead_tool_call_is_in_the_chain_before_the_tool_runs(tmp_path: Path) -> None:
    chain_dir = tmp_path / "audit"
    seen_by_tool: list[list[str]] = []

    @tool
    def transfer(amount: int) -> str:
        """Move money."""
        seen_by_tool.append([e.event_type.value for e in scan(chain_dir)])
        return "moved"

    transfer.metadata = {"audit": "write_ahead"}
    config = fast_config(debug=False, write_ahead_timeout_s=10.0, flush_interval_ms=5000,
                         sampling=SamplingPolicy(success_rate=0.0))
    audit = AuditCallbackHandler(exporters=[AuditLogExporter(chain_dir)], config=config)
    try:
        run_agent(audit, [transfer], "transfer", {"amount": 5})
        assert audit.flush(10)
        assert audit.stats()["write_ahead_timeouts"] == 0
    finally:
        audit.shutdown(5)
    assert seen_by_tool == [["tool.call"]]  # on disk, alone: the rest of the trace is held
    recorded = list(scan(chain_dir))
    # a write-ahead call keeps its trace even at a 0 % success sample rate: the result follows
    assert [e.event_type.value for e in recorded].count("tool.result") == 1
    (call,) = by_type(recorded, "tool.call")
    assert call.data["write_ahead"] is True and call.data["input"] == {"amount": 5}
    assert verify(chain_dir).ok


def test_write_ahead_by_config_list_without_waiting(tmp_path: Path) -> None:
    memory = MemoryExporter()
    config = fast_config(write_ahead_tools="_lookup, other")
    audit = AuditCallbackHandler(exporters=[memory], config=config)
    try:
        run_agent(audit, [_lookup], "_lookup", {"key": "a"})
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    (call,) = by_type(memory.events, "tool.call")
    assert call.data["write_ahead"] is True
    assert AuditConfig(write_ahead_tools=" a ,b,, ").write_ahead_names() == {"a", "b"}


def test_write_ahead_by_tag(handler: AuditCallbackHandler, memory: MemoryExporter) -> None:
    @tool
    def close_account(account: str) -> str:
        """Close an account."""
        return "closed"

    close_account.tags = ["audit:write_ahead"]
    run_agent(handler, [close_account], "close_account", {"account": "x"})
    assert handler.flush(10)
    (call,) = by_type(memory.events, "tool.call")
    assert call.data["write_ahead"] is True


CRASHING_AGENT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from graphs import react_agent, tool_call
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.tools import tool
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, AuditLogExporter

    @tool
    def wire_funds(account: str, amount: int) -> str:
        \"\"\"Wire money (the process dies half-way).\"\"\"
        os.kill(os.getpid(), signal.SIGKILL)
        return "never"

    wire_funds.metadata = {{"audit": "write_ahead"}}
    config = AuditConfig(exporter="none", write_ahead_timeout_s=10.0)
    handler = AuditCallbackHandler(exporters=[AuditLogExporter({chain!r})], config=config)
    graph = react_agent([tool_call("wire_funds", {{"account": "ES99", "amount": 7000}}, "call_9"),
                         AIMessage("done")], tools=[wire_funds])
    graph.invoke({{"messages": [HumanMessage("wire it")]}}, config={{"callbacks": [handler]}})
""")


def test_sigkill_inside_a_write_ahead_tool_leaves_the_call_and_open_calls_lists_it(
        tmp_path: Path, capsys: Any) -> None:
    chain_dir = tmp_path / "audit"
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_AGENT.format(tests=str(TESTS), chain=str(chain_dir)))
    env = {**os.environ, "AUDIT_EXPORTER": "none", "SUCCESS_SAMPLE_RATE": "0"}
    process = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                             timeout=120, check=False)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]

    recorded = list(scan(chain_dir))
    calls = by_type(recorded, "tool.call")
    assert [(c.action, c.data["tool_call_id"]) for c in calls] == [("wire_funds", "call_9")]
    assert by_type(recorded, "tool.result") == [] and by_type(recorded, "tool.error") == []
    assert verify(chain_dir).ok  # a torn tail, if any, is the documented allowance

    assert cli_main(["open-calls", "--json", "--dir", str(chain_dir)]) == 1
    listed = json.loads(capsys.readouterr().out)["open_calls"]
    assert [(c["tool"], c["tool_call_id"], c["write_ahead"]) for c in listed] == [
        ("wire_funds", "call_9", True)]
    assert cli_main(["open-calls", str(chain_dir)]) == 1
    assert "wire_funds (write-ahead)" in capsys.readouterr().out


def test_open_calls_is_clean_when_every_call_has_a_result(tmp_path: Path, capsys: Any) -> None:
    chain_dir = tmp_path / "audit"
    audit = AuditCallbackHandler(exporters=[AuditLogExporter(chain_dir)], config=fast_config())
    try:
        run_agent(audit, [_lookup], "_lookup", {"key": "a"})
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    assert cli_main(["open-calls", str(chain_dir)]) == 0
    assert "no open tool calls" in capsys.readouterr().out
    assert cli_main(["open-calls", str(tmp_path / "missing")]) == 2


def test_write_ahead_wait_is_bounded_and_counted_when_the_chain_is_down() -> None:
    from fault_exporters import AlwaysFailing

    class ChainDown(AlwaysFailing):
        durable = True  # a durable sink that cannot write

    ran: list[int] = []

    @tool
    def refund(amount: int) -> str:
        """Refund money."""
        ran.append(amount)
        return "refunded"

    refund.metadata = {"audit": "write_ahead"}
    audit = AuditCallbackHandler(exporters=[ChainDown()],
                                 config=fast_config(write_ahead_timeout_s=0.2))
    try:
        result = run_agent(audit, [refund], "refund", {"amount": 3})
    finally:
        audit.shutdown(1)
    assert ran == [3] and result["messages"][-1].content == "done"  # the run is unaffected
    assert audit.stats()["write_ahead_timeouts"] == 1


def test_write_ahead_without_a_durable_exporter_does_not_wait(memory: MemoryExporter) -> None:
    audit = AuditCallbackHandler(exporters=[memory], config=fast_config(
        write_ahead_timeout_s=30.0, write_ahead_tools="_lookup"))
    try:
        run_agent(audit, [_lookup], "_lookup", {"key": "b"})
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    assert audit.stats()["write_ahead_timeouts"] == 0
    assert len(by_type(memory.events, "tool.call")) == 1
