"""The analytics queries in SQL, shared by DuckDB (over the JSONL files) and PostgreSQL (over
the store's table): both expose a relation ``events`` with the same columns, and each query here
runs unchanged on both. Definitions are in ``report.py``.

The relation's columns: ``event_id``, ``"timestamp"`` (UTC), ``event_type``, ``trace_id``,
``user_id``, ``department``, ``model``, ``provider``, ``status``, ``cost_usd``,
``tokens_input``, ``tokens_output``, ``latency_ms``, ``is_root``, ``error_type``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .report import (
    GROUPINGS,
    LLM_TYPES,
    PERCENTILES,
    RANK_EPSILON,
    RATE_LIMIT_PATTERNS,
    TOKEN_BUCKETS,
    UNKNOWN,
    assemble,
)

Fetch = Callable[[str], list[dict[str, Any]]]
"""Runs one query (with ``{events}`` already substituted) and returns its rows as dicts."""

_LLM = "event_type IN (" + ", ".join(f"'{t}'" for t in LLM_TYPES) + ")"

_KEYS = {
    "user": "user_id", "department": "department", "model": "model", "provider": "provider",
    "day": 'CAST(CAST("timestamp" AS DATE) AS VARCHAR)',
}

SUMMARY = f"""
SELECT count(*) AS events, count(DISTINCT trace_id) AS traces,
       count(*) FILTER (WHERE is_root) AS requests,
       count(*) FILTER (WHERE is_root AND status = 'error') AS failed_requests,
       count(*) FILTER (WHERE {_LLM}) AS llm_calls,
       count(*) FILTER (WHERE event_type = 'llm.error') AS llm_errors,
       count(*) FILTER (WHERE event_type = 'agent.retry' OR status = 'retry') AS retries,
       sum(cost_usd) AS total_cost_usd
FROM {{events}}
"""

COST_BY = f"""
SELECT COALESCE(CAST({{key}} AS VARCHAR), '{UNKNOWN}') AS key, count(*) AS calls,
       CAST(sum(tokens_input) AS BIGINT) AS tokens_input,
       CAST(sum(tokens_output) AS BIGINT) AS tokens_output, sum(cost_usd) AS cost_usd
FROM {{events}} WHERE {_LLM} GROUP BY 1
"""

BY_TYPE = "SELECT event_type AS key, count(*) AS n FROM {events} GROUP BY 1"

BY_HOUR = """
SELECT CAST(extract(hour FROM "timestamp") AS INTEGER) AS hour, count(*) AS requests
FROM {events} WHERE is_root GROUP BY 1
"""

_BUCKET = "CASE " + " ".join(
    f"WHEN tokens >= {bound} THEN {bound}" for bound in reversed(TOKEN_BUCKETS)) + " END"

TOKENS_PER_REQUEST = f"""
SELECT bucket, count(*) AS requests FROM (
    SELECT {_BUCKET} AS bucket FROM (
        SELECT trace_id, COALESCE(sum(tokens_input), 0) + COALESCE(sum(tokens_output), 0)
               AS tokens
        FROM {{events}} WHERE {_LLM} GROUP BY trace_id) AS per_trace
) AS buckets GROUP BY bucket
"""

_RANKS = ", ".join(
    f"max(CASE WHEN rn = CAST(ceil({p} * n - {RANK_EPSILON}) AS BIGINT) THEN latency_ms END) "
    f"AS {name}" for name, p in PERCENTILES)

LATENCY = f"""
SELECT key, count(*) AS count, {_RANKS} FROM (
    SELECT COALESCE({{key}}, '{UNKNOWN}') AS key, latency_ms,
           row_number() OVER (PARTITION BY COALESCE({{key}}, '{UNKNOWN}')
                              ORDER BY latency_ms) AS rn,
           count(*) OVER (PARTITION BY COALESCE({{key}}, '{UNKNOWN}')) AS n
    FROM {{events}} WHERE {_LLM} AND latency_ms IS NOT NULL) AS ranked
GROUP BY key
"""

PROVIDER_ERRORS = f"""
SELECT COALESCE(provider, '{UNKNOWN}') AS key, count(*) AS calls,
       count(*) FILTER (WHERE event_type = 'llm.error') AS errors, sum(cost_usd) AS cost_usd
FROM {{events}} WHERE {_LLM} GROUP BY 1
"""

TOP_TRACES = f"""
SELECT trace_id, sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE {_LLM}) AS llm_calls,
       max(user_id) AS user_id
FROM {{events}} GROUP BY trace_id HAVING sum(cost_usd) IS NOT NULL
ORDER BY cost_usd DESC, trace_id LIMIT {{top}}
"""

_RATE_LIMITED = " OR ".join(f"lower(error_type) LIKE '%{p}%'" for p in RATE_LIMIT_PATTERNS)

SECURITY = f"""
SELECT count(*) FILTER (WHERE event_type = 'llm.guardrail') AS guardrail_interventions,
       count(*) FILTER (WHERE event_type = 'llm.error' AND ({_RATE_LIMITED})) AS rate_limited
FROM {{events}}
"""


def sql_report(fetch: Fetch, events: str, redactions: str, top: int = 10) -> dict[str, Any]:
    """The report (``report.assemble``) from queries run by ``fetch``; ``events`` is the SQL
    for the relation (a table name or a parenthesised subquery with an alias); ``redactions``
    the back-end's query of sanitizer redactions by kind (columns ``kind``, ``n``): the one
    query whose SQL differs (a JSONB array in PostgreSQL, a regex over the line in DuckDB)."""

    def run(sql: str, **names: Any) -> list[dict[str, Any]]:
        return fetch(sql.format(events=events, **names))

    parts: dict[str, Any] = {
        "summary": run(SUMMARY)[0],
        "events_by_type": {r["key"]: r["n"] for r in run(BY_TYPE)},
        "cost_by": {name: run(COST_BY, key=_KEYS[name]) for name in GROUPINGS},
        "requests_by_hour": run(BY_HOUR),
        "tokens_per_request": run(TOKENS_PER_REQUEST),
        "latency_ms": {name: run(LATENCY, key=name) for name in ("model", "provider")},
        "provider_errors": run(PROVIDER_ERRORS),
        "top_traces": run(TOP_TRACES, top=int(top)),
        "security": run(SECURITY)[0],
        "redactions": {r["kind"]: r["n"] for r in fetch(redactions)},
    }
    return assemble(parts, top)
