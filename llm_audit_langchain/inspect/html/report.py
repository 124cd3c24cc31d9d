"""The auditors' report: one self-contained HTML file that opens from disk (no server, no CDN).

Summary (runs, errors, cost by user/model/day, SLO rates), the audit chain's verification,
decision records and human overrides, the trace list (searchable and filterable in the page,
grouped by thread so a conversation reads as one session), and a page per trace with the same
view as the notebook (``#t-<trace id>``; pure CSS ``:target``, so it works with scripts off).

Example::

    >>> from llm_audit_langchain.inspect import Traces
    >>> from llm_audit_langchain.inspect.html.report import render_report
    >>> html = render_report(Traces.from_jsonl("logs"), chain_dir="audit")
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ... import __version__ as package_version
from ..summary import (
    ChainResult,
    Summary,
    chain_overrides,
    chain_result,
    decisions_and_overrides,
    summarize,
)
from ..traces import Trace, Traces
from ..views import duration, money
from . import asset
from .view import TABLE_HEAD, cost_table, esc, trace_row, trace_view

MAX_DECISION_ROWS = 5000


def _card(label: str, value: str, tone: str = "") -> str:
    return f'<div class="lat-card {tone}">{esc(label)}<b>{esc(value)}</b></div>'


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _summary_html(summary: Summary, chain: ChainResult) -> str:
    chain_tone = "" if not chain.checked else ("good" if chain.ok else "bad")
    chain_text = "not checked" if not chain.checked else ("intact" if chain.ok else "BROKEN")
    cards = [
        _card("runs", str(summary.requests)), _card("traces", str(summary.traces)),
        _card("failed runs", str(summary.error_requests),
              "bad" if summary.error_requests else ""),
        _card("traces with errors", str(summary.traces_with_errors)),
        _card("cost", money(summary.total_cost_usd)),
        _card("tokens in / out", f"{summary.tokens_input} / {summary.tokens_output}"),
        _card("latency p50 / p95", f"{duration(summary.latency_p50_ms) or 'n/a'} / "
                                   f"{duration(summary.latency_p95_ms) or 'n/a'}"),
        _card("audit chain", chain_text, chain_tone),
    ]
    slo_rows = []
    for slo in summary.slo:
        latency = slo["metric"] == "p95_latency_ms"
        shown = (duration(slo["value"]) or "n/a") if latency else _percent(slo["value"])
        target = f"{slo['target_below']:.0f} ms" if latency else _percent(slo["target_below"])
        verdict = {True: "ok", False: "breached", None: "no data"}[slo["ok"]]
        tone = "st-error" if slo["ok"] is False else ""
        slo_rows.append(f'<tr class="{tone}"><td>{esc(slo["metric"])}</td><td class=n>'
                        f"{esc(shown)}</td><td class=n>&lt; {esc(target)}</td>"
                        f"<td>{esc(verdict)}</td></tr>")
    weighted = ('<p class="lat-note">rates are weighted by 1 / the keep probability of each '
                "sampled trace</p>" if summary.weighted else "")
    unpriced = (f'<p class="lat-note">{summary.unpriced_calls} LLM call(s) had no known price; '
                "they are not in the cost</p>" if summary.unpriced_calls else "")
    return ('<h2 id="summary">Summary</h2><div class="lat-cards">' + "".join(cards) + "</div>"
            + unpriced + '<div class="lat-grid">'
            + "".join(cost_table(name, rows) for name, rows in summary.cost_by.items())
            + "<table><tr><th>SLO</th><th class=n>value</th><th class=n>target</th><th>verdict"
            "</th></tr>" + "".join(slo_rows) + "</table></div>" + weighted)


def _chain_html(chain: ChainResult) -> str:
    tone = "" if not chain.checked else ("st-ok" if chain.ok else "st-error")
    return (f'<h2 id="chain">Audit chain</h2><p><span class="lat-badge {tone}">'
            f'{"ok" if chain.ok else ("broken" if chain.checked else "not checked")}</span> '
            f"{esc(chain.detail)}" + (f" ({chain.files} file(s))" if chain.checked else "")
            + "</p>")


def _decisions_html(records: list[dict[str, Any]], orphans: list[Any]) -> str:
    rows = []
    for record in records[:MAX_DECISION_ROWS]:
        tools = ", ".join(str(c.get("name")) for c in record.get("tools_chosen") or ())
        override = ""
        if record.get("was_overridden"):
            override = (f"{esc(record.get('overridden_by'))}: {esc(record.get('final_decision'))}"
                        f' <span class="lat-muted">{esc(record.get("override_reason"))}</span>')
        rows.append(
            f'<tr class="{"st-error" if record.get("was_overridden") else ""}">'
            f"<td>{esc(str(record['timestamp'])[:19])}</td>"
            f'<td><a href="#t-{esc(record["trace_id"])}">{esc(record["trace_id"][:12])}</a></td>'
            f"<td>{esc(record['agent'])}</td><td>{esc(record['model_id'])}</td>"
            f"<td>{esc(record['prompt_version'])}</td><td>{esc(tools)}</td>"
            f"<td>{override}</td></tr>")
    note = "" if len(records) <= MAX_DECISION_ROWS else (
        f'<p class="lat-note">first {MAX_DECISION_ROWS} of {len(records)} decisions</p>')
    overridden = sum(1 for r in records if r.get("was_overridden"))
    orphan_rows = "".join(
        f"<li>{esc(o.data.get('overridden_by'))} overrode decision "
        f"{esc(o.data.get('override_of'))}: {esc(o.data.get('final_decision'))} "
        f"({esc(o.data.get('override_reason'))})</li>" for o in orphans)
    orphan_html = (f"<p>Overrides of decisions outside this report:</p><ul>{orphan_rows}</ul>"
                   if orphans else "")
    return (f'<h2 id="decisions">Decisions ({len(records)}, {overridden} overridden by a person)'
            '</h2><details class="lat-sec"><summary>decision records</summary><table><tr>'
            "<th>time (UTC)</th><th>trace</th><th>agent</th><th>model</th><th>prompt version</th>"
            "<th>tools chosen</th><th>human override</th></tr>" + "".join(rows)
            + f"</table>{note}</details>{orphan_html}")


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in sorted(set(values)))


def _filters_html(traces: Traces) -> str:
    users = _options(t.user_id for t in traces if t.user_id)
    models = _options(m for t in traces for m in t.models)
    nodes = _options(n for t in traces for n in t.nodes)
    return (
        '<div class="lat-filters">'
        '<label>search <input id="lat-q" type="search" placeholder="input text, trace or thread'
        ' id"></label>'
        '<label>status <select id="lat-status"><option value="">any</option>'
        '<option value="ok">ok</option><option value="error">failed</option>'
        '<option value="errors">with any error</option></select></label>'
        f'<label>user <select id="lat-user"><option value="">any</option>{users}</select></label>'
        f'<label>model <select id="lat-model"><option value="">any</option>{models}</select>'
        f'</label><label>node <select id="lat-node"><option value="">any</option>{nodes}</select>'
        '</label><label>from <input id="lat-since" type="datetime-local"></label>'
        '<label>to <input id="lat-until" type="datetime-local"></label>'
        '<label>cost ≥ $<input id="lat-mincost" type="number" step="any" min="0" size="8">'
        f'</label><span><b id="lat-count">{len(traces)}</b> of {len(traces)} traces</span></div>')


def _trace_list_html(traces: Traces) -> str:
    groups = traces.by_thread()
    order = sorted(groups.items(), key=lambda kv: max(t.start for t in kv[1]), reverse=True)
    bodies = []
    for thread, members in order:
        label = f"thread {thread}" if thread is not None else "no thread"
        cost = [t.cost_usd for t in members]
        total = None if any(c is None for c in cost) else sum(c or 0.0 for c in cost)
        head = (f'<tr class="lat-thread-head"><th colspan="9">{esc(label)} · {len(members)} '
                f"run(s) · {esc(money(total))}</th></tr>")
        rows = "".join(trace_row(t, f"#t-{t.trace_id}") for t in members)
        bodies.append(f'<tbody class="lat-thread" data-thread="{esc(thread or "")}">{head}{rows}'
                      "</tbody>")
    return (f'<h2 id="traces">Traces</h2>{_filters_html(traces)}<table>'
            f"<thead>{TABLE_HEAD}</thead>{''.join(bodies)}</table>")


def _trace_page(trace: Trace) -> str:
    return (f'<section class="lat-page" id="t-{esc(trace.trace_id)}">'
            '<a class="lat-back" href="#traces">← all traces</a><div class="lat-tools">'
            '<button type="button" data-lat-fold="open">expand all</button>'
            '<button type="button" data-lat-fold="close">collapse all</button></div>'
            f"{trace_view(trace, standalone=False)}</section>")


def render_report(
    traces: Traces,
    *,
    chain_dir: str | os.PathLike[str] | None = None,
    chain_key: str | None = None,
    title: str = "LLM audit report",
    period: tuple[datetime | None, datetime | None] = (None, None),
    live_version: str | None = None,
    chain: ChainResult | None = None,
) -> str:
    """The report as one HTML document (``live_version`` makes the page poll ``version`` and
    reload when it changes, for ``llm-audit ui``; ``chain`` a verification already made)."""
    summary = summarize(traces)
    chain = chain if chain is not None else chain_result(chain_dir, chain_key)
    records, orphans = decisions_and_overrides(traces, chain_overrides(chain_dir))
    since, until = period
    span = (f"{since.isoformat() if since else 'the beginning'} to "
            f"{until.isoformat() if until else 'now'}")
    made = datetime.now(UTC).isoformat(timespec="seconds")
    live = f' data-live-version="{esc(live_version)}"' if live_version is not None else ""
    pages = "".join(_trace_page(t) for t in reversed(list(traces)))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{asset('view.css')}{asset('report.css')}</style>"
        f'</head><body class="lat"{live}><div class="lat-index"><h1>{esc(title)}</h1>'
        f'<p class="lat-muted">traces started from {esc(span)} · generated {esc(made)} by '
        f"llm-audit-langchain {esc(package_version)}</p>"
        + _summary_html(summary, chain) + _chain_html(chain)
        + _decisions_html(records, orphans) + _trace_list_html(traces) + "</div>"
        + pages + f"<script>{asset('report.js')}</script></body></html>")
