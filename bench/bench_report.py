"""How fast ``llm-audit report`` renders many traces (a script, not a test).

    .venv/bin/python bench/bench_report.py [--traces 1000] [--spans 3000] [--keep DIR]

Records the demo agent once through the real handler (12 spans, 18 events: a retried node, a
failed tool, two LLM calls), copies that trace N times under new W3C ids, users, threads and
start times into one JSONL file, then times reading the files (``Traces.from_jsonl``), building
the report (``render_report``) and the whole ``llm-audit report`` command. Also renders one
trace of ``--spans`` spans (the notebook view of a big trace).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import orjson
from langchain_core.messages import HumanMessage

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter
from llm_audit_langchain.demo import build_agent
from llm_audit_langchain.events import AuditEvent, event_to_dict
from llm_audit_langchain.inspect import Trace, Traces
from llm_audit_langchain.inspect.html.report import render_report


def one_recorded_trace() -> list[AuditEvent]:
    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory], config=AuditConfig(debug=True))
    build_agent().invoke({"messages": [HumanMessage("Weather in Paris and Atlantis?")],
                          "profile": {}},
                         config={"callbacks": [handler], "metadata": {"user_id": "u-0"}})
    handler.flush(timeout=10)
    handler.shutdown(timeout=5)
    return memory.events


def copy_trace(events: list[AuditEvent], index: int) -> list[AuditEvent]:
    """The same run under fresh ids, another user/thread, shifted by ``index`` minutes."""
    trace_id, span_ids = uuid4().hex, {}
    shift = timedelta(minutes=index)
    copies = []
    for event in events:
        span = span_ids.setdefault(event.span_id, uuid4().hex[:16])
        parent = (span_ids.setdefault(event.parent_span_id, uuid4().hex[:16])
                  if event.parent_span_id else None)
        data = dict(event.data)
        if data.get("run_root"):
            data["metadata"] = {"user_id": f"u-{index % 17}"}
        data["thread_id"] = f"thread-{index // 3}"
        copies.append(event.model_copy(update={
            "event_id": uuid4().hex, "trace_id": trace_id, "span_id": span,
            "parent_span_id": parent, "timestamp": event.timestamp + shift,
            "start_time": event.start_time + shift if event.start_time else None,
            "data": data}))
    return copies


def timed(label: str, func, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:8.2f} s")
    return result, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--spans", type=int, default=3000)
    parser.add_argument("--keep", type=Path, help="write the files and report here")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    recorded = one_recorded_trace()
    with open(logs / "audit-bench.jsonl", "wb") as out:
        for index in range(args.traces):
            for event in copy_trace(recorded, index):
                out.write(orjson.dumps(event_to_dict(event)) + b"\n")
    size = (logs / "audit-bench.jsonl").stat().st_size
    print(f"{args.traces} traces, {args.traces * len(recorded)} events, {size / 1e6:.1f} MB")
    traces, _read_s = timed("read (Traces.from_jsonl)", Traces.from_jsonl, logs)
    html, render_s = timed("render (render_report)", render_report, traces)
    print(f"report size {len(html) / 1e6:.1f} MB; per trace {render_s / len(traces) * 1000:.2f} ms")
    cli = str(Path(sys.executable).with_name("llm-audit"))
    _, _cli_s = timed("llm-audit report (whole command)", subprocess.run,
                     [cli, "report", "--dir", str(logs), "-o", str(base / "report.html")],
                     check=True, capture_output=True)

    root = next(e for e in recorded if e.data.get("run_root"))
    node = next(e for e in recorded if e.action == "agent" and e.start_time is not None)
    big = Trace([*recorded, *(node.model_copy(update={"span_id": f"{i:016x}",
                                                         "parent_span_id": root.span_id})
                               for i in range(args.spans))])
    view, _view_s = timed(f"notebook view of one {len(big.spans)}-span trace", big._repr_html_)
    print(f"view size {len(view) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
