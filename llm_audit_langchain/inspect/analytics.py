"""SQL over the JSONL files with DuckDB (the analytics layer): cost by model, day and user,
root latency percentiles, and the SLO rates. Used by ``llm-audit stats``.

Needs the ``analytics`` extra (``pip install 'llm-audit-langchain[analytics]'``).

Definitions (a *request* is a root run: an event with ``data.trace_root`` that closes a span):

- latency p50/p95: nearest-rank percentiles of the requests' ``latency_ms``;
- error rate: requests whose root ended with status ``error``;
- timeout rate: requests with a ``timeout`` anywhere in their trace;
- tool failure rate: ``tool.error`` / (``tool.result`` + ``tool.error``);
- retry ratio: retries per request. Per trace, the larger of two counts that record the same
  retries: ``agent.retry`` events (and any other event with status ``retry``), and LangGraph
  node runs repeated at the same step and checkpoint namespace (``RetryPolicy``).

Traces are tail-sampled: normal traces are kept at ``SUCCESS_SAMPLE_RATE`` while failing and slow
ones are always kept, so plain counts over the files overstate error rates and latency. Each
request is weighted by 1 / (its keep probability): ``data.sampling.rate`` when the root records
it, else ``success_rate`` (the argument) for traces kept by the ``rate`` rule, else 1. Costs and
token sums are what the files hold (sampled-out traces are not in them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import AuditError
from ..replay.reading import jsonl_files


class AnalyticsUnavailableError(AuditError, ImportError):
    """DuckDB is not installed."""


@dataclass(frozen=True)
class SloTarget:
    """A metric's target: the value must stay below ``below``."""

    metric: str
    below: float
    unit: str


SLO_TARGETS = (
    SloTarget("p95_latency_ms", 1500.0, "ms"),
    SloTarget("error_rate", 0.02, "ratio"),
    SloTarget("timeout_rate", 0.01, "ratio"),
    SloTarget("tool_failure_rate", 0.03, "ratio"),
    SloTarget("retry_ratio", 0.05, "ratio"),
)
"""The default SLO targets: each rate should stay below its value."""

_INSTALL_HINT = ("llm-audit stats needs DuckDB: pip install 'llm-audit-langchain[analytics]' "
                 "(or pip install duckdb)")

_LOAD_LINES = """
CREATE TEMP VIEW lines AS
SELECT j FROM read_csv(?, columns={'j': 'VARCHAR'}, delim=chr(31), quote='', escape='',
                       header=false, auto_detect=false, max_line_size=67108864)
"""

_EVENTS = """
CREATE TEMP TABLE ev AS
SELECT j->>'$.trace_id' AS trace_id,
       j->>'$.event_type' AS event_type,
       j->>'$.status' AS status,
       j->>'$.action' AS action,
       COALESCE(j->>'$.model', '(unknown)') AS model,
       substr(j->>'$.timestamp', 1, 10) AS day,
       TRY_CAST(j->>'$.cost_usd' AS DOUBLE) AS cost_usd,
       TRY_CAST(j->>'$.latency_ms' AS DOUBLE) AS latency_ms,
       TRY_CAST(j->>'$.tokens_input' AS BIGINT) AS tokens_input,
       TRY_CAST(j->>'$.tokens_output' AS BIGINT) AS tokens_output,
       j->>'$.start_time' IS NOT NULL AND j->>'$.data.trace_root' = 'true' AS is_root,
       COALESCE(j->>'$.data.metadata.user_id', j->>'$.data.user_id') AS user_id,
       j->>'$.data.sampling.reason' AS sampling_reason,
       TRY_CAST(j->>'$.data.sampling.rate' AS DOUBLE) AS sampling_rate,
       j->>'$.data.langgraph.node' AS node,
       j->>'$.data.langgraph.step' AS step,
       j->>'$.data.langgraph.checkpoint_ns' AS checkpoint_ns
FROM lines
WHERE json_valid(j) AND json_type(j) = 'OBJECT'
  AND j->>'$.trace_id' IS NOT NULL AND j->>'$.event_type' IS NOT NULL
"""

_TRACES = """
CREATE TEMP TABLE tr AS
WITH node_runs AS (
    SELECT trace_id, count(*) - 1 AS repeats FROM ev
    WHERE event_type IN ('chain.end', 'chain.error') AND node = action AND step IS NOT NULL
    GROUP BY trace_id, node, step, checkpoint_ns HAVING count(*) > 1
), retries AS (
    -- a RetryPolicy retry shows twice (the node run again and its agent.retry event): per
    -- trace, the larger of the two counts, so one retry is one retry
    SELECT trace_id, greatest(sum(repeats), sum(recorded)) AS n FROM (
        SELECT trace_id, repeats, 0 AS recorded FROM node_runs
        UNION ALL
        SELECT trace_id, 0, 1 FROM ev WHERE event_type = 'agent.retry' OR status = 'retry'
    ) GROUP BY trace_id
), per_trace AS (
    SELECT trace_id,
           max(user_id) AS user_id,
           bool_or(status = 'timeout') AS has_timeout,
           count(*) FILTER (WHERE event_type = 'tool.error') AS tool_errors,
           count(*) FILTER (WHERE event_type IN ('tool.result', 'tool.error')) AS tool_runs
    FROM ev GROUP BY trace_id
), roots AS (
    SELECT trace_id, arg_max(latency_ms, latency_ms) AS latency_ms, arg_max(status, latency_ms)
           AS status, max(sampling_reason) AS sampling_reason, max(sampling_rate) AS rate
    FROM ev WHERE is_root GROUP BY trace_id
)
SELECT p.trace_id, p.user_id, p.has_timeout, p.tool_errors, p.tool_runs,
       COALESCE(r.n, 0) AS retries,
       roots.trace_id IS NOT NULL AS has_root, roots.latency_ms, roots.status,
       roots.sampling_reason,
       1.0 / COALESCE(NULLIF(roots.rate, 0),
                      CASE WHEN roots.sampling_reason = 'rate' THEN ? END, 1.0) AS weight
FROM per_trace p LEFT JOIN retries r USING (trace_id) LEFT JOIN roots USING (trace_id)
"""

