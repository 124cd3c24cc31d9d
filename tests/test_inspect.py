"""``Trace``/``Traces``, the HTML views and ``llm-audit report`` on recordings of real graph
runs (JSONL, the audit chain and a MemoryExporter written at once)."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from inspect_recordings import HOSTILE, Recording, record
from test_cli import llm_audit

from llm_audit_langchain.inspect.html.report import render_report
from llm_audit_langchain.inspect.traces import Trace, Traces


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(tmp_path_factory.mktemp("inspect"))


def test_the_three_sources_hold_the_same_traces(rec: Recording, tmp_path: Path) -> None:
    memory, jsonl, chain = (Traces.from_memory(rec.memory), Traces.from_jsonl(rec.logs),
                            Traces.from_chain(rec.chain))
    ids = [t.trace_id for t in memory]
    assert len(ids) == 4 and [t.trace_id for t in jsonl] == ids
    assert [t.trace_id for t in chain] == ids
    assert jsonl.scan_stats is not None and jsonl.scan_stats.corrupt == 0
    demo = jsonl[rec.demo_trace]
    assert [e.event_id for e in demo] == [e.event_id for e in memory[rec.demo_trace]]
    # the chain also holds the person's override of the first decision, in the same trace
    assert any(e.action == "decision.override" for e in chain[rec.demo_trace])
    both = tmp_path / "both"
    both.mkdir()
    for file in (*rec.logs.glob("*.jsonl"), *rec.chain.glob("*.jsonl")):
        (both / file.name).write_bytes(file.read_bytes())
    assert not any(e.action == "decision.override" for e in Traces.from_jsonl(both)[rec.demo_trace])
    assert any(e.action == "decision.override" for e in Traces.from_chain(both)[rec.demo_trace])


def test_a_trace_answers_what_a_reader_asks_first(rec: Recording) -> None:
    demo = Traces.from_jsonl(rec.logs)[rec.demo_trace]
    assert demo.status == "ok" and demo.has_error  # the graph recovered from both failures
    assert demo.user_id == "u-42" and demo.thread_id is None
    assert demo.models == ["anthropic.claude-3-haiku-20240307-v1:0"]
    assert {"profile", "agent", "tools"} <= set(demo.nodes)
    llm = [e for e in demo.events if str(e.event_type) == "llm.invoke"]
    assert len(llm) == 2 and demo.tokens_output == 23  # the scripted answers' usage
    assert demo.tokens_input == sum(e.tokens_input or 0 for e in llm) > 0
    assert demo.cost_usd is not None and demo.cost_usd > 0
    assert [e.error.type for e in demo.errors if e.error] == ["ConnectionError", "ValueError"]
    assert demo.root is not None and demo.latency_ms == demo.root.latency_ms
    assert "Paris and Atlantis" in demo.input_text


def test_filters_select_by_every_documented_condition(rec: Recording) -> None:
    traces = Traces.from_jsonl(rec.logs)
    first, last = traces[0], traces.latest()
    assert last.trace_id == rec.hostile_trace and traces[-1] is last
    assert [t.trace_id for t in traces.filter(thread="t-7")] == rec.thread_traces
    assert [t.trace_id for t in traces.filter(user="u-42")] == [rec.demo_trace]
    assert len(traces.filter(model="claude-3-haiku")) == 1
    assert len(traces.filter(model="scripted")) == 3
    assert len(traces.filter(node="profile")) == 1
    assert {t.trace_id for t in traces.filter(event_type="tool.error")} == {
        rec.demo_trace, rec.hostile_trace}
    assert {t.trace_id for t in traces.filter(has_error=False)} == set(rec.thread_traces)
    assert len(traces.filter(status="ok")) == 4 and len(traces.filter(status="error")) == 0
    assert [t.trace_id for t in traces.filter(min_cost=1e-9)] == [rec.demo_trace]
    assert len(traces.filter(max_cost=1.0)) == 1  # the unpriced traces never match a bound
    assert [t.trace_id for t in traces.filter(text="time is it in LIMA")] == rec.thread_traces[:1]
    assert len(traces.filter(since=first.start)) == 4
    assert len(traces.filter(since=first.start + timedelta(microseconds=1))) == 3
    assert len(traces.filter(until=first.start.isoformat())) == 0
    assert len(traces.filter(since=last.start.isoformat().replace("+00:00", ""))) == 1
    assert len(traces.filter(user="u-7", has_error=True)) == 0
    assert traces[rec.demo_trace[:10]].trace_id == rec.demo_trace
    with pytest.raises(KeyError):
        traces["ffffffffff"]
    assert list(traces.by_thread()) == [None, "t-7"] or set(traces.by_thread()) == {None, "t-7"}


def test_trace_view_shows_tree_errors_decisions_timeline_and_costs(rec: Recording) -> None:
    view = Traces.from_jsonl(rec.logs)[rec.demo_trace]._repr_html_()
    assert "<script" not in view and "http" not in view  # self-contained, no script needed
    assert view.count('class="lat-run st-error') == 2  # the failed profile run and tool run
    for text in ("Run tree (12 spans)", "Errors (2)", "ConnectionError", "traceback",
                 "selected tools: get_weather(city=&#x27;Paris&#x27;)", "retry attempt 2",
                 "route agent → tools", "Timeline", "Cost and tokens", "u-42"):
        assert text in view, text
    # the tool selection is joined to the two tool runs it started, one of them failed
    decisions = view.split("Decisions (")[1].split("</details>")[0]
    assert decisions.count("get_weather <span class=\"lat-badge st-") == 2
    assert "weather service has no station in Atlantis" in decisions


def test_every_recorded_string_is_escaped(rec: Recording) -> None:
    traces = Traces.from_jsonl(rec.logs)
    hostile = traces[rec.hostile_trace]
    for page in (hostile._repr_html_(), traces._repr_html_(), render_report(traces)):
        assert "<img" not in page and "<script>window" not in page
        assert "onerror=" not in page.replace("onerror=&quot;", "").replace("onerror=\\&quot;", "")
        # the report's own script is the only one, after every recorded string
        assert page.count("<script") == page.count("<script>// The report's filters")
    view = hostile._repr_html_()
    assert html.escape(f"no match for {HOSTILE}") in view  # the tool's error message
    assert html.escape(HOSTILE, quote=True) in view


def test_big_traces_fold(rec: Recording) -> None:
    demo = Traces.from_jsonl(rec.logs)[rec.demo_trace]
    root = next(e for e in demo.events if e.data.get("run_root"))
    node = next(e for e in demo.spans if e.action == "agent")
    copies = [node.model_copy(update={"span_id": f"{i:016x}", "parent_span_id": root.span_id})
              for i in range(3000)]
    big = Trace([*demo.events, *copies])
    view = big._repr_html_()
    assert "Run tree (3012 spans)" in view
    assert f"… {3000 + 5 - 50} more runs" in view  # 3005 children of the root, 50 drawn open
    assert "first 400 of 3012 spans" in view
    # the tools node (its tool run failed) starts after the copies: the fold opens to show it
    assert '<details class="lat-more" open>' in view
    assert '<details class="lat-more"><summary>' in Trace([root, *copies])._repr_html_()


def test_report_command_writes_one_self_contained_file(rec: Recording, tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.html"
    result = llm_audit("report", "--dir", str(rec.logs), "--chain", str(rec.chain),
                       "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["traces"] == 4 and summary["chain"]["ok"] is True
    page = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from the network
    for trace_id in (rec.demo_trace, rec.hostile_trace, *rec.thread_traces):
        assert f'id="t-{trace_id}"' in page and f'href="#t-{trace_id}"' in page
    assert "thread t-7 · 2 run(s)" in page
    assert "intact: " in page and "ana@bank" in page and "policy 7" in page
    assert "tool_failure_rate" in page and "u-42" in page and "u-7" in page


def test_report_time_bounds_and_a_broken_chain(rec: Recording, tmp_path: Path) -> None:
    traces = Traces.from_jsonl(rec.logs)
    since = traces[1].start.isoformat()
    until = traces[3].start.isoformat()
    out = tmp_path / "window.html"
    result = llm_audit("report", str(rec.logs), "--since", since, "--until", until,
                       "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["traces"] == 2
    page = out.read_text()
    assert f'id="t-{rec.thread_traces[0]}"' in page and f'id="t-{rec.demo_trace}"' not in page

    broken = tmp_path / "chain"
    broken.mkdir()
    for file in rec.chain.glob("audit-chain-*.jsonl"):
        lines = file.read_text().splitlines(keepends=True)
        lines[3] = lines[3].replace('"status":"ok"', '"status":"error"', 1)
        (broken / file.name).write_text("".join(lines))
    result = llm_audit("report", str(rec.logs), "--chain", str(broken), "-o", str(out))
    assert result.returncode == 1 and "BROKEN (modified)" in result.stdout
    assert "BROKEN (modified)" in out.read_text()
    bad = llm_audit("report", str(rec.logs), "--since", "yesterday", "-o", str(out))
    assert bad.returncode == 2 and "--since must be an ISO 8601" in bad.stderr


def test_dataframes_and_plots(rec: Recording) -> None:
    traces = Traces.from_jsonl(rec.logs)
    per_trace = traces.to_dataframe()
    assert list(per_trace["trace_id"]) == [t.trace_id for t in traces]
    assert per_trace.loc[per_trace.user_id == "u-7", "thread_id"].tolist() == ["t-7", "t-7"]
    spans = traces[rec.demo_trace].to_dataframe()
    assert len(spans) == 12
    tools = spans[spans.kind == "tool"].set_index("status")
    assert tools.loc["error", "error_message"] == "weather service has no station in Atlantis"
    llm = spans[spans.kind == "llm"]
    assert llm.tokens_input.sum() == traces[rec.demo_trace].tokens_input
    assert llm.cost_usd.notna().all()
    events = traces.to_dataframe(per="event")
    assert len(events) == sum(len(t) for t in traces)
    figure = traces[rec.demo_trace].plot_timeline()
    assert len(figure.axes[0].patches) == 12
    costs = traces.plot_costs(by="model")
    assert next(t.get_text() for t in costs.axes[0].get_yticklabels()).startswith("anthropic")
    with pytest.raises(ValueError, match="by must be one of"):
        traces.plot_costs(by="colour")


def test_a_filter_value_that_cannot_match_says_why(rec: Recording) -> None:
    traces = Traces.from_jsonl(rec.logs)
    with pytest.raises(ValueError, match="use one of ok, error, timeout, retry"):
        traces.filter(status="failed")
    with pytest.raises(ValueError, match="not a time: 'yesterday'"):
        traces.filter(since="yesterday")
