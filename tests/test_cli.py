"""``llm-audit`` through the real console script, on JSONL and audit-chain files written by the
real handler running real LangGraph graphs."""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import AgentState, get_weather, tool_call
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter
from llm_audit_langchain.audit import AuditLogExporter
from llm_audit_langchain.replay import scan
from llm_audit_langchain.testing import ScriptedChatModel

LLM_AUDIT = str(Path(sys.executable).with_name("llm-audit"))
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def llm_audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LLM_AUDIT, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)


def priced_agent(city: str, *, fail: bool) -> Any:
    """agent ⇄ tools on a model with a known price, so the files hold real costs."""
    model = ScriptedChatModel(model_name=MODEL, provider="amazon_bedrock", responses=[
        tool_call("get_weather", {"city": city}, f"call_{city}"), AIMessage(f"Sunny in {city}.")])
    bound = model.bind_tools([get_weather])

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    def route(state: AgentState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([get_weather], handle_tool_errors=not fail))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three runs (two succeed, one tool failure that the graph raises), priced model, JSONL in
    logs/ and the hash-chained audit log in audit/."""
    base = tmp_path_factory.mktemp("cli")
    handler = AuditCallbackHandler(
        exporters=[JsonlExporter(base / "logs"), AuditLogExporter(base / "audit")],
        config=fast_config())
    for city, fail in (("Paris", False), ("Lima", False), ("Atlantis", True)):
        try:
            priced_agent(city, fail=fail).invoke(
                {"messages": [HumanMessage(f"Weather in {city}?")]},
                config={"callbacks": [handler]})
        except ValueError:
            assert fail
    assert handler.flush(timeout=10)
    handler.shutdown(timeout=5)
    events = list(scan(base / "logs"))
    roots = {e.data["inputs"]["messages"][0]["content"].split()[-1].rstrip("?")
             if "inputs" in e.data else "Atlantis": e
             for e in events if e.data.get("trace_root")}
    return {"base": base, "logs": base / "logs", "audit": base / "audit", "events": events,
            "roots": roots}


def test_show_prints_the_tree_with_decisions_and_errors(recorded: dict[str, Any]) -> None:
    failed = recorded["roots"]["Atlantis"]
    result = llm_audit("show", failed.trace_id, "--dir", str(recorded["logs"]))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"trace {failed.trace_id}  error")
    assert "tool get_weather" in out and "ERROR  ValueError: unknown city: Atlantis" in out
    assert "LLM chose get_weather(city='Atlantis')" in out
    assert "agent: routed to tools" in out
    assert "error in tool.error get_weather (tools): ValueError: unknown city: Atlantis" in out
    assert 'input: {"city": "Atlantis"}' in out
    assert "cost $0.0000" in out and f"llm {MODEL}" in out

    as_json = json.loads(llm_audit("show", failed.trace_id[:12], "--json", "--dir",
                                   str(recorded["logs"])).stdout)
    expected = [e for e in recorded["events"] if e.trace_id == failed.trace_id]
    assert len(as_json["events"]) == len(expected)
    llm = [e for e in expected if e.event_type == "llm.invoke"]
    assert as_json["totals"]["tokens_input"] == sum(e.tokens_input or 0 for e in llm)


def test_tail_once_with_filters(recorded: dict[str, Any]) -> None:
    logs = str(recorded["logs"])
    errors = llm_audit("tail", logs, "--once", "--type", "tool.*", "--status", "error")
    assert errors.returncode == 0
    lines = errors.stdout.splitlines()
    assert len(lines) == 1 and "tool.error  get_weather  error" in lines[0]
    paris = recorded["roots"]["Paris"].trace_id
    routes = llm_audit("tail", logs, "--once", "--json", "--type", "agent.route",
                       "--trace", paris[:8])
    records = [json.loads(line) for line in routes.stdout.splitlines()]
    assert [r["data"]["destination"] for r in records] == ["tools", "__end__"]
    assert {r["trace_id"] for r in records} == {paris}
    everything = llm_audit("tail", logs, "--once")
    assert len(everything.stdout.splitlines()) == len(recorded["events"])


def test_tail_follows_new_events(recorded: dict[str, Any], tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(recorded["logs"], logs)
    [log] = logs.glob("*.jsonl")
    existing = log.read_text().splitlines()
    follower = subprocess.Popen([LLM_AUDIT, "tail", str(logs), "-n", "1", "--interval", "0.05",
                                 "--json"], stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None

    def pump() -> None:
        for line in follower.stdout or ():
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        # The last existing event comes first: from then on the follower waits for new lines.
        shown = json.loads(lines.get(timeout=30))
        assert shown["event_id"] == json.loads(existing[-1])["event_id"]
        with log.open("a") as handle:  # a line written in two parts must come out once, whole
            handle.write(existing[0][:40])
            handle.flush()
            time.sleep(0.2)
            handle.write(existing[0][40:] + "\n")
        assert json.loads(lines.get(timeout=30))["event_id"] == json.loads(existing[0])["event_id"]
        assert lines.empty()
    finally:
        follower.kill()
        follower.wait(timeout=10)


def test_verify_intact_and_tampered_chains(recorded: dict[str, Any], tmp_path: Path) -> None:
    intact = llm_audit("verify", str(recorded["audit"]))
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.startswith(f"OK: {len(recorded['events'])} records")
    report = json.loads(llm_audit("verify", str(recorded["audit"]), "--json").stdout)
    assert report["ok"] is True and report["first_broken"] is None

    tampered = tmp_path / "audit"
    shutil.copytree(recorded["audit"], tampered)
    [chain] = tampered.glob("audit-chain-*.jsonl")
    lines = chain.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if "Lima" in line)
    lines[index] = lines[index].replace("Lima", "Rome")
    chain.write_text("".join(lines))
    broken = llm_audit("verify", str(tampered))
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"BROKEN: modified at {chain.name}:{index + 1}")

    beyond = len(recorded["events"]) + 5
    truncated = llm_audit("verify", str(recorded["audit"]), "--anchor", str(beyond), "--json")
    assert truncated.returncode == 1
    assert json.loads(truncated.stdout)["first_broken"]["reason"] == "truncated"
    keyed = llm_audit("verify", str(recorded["audit"]), env={"AUDIT_CHAIN_KEY": "secret"})
    assert keyed.returncode == 1 and "wrong_key" in keyed.stdout
    assert llm_audit("verify", str(recorded["audit"]), "--anchor", "x:y").returncode == 2


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_stats_json_matches_the_recorded_runs(recorded: dict[str, Any]) -> None:
    pytest.importorskip("duckdb")
    result = llm_audit("stats", str(recorded["logs"]), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    events = recorded["events"]
    llm = [e for e in events if e.event_type == "llm.invoke"]
    roots = [e for e in events if e.data.get("trace_root")]
    assert stats["requests"] == 3 and stats["scan"]["corrupt"] == 0
    [by_model] = stats["cost_by_model"]
    assert by_model["key"] == MODEL and by_model["calls"] == len(llm) == 5
    assert by_model["tokens_input"] == sum(e.tokens_input or 0 for e in llm)
    assert by_model["tokens_output"] == sum(e.tokens_output or 0 for e in llm)
    recorded_cost = sum(e.cost_usd or 0.0 for e in llm)
    assert recorded_cost > 0 and all(e.cost_usd is not None for e in llm)
    assert by_model["cost_usd"] == pytest.approx(recorded_cost)
    assert by_model["unpriced_calls"] == 0
    assert stats["total_cost_usd"] == pytest.approx(recorded_cost)
    assert [(row["key"], row["calls"]) for row in stats["cost_by_user"]] == [("(unknown)", 5)]
    assert sum(row["cost_usd"] for row in stats["cost_by_day"]) == pytest.approx(recorded_cost)
    assert {row["key"] for row in stats["cost_by_day"]} == {
        e.timestamp.strftime("%Y-%m-%d") for e in llm}
    latencies = [r.latency_ms for r in roots if r.latency_ms is not None]
    assert stats["latency_ms"]["p50"] == pytest.approx(nearest_rank(latencies, 0.5))
    assert stats["latency_ms"]["p95"] == pytest.approx(nearest_rank(latencies, 0.95))
    assert stats["rates"] == {"error_rate": pytest.approx(1 / 3), "timeout_rate": 0.0,
                              "tool_failure_rate": pytest.approx(1 / 3), "retry_ratio": 0.0}
    verdicts = {s["metric"]: s["ok"] for s in stats["slo"]}
    assert verdicts == {"p95_latency_ms": True, "error_rate": False, "timeout_rate": True,
                        "tool_failure_rate": False, "retry_ratio": True}
    text = llm_audit("stats", str(recorded["logs"]), "--check-slo")
    assert text.returncode == 1 and "error_rate" in text.stdout and "BREACHED" in text.stdout


def test_stats_without_duckdb_says_how_to_install(recorded: dict[str, Any]) -> None:
    code = ("import sys; sys.modules['duckdb'] = None\n"
            "from llm_audit_langchain.inspect.cli import main\n"
            f"sys.exit(main(['stats', {str(recorded['logs'])!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "needs DuckDB: pip install 'llm-audit-langchain[analytics]'" in result.stderr


def test_replay_prints_the_plan(recorded: dict[str, Any]) -> None:
    failed = recorded["roots"]["Atlantis"]
    result = llm_audit("replay", failed.trace_id, "--dir", str(recorded["logs"]))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "#1 agent step 1, 1 msgs → calls get_weather(city='Atlantis')" in out
    assert '#1 get_weather({"city": "Atlantis"}) → raises ValueError: unknown city: Atlantis' in out
    assert "step 1: agent → tools" in out
    assert out.rstrip().endswith("outcome: raises ValueError: unknown city: Atlantis")
    plan = json.loads(llm_audit("replay", recorded["roots"]["Paris"].trace_id, "--json",
                                "--dir", str(recorded["logs"])).stdout)
    assert [c["output"]["content"] for c in plan["llm_calls"]] == ["", "Sunny in Paris."]
    assert [r["destination"] for r in plan["routes"]] == ["tools", "__end__"]
    assert plan["error"] is None


def test_corrupt_lines_are_skipped_and_counted(recorded: dict[str, Any], tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(recorded["logs"], logs)
    [log] = logs.glob("*.jsonl")
    with log.open("a") as handle:
        handle.write('{"event_type": "llm.invoke", "trace_id": \n')  # torn
        handle.write("not json at all\n")
    paris = recorded["roots"]["Paris"].trace_id
    shown = llm_audit("show", paris, "--dir", str(logs))
    assert shown.returncode == 0 and "route agent → tools" in shown.stdout
    tailed = llm_audit("tail", str(logs), "--once")
    assert tailed.returncode == 0
    assert len(tailed.stdout.splitlines()) == len(recorded["events"])
    assert "skipped 2 corrupt line(s)" in tailed.stderr
    if pytest.importorskip("duckdb"):
        stats = json.loads(llm_audit("stats", str(logs), "--json").stdout)
        assert stats["scan"]["corrupt"] == 2 and stats["requests"] == 3


@pytest.mark.parametrize("command", [
    ["tail", "{missing}", "--once"], ["show", "0" * 32, "--dir", "{missing}"],
    ["verify", "{missing}"], ["stats", "{missing}"], ["replay", "0" * 32, "--dir", "{missing}"],
])
def test_missing_directory_is_a_clear_error(command: list[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    result = llm_audit(*[part.replace("{missing}", missing) for part in command])
    assert result.returncode == 2
    assert f"llm-audit: error: no such directory: {missing}" in result.stderr


@pytest.mark.parametrize("command", ["show", "replay"])
def test_unknown_trace_id_is_a_clear_error(command: str, recorded: dict[str, Any]) -> None:
    result = llm_audit(command, "f" * 32, "--dir", str(recorded["logs"]))
    assert result.returncode == 2
    assert f"no events for trace '{'f' * 32}'" in result.stderr


def test_schema_still_prints_the_event_schema() -> None:
    result = llm_audit("schema")
    assert result.returncode == 0 and "trace_id" in json.loads(result.stdout)["properties"]
