"""``llm-audit`` from a new user's side (the real console script in a subprocess): finding a
trace, the same ``--dir`` everywhere, ``--version``, ``--json`` on every command, verify's exit
codes and the demo's counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import react_agent, tool_call
from langchain_core.messages import AIMessage

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter
from llm_audit_langchain.audit import AuditLogExporter

LLM_AUDIT = str(Path(sys.executable).with_name("llm-audit"))
EVERY_COMMAND = ("traces", "tail", "show", "verify", "stats", "replay", "schema")


def llm_audit(*args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    return subprocess.run([LLM_AUDIT, *args], capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})}, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three runs in logs/: ana on thread t-1 (ok), bob on thread t-2 (ok), ana on t-3 (a tool
    error the graph raises)."""
    base = tmp_path_factory.mktemp("traces")
    handler = AuditCallbackHandler([JsonlExporter(base / "logs")], config=fast_config())
    plans = [("ana", "t-1", "Paris", False), ("bob", "t-2", "Lima", False),
             ("ana", "t-3", "Atlantis", True)]
    for user, thread, city, fails in plans:
        graph = react_agent([tool_call("get_weather", {"city": city}, f"call_{city}"),
                             AIMessage(f"Sunny in {city}.")], handle_tool_errors=not fails)
        try:
            graph.invoke({"messages": [("user", f"Weather in {city}?")]},
                         config={"callbacks": [handler], "metadata": {"user_id": user},
                                 "configurable": {"thread_id": thread}})
        except ValueError:
            assert fails
    handler.shutdown(timeout=10)
    return {"base": base, "logs": base / "logs"}


