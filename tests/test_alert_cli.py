"""``llm-audit slo`` over files written by real agent runs (gates a deployment with --check),
and ``llm-audit alerts export-prometheus`` checked by Prometheus's own promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from graphs import react_agent, tool_call, weather_agent
from langchain_core.messages import AIMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter
from llm_audit_langchain.inspect.cli import main
from llm_audit_langchain.testing import ScriptedChatModel


def record(directory: Path, ok: int, failing: int) -> None:
    handler = AuditCallbackHandler(exporters=[JsonlExporter(directory)],
                                   config=AuditConfig(flush_interval_ms=20, debug=True))
    for _ in range(ok):
        weather_agent().invoke({"messages": [("user", "weather in Paris?")]},
                               config={"callbacks": [handler]})
    broken = ScriptedChatModel(responses=[AIMessage("never")],
                               fail_on={0: RuntimeError("provider unavailable")})
    for _ in range(failing):
        with pytest.raises(RuntimeError):
            broken.invoke("hi", config={"callbacks": [handler]})
    react_agent([tool_call("get_weather", {"city": "Atlantis"}, "c1"), AIMessage("Sorry.")]
                ).invoke({"messages": [("user", "weather in Atlantis?")]},
                         config={"callbacks": [handler]})
    assert handler.shutdown(timeout=10)


def test_slo_reports_each_objective_and_check_names_the_breach(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record(tmp_path, ok=10, failing=1)
    assert main(["slo", "--dir", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    slos = {s["slo"]: s for s in report["slos"]}
    assert set(slos) == {"p95_latency", "error_rate", "timeout_rate", "tool_failure_rate",
                         "retry_ratio"}
    errors = slos["error_rate"]
    # 12 requests: ten weather runs, the failing call, the Atlantis run
    assert errors["total"] == 12 and errors["bad"] == 1
    assert errors["ok"] is False and errors["budget_left"] < 0
    assert set(errors["burn_rate"]) == {"5m", "1h", "6h"}
    tools = slos["tool_failure_rate"]
    assert tools["bad"] == 1 and tools["ok"] is False  # Atlantis
    assert slos["timeout_rate"]["budget_left"] == 1.0
    assert main(["slo", "--dir", str(tmp_path), "--check"]) == 1
    captured = capsys.readouterr()
    assert "error_rate" in captured.out and "BREACHED" in captured.out
    assert captured.err.startswith("llm-audit: SLO breached: error_rate (8.33% > 2.00%)")


def test_slo_check_passes_on_healthy_traffic(tmp_path: Path) -> None:
    handler = AuditCallbackHandler(exporters=[JsonlExporter(tmp_path)],
                                   config=AuditConfig(flush_interval_ms=20, debug=True))
    for _ in range(3):
        weather_agent().invoke({"messages": [("user", "weather in Paris?")]},
                               config={"callbacks": [handler]})
    handler.shutdown(timeout=10)
    script = Path(sys.executable).parent / "llm-audit"
    done = subprocess.run([str(script), "slo", "--dir", str(tmp_path), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "error_rate" in done.stdout and "BREACHED" not in done.stdout


def test_slo_on_a_missing_or_empty_directory_exits_2(tmp_path: Path) -> None:
    assert main(["slo", "--dir", str(tmp_path / "nope")]) == 2
    assert main(["slo", "--dir", str(tmp_path)]) == 2


def test_export_prometheus_passes_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "error_rate"\nmetric = "error_rate"\nthreshold = 0.1\n'
                     'window = "10m"\nfor = "2m"\nlabels = { team = "agents" }\n')
    output = tmp_path / "llm-audit.rules.yml"
    assert main(["alerts", "export-prometheus", "--rules", str(rules), "-o", str(output)]) == 0
    text = output.read_text()
    assert 'sum(rate(agent_runs_total{llm_audit_status=\\"error\\"}[10m]))' in text
    assert "histogram_quantile(0.95, sum by (le) (rate(agent_run_latency_milliseconds_bucket" \
        in text
    assert "#   user_daily_cost_budget" in text  # named as not expressible in the metrics
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus); the file was "
                    "written but not checked")
    checked = subprocess.run([promtool, "check", "rules", str(output)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 17 rules found" in checked.stdout


def test_slo_weights_sampled_traces_by_their_keep_rate(tmp_path: Path) -> None:
    """A kept normal trace stands for 1/rate traces (the sampler records the rate on the root)."""
    from llm_audit_langchain.inspect.cli.slo import measure_files
    from llm_audit_langchain.replay.reading import ScanStats

    record(tmp_path, ok=1, failing=1)
    lines = []
    marked = False
    for file in tmp_path.glob("*.jsonl"):
        for line in file.read_text().splitlines():
            event = json.loads(line)
            if event["data"].get("trace_root") and event["status"] == "ok" and not marked:
                event["data"]["sampling"] = {"reason": "rate", "rate": 0.1}  # the weather run
                marked = True
            lines.append(json.dumps(event))
        file.write_text("\n".join(lines) + "\n")
    measured = measure_files(str(tmp_path), None, ScanStats())
    assert measured is not None
    windows, _, last = measured
    assert windows.total("requests", last, 86_400) == pytest.approx(12)  # 10 + 1 + 1
    assert windows.total("errors", last, 86_400) == 1
