"""The quick start's demo and the notebook run offline and show what the README promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_prints_the_tree_and_writes_jsonl(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "llm_audit_langchain.demo", "--log-dir",
                          str(tmp_path)], capture_output=True, text=True, check=True,
                         timeout=120, cwd=tmp_path)
    text = out.stdout
    trace_id = re.search(r"^Trace ([0-9a-f]{32}) ", text, re.M).group(1)  # type: ignore[union-attr]
    assert "ConnectionError: profile service timed out" in text  # the retried step
    assert "ValueError: weather service has no station in Atlantis" in text  # handled failure
    assert "selected tools: get_weather#call_paris, get_weather#call_atlantis" in text
    assert "$" in text and "tokens" in text
    [log] = list(tmp_path.glob("audit-*.jsonl"))
    assert str(log.resolve()) in text
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and all(r["event_version"] == "3.0" for r in records)
    assert {r["trace_id"] for r in records} == {trace_id}
    assert "ana@example.com" not in log.read_text()  # the question's e-mail is redacted
    retries = [r for r in records if r["event_type"] == "agent.retry"]
    assert [r["data"]["source"] for r in retries] == ["retry_policy"]