def _listed(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def test_traces_lists_one_line_per_run_oldest_first(runs: dict[str, Any]) -> None:
    result = llm_audit("traces", "--dir", str(runs["logs"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4  # a header and three runs
    assert "ana" in lines[1] and "t-1" in lines[1] and "Weather in Paris?" in lines[1]
    assert " ok " in lines[1] and " ms " in lines[1]
    assert "bob" in lines[2] and "t-2" in lines[2]
    assert "error" in lines[3] and "Weather in Atlantis?" in lines[3]


@pytest.mark.parametrize("options,inputs", [
    (["--user", "ana"], ["Weather in Paris?", "Weather in Atlantis?"]),
    (["--thread", "t-2"], ["Weather in Lima?"]),
    (["--status", "error"], ["Weather in Atlantis?"]),
    (["--user", "ana", "--status", "ok"], ["Weather in Paris?"]),
    (["--since", "2h"], ["Weather in Paris?", "Weather in Lima?", "Weather in Atlantis?"]),
    (["--until", "2001-01-01"], []),
    (["--model", "scripted"], ["Weather in Paris?", "Weather in Lima?", "Weather in Atlantis?"]),
    (["--limit", "1"], ["Weather in Atlantis?"]),
])
def test_traces_filters(runs: dict[str, Any], options: list[str], inputs: list[str]) -> None:
    listed = _listed(llm_audit("traces", "--dir", str(runs["logs"]), "--json", *options))
    assert [t["input"] for t in listed] == inputs


def test_a_cut_list_says_so_on_stderr(runs: dict[str, Any]) -> None:
    """``--limit`` (50 by default) must not look like everything: counting lines would lie."""
    cut = llm_audit("traces", "--dir", str(runs["logs"]), "--limit", "2")
    assert len(cut.stdout.splitlines()) == 3  # a header and two runs
    assert "2 most recent of 3 matching traces" in cut.stderr and "--limit" in cut.stderr
    whole = llm_audit("traces", "--dir", str(runs["logs"]))
    assert whole.returncode == 0 and whole.stderr == ""


def test_traces_json_has_what_a_script_needs(runs: dict[str, Any]) -> None:
    first = _listed(llm_audit("traces", "--dir", str(runs["logs"]), "--json"))[0]
    assert first["user_id"] == "ana" and first["thread_id"] == "t-1"
    assert first["status"] == "ok" and first["answer"] == "Sunny in Paris."
    assert len(first["trace_id"]) == 32 and first["latency_ms"] > 0


def test_a_bad_time_is_a_clear_error(runs: dict[str, Any]) -> None:
    result = llm_audit("traces", "--dir", str(runs["logs"]), "--since", "yesterday-ish")
    assert result.returncode == 2 and "15m, 2h, 7d" in result.stderr


def test_show_io_prints_the_input_the_answer_the_user_and_the_thread(
        runs: dict[str, Any]) -> None:
    [paris] = _listed(llm_audit("traces", "--dir", str(runs["logs"]), "--json",
                                "--thread", "t-1"))
    shown = llm_audit("show", paris["trace_id"][:10], "--dir", str(runs["logs"]), "--io")
    assert shown.returncode == 0, shown.stderr
    assert "input: Weather in Paris?" in shown.stdout
    assert "answer: Sunny in Paris." in shown.stdout
    assert "user ana" in shown.stdout and "thread t-1" in shown.stdout


def test_tail_filters_by_user_thread_and_time(runs: dict[str, Any]) -> None:
    bob = llm_audit("tail", "--dir", str(runs["logs"]), "--once", "--json", "--user", "bob")
    assert bob.returncode == 0, bob.stderr
    events = [json.loads(line) for line in bob.stdout.splitlines()]
    assert events and len({e["trace_id"] for e in events}) == 1
    thread = llm_audit("tail", "--dir", str(runs["logs"]), "--once", "--json", "--thread", "t-3",
                       "--type", "tool.*")
    assert [json.loads(line)["event_type"] for line in thread.stdout.splitlines()] == [
        "tool.selection", "tool.call", "tool.error"]
    old = llm_audit("tail", "--dir", str(runs["logs"]), "--once", "--until", "2001-01-01")
    assert old.returncode == 0 and old.stdout == ""


@pytest.mark.parametrize("command", [["traces"], ["tail", "--once"], ["stats"], ["verify"]])
def test_every_command_reads_audit_log_dir_by_default(runs: dict[str, Any],
                                                      command: list[str]) -> None:
    result = llm_audit(*command, "--json", cwd=runs["base"],
                       env={"AUDIT_LOG_DIR": str(runs["logs"])})
    if command == ["verify"]:  # the JSONL log has no chain files: the hint names the directory
        assert result.returncode == 2 and str(runs["logs"]) in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()


@pytest.mark.parametrize("command", [["traces"], ["tail", "--once"], ["stats"]])
def test_without_audit_log_dir_every_command_reads_logs(runs: dict[str, Any],
                                                        command: list[str]) -> None:
    result = llm_audit(*command, "--json", cwd=runs["base"])
    assert result.returncode == 0, result.stderr


def test_the_older_positional_directory_is_still_accepted(runs: dict[str, Any]) -> None:
    assert llm_audit("tail", str(runs["logs"]), "--once").returncode == 0
    assert llm_audit("stats", str(runs["logs"]), "--json").returncode == 0


def test_version_and_help() -> None:
    result = llm_audit("--version")
    assert result.returncode == 0 and result.stdout.startswith("llm-audit ")
    top = llm_audit("--help")
    assert top.returncode == 0 and "traces" in top.stdout
    assert "``" not in top.stdout  # docstring markup does not leak into help


@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_every_command_takes_json(command: str) -> None:
    result = llm_audit(command, "--help")
    assert result.returncode == 0 and "--json" in result.stdout
    assert "``" not in result.stdout  # no markup leaking into help text


def test_schema_json_prints_the_schema() -> None:
    result = llm_audit("schema", "--json")
    assert result.returncode == 0 and "AuditEvent" in json.loads(result.stdout)["title"]


def test_verify_without_chain_files_exits_2_with_a_hint(tmp_path: Path) -> None:
    result = llm_audit("verify", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert "no audit-chain-*.jsonl files" in result.stderr and "AuditLogExporter" in result.stderr


def test_a_keyed_chain_verified_without_a_key_says_key_required(tmp_path: Path) -> None:
    handler = AuditCallbackHandler([AuditLogExporter(tmp_path, key="s3cret")],
                                   config=fast_config())
    react_agent(responder=lambda _: AIMessage("hi")).invoke(
        {"messages": [("user", "hi")]}, config={"callbacks": [handler]})
    handler.shutdown(timeout=10)
    result = llm_audit("verify", "--dir", str(tmp_path))
    assert result.returncode == 2 and "key required" in result.stderr
    assert "BROKEN" not in result.stdout
    assert llm_audit("verify", "--dir", str(tmp_path), "--key", "s3cret").returncode == 0


def test_the_demo_counts_one_retry_as_one_retry(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "llm_audit_langchain.demo", "--log-dir",
                    str(tmp_path)], capture_output=True, text=True, check=True, timeout=120,
                   cwd=tmp_path)
    [log] = tmp_path.glob("audit-*.jsonl")
    counts = Counter(json.loads(line)["event_type"] for line in log.read_text().splitlines())
    assert counts == {"chain.end": 5, "chain.error": 1, "agent.retry": 1, "llm.invoke": 2,
                      "agent.decision": 2, "prompt.efficiency": 2, "agent.route": 2,
                      "tool.selection": 1, "tool.call": 2, "tool.result": 1, "tool.error": 1}
    result = llm_audit("stats", "--dir", str(tmp_path), "--json")
    report = json.loads(result.stdout)
    assert report["requests"] == 1
    assert report["rates"]["retry_ratio"] == 1.0  # one request, one retry
    assert report["rates"]["tool_failure_rate"] == 0.5  # one of two tool runs failed
    assert report["rates"]["error_rate"] == 0.0  # the retry and the tool error were recovered
    text = llm_audit("stats", "--dir", str(tmp_path)).stdout
    assert "retry_ratio" in text and "seed" not in text


def test_tail_once_honours_lines(runs: dict[str, Any]) -> None:
    every = llm_audit("tail", "--dir", str(runs["logs"]), "--once", "--json")
    last3 = llm_audit("tail", "--dir", str(runs["logs"]), "--once", "--json", "-n", "3")
    assert every.returncode == 0 and last3.returncode == 0
    assert len(every.stdout.splitlines()) > 3
    assert last3.stdout.splitlines() == every.stdout.splitlines()[-3:]


def test_a_dir_that_is_a_file_is_an_error_not_an_empty_answer(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    for command in ("traces", "stats", "tail"):
        args = [command, "--dir", str(afile)] + (["--once"] if command == "tail" else [])
        result = llm_audit(*args)
        assert result.returncode == 2, (command, result.stdout)
        assert "not a directory" in result.stderr


def test_a_start_on_a_whole_second_keeps_the_width_of_the_others() -> None:
    """``isoformat`` drops a zero fraction: a store keeping milliseconds would then list a
    differently shaped time than the files for the same run (a run starting at .000xxx)."""
    from llm_audit_langchain.inspect.trace_list import summarize

    record = {"trace_id": "1" * 32, "event_type": "chain.end", "status": "ok",
              "start_time": "2026-12-02T07:44:04Z", "timestamp": "2026-12-02T07:44:05Z",
              "data": {"trace_root": True}}
    (summary,) = summarize([record])
    assert summary.as_dict()["start"] == "2026-12-02T07:44:04.000000+00:00"