_PERCENTILE = """
SELECT min(latency_ms) FROM (
    SELECT latency_ms, sum(weight) OVER (ORDER BY latency_ms ROWS UNBOUNDED PRECEDING) AS cw,
           sum(weight) OVER () AS tw
    FROM tr WHERE has_root AND latency_ms IS NOT NULL
) WHERE cw >= ? * tw - 1e-9
"""

_RATES = """
SELECT sum(weight) FILTER (WHERE has_root),
       count(*) FILTER (WHERE has_root),
       sum(weight) FILTER (WHERE has_root AND status = 'error'),
       sum(weight) FILTER (WHERE has_root AND (has_timeout OR status = 'timeout')),
       sum(weight * tool_errors), sum(weight * tool_runs),
       sum(weight * retries) FILTER (WHERE has_root),
       count(*)
FROM tr
"""

_COST = """
SELECT {key} AS key, count(*) AS calls, sum(tokens_input) AS tokens_input,
       sum(tokens_output) AS tokens_output, sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls
FROM ev LEFT JOIN tr USING (trace_id)
WHERE event_type IN ('llm.invoke', 'llm.error')
GROUP BY key ORDER BY cost_usd DESC NULLS LAST, key
"""


def _sql_list(values: list[str]) -> str:
    """A SQL list literal (a view cannot take prepared parameters)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:
        raise AnalyticsUnavailableError(_INSTALL_HINT) from exc
    return duckdb


def _ratio(part: float | None, whole: float | None) -> float | None:
    if not whole:
        return None
    return (part or 0.0) / whole


def _slo(target: SloTarget, value: float | None) -> dict[str, Any]:
    return {"metric": target.metric, "target_below": target.below, "value": value,
            "ok": None if value is None else value < target.below}


def _rows(con: Any, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def stats(path: str | os.PathLike[str], *, success_rate: float | None = None) -> dict[str, Any]:
    """Cost, latency and SLO figures over every JSONL file at ``path`` (see the module doc).

    Raises ``FileNotFoundError`` for a missing path and :class:`AnalyticsUnavailableError` when
    DuckDB is not installed.
    """
    files = [str(f) for f in jsonl_files(path)]
    duckdb = _duckdb()
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")  # the CLI reports progress itself
        if files:
            con.execute(_LOAD_LINES.replace("?", _sql_list(files), 1))
        else:
            con.execute("CREATE TEMP TABLE lines (j VARCHAR)")
        con.execute(_EVENTS)
        con.execute(_TRACES, [success_rate])
        return _report(con, files)
    finally:
        con.close()


def _report(con: Any, files: list[str]) -> dict[str, Any]:
    lines = con.execute("SELECT count(*) FROM lines WHERE trim(COALESCE(j, '')) <> ''"
                        ).fetchone()[0]
    events = con.execute("SELECT count(*) FROM ev").fetchone()[0]
    (requests_w, requests, errors, timeouts, tool_errors, tool_runs, retries,
     traces) = con.execute(_RATES).fetchone()
    p50 = con.execute(_PERCENTILE, [0.5]).fetchone()[0]
    p95 = con.execute(_PERCENTILE, [0.95]).fetchone()[0]
    reasons = dict(con.execute("SELECT COALESCE(sampling_reason, '(none)'), count(*) FROM tr "
                               "WHERE has_root GROUP BY 1 ORDER BY 1").fetchall())
    weighted = con.execute("SELECT bool_or(weight <> 1.0) FROM tr").fetchone()[0]
    values: dict[str, float | None] = {
        "p95_latency_ms": p95,
        "error_rate": _ratio(errors, requests_w),
        "timeout_rate": _ratio(timeouts, requests_w),
        "tool_failure_rate": _ratio(tool_errors, tool_runs),
        "retry_ratio": _ratio(retries, requests_w),
    }
    return {
        "scan": {"files": files, "lines": lines, "events": events, "corrupt": lines - events},
        "requests": requests,
        "traces": traces,
        "sampling": {"weighted": bool(weighted), "reasons": reasons},
        "total_cost_usd": con.execute("SELECT sum(cost_usd) FROM ev").fetchone()[0],
        "cost_by_model": _rows(con, _COST.format(key="model")),
        "cost_by_day": _rows(con, _COST.format(key="day")),
        "cost_by_user": _rows(con, _COST.format(key="COALESCE(tr.user_id, '(unknown)')")),
        "latency_ms": {"p50": p50, "p95": p95},
        "rates": {k: v for k, v in values.items() if k != "p95_latency_ms"},
        "slo": [_slo(target, values[target.metric]) for target in SLO_TARGETS],
    }
