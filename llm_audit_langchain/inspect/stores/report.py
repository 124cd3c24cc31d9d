"""The analytics report every store answers with, and the definitions all back-ends share.

Each back-end (DuckDB over JSONL, PostgreSQL SQL, MongoDB aggregation) computes the same
*parts*; :func:`assemble` orders them and derives the provider comparison, so the three return
identical reports on identical events (up to floating-point summation order).

Definitions:

- an *LLM call* is an ``llm.invoke`` or ``llm.error`` event; a *request* is a trace's root run
  (``data.trace_root`` on an event that closes a span);
- costs and tokens are sums over LLM calls; ``None`` when no call in the group was priced;
- user and department come from the caller's ``config["metadata"]`` on the trace's root;
- latency percentiles are nearest-rank (the value at rank ``ceil(p * n)`` in ascending order) of
  LLM calls' ``latency_ms``, per model and per provider;
- tokens per request: a request's input + output tokens over its LLM calls, bucketed by
  ``TOKEN_BUCKETS`` (each bucket named by its lower bound);
- rates: failed requests / requests, LLM errors / LLM calls, retries (``agent.retry`` or any
  event with status ``retry``) / requests;
- security: ``llm.guardrail`` events, LLM errors whose error type names a rate limit or
  throttling (``RATE_LIMIT_PATTERNS``, case-insensitive), and the sanitizer's redaction markers
  (``[REDACTED_<KIND>]``) in the stored events, counted by kind.

Report keys: ``events``, ``traces``, ``requests``, ``total_cost_usd``, ``events_by_type``,
``cost_by`` (``user``, ``department``, ``model``, ``provider``, ``day``: rows of ``key``,
``calls``, ``tokens_input``, ``tokens_output``, ``cost_usd``), ``requests_by_hour``
(``hour``, ``requests``), ``tokens_per_request`` (``bucket``, ``requests``), ``latency_ms``
(``model``/``provider``: rows of ``key``, ``count``, ``p50``, ``p95``, ``p99``), ``providers``
(side by side: calls, errors, error rate, cost, p50/p95), ``rates``, ``top_traces``
(``trace_id``, ``cost_usd``, ``llm_calls``, ``user_id``), ``security``.
"""

from __future__ import annotations

from typing import Any

LLM_TYPES = ("llm.invoke", "llm.error")
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
TOKEN_BUCKETS = (0, 100, 500, 1000, 2000, 5000, 10_000, 50_000)
RATE_LIMIT_PATTERNS = ("ratelimit", "rate_limit", "throttl")
GROUPINGS = ("user", "department", "model", "provider", "day")
UNKNOWN = "(unknown)"
RANK_EPSILON = 1e-9
"""``ceil(p * n - RANK_EPSILON)``: the same rank in exact (PostgreSQL numeric) and binary
floating-point arithmetic (DuckDB, MongoDB), where ``0.95 * n`` can land a hair above an integer."""


def _cost_order(row: dict[str, Any]) -> tuple[bool, float, str]:
    cost = row.get("cost_usd")
    return (cost is None, -(cost or 0.0), str(row.get("key") or row.get("trace_id")))


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole else (part or 0) / whole


def _providers(errors: list[dict[str, Any]], latency: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    by_key = {row["key"]: row for row in latency}
    rows = []
    for row in sorted(errors, key=lambda r: r["key"]):
        timing = by_key.get(row["key"], {})
        rows.append({"provider": row["key"], "calls": row["calls"], "errors": row["errors"],
                     "error_rate": _ratio(row["errors"], row["calls"]),
                     "cost_usd": row["cost_usd"], "p50_ms": timing.get("p50"),
                     "p95_ms": timing.get("p95")})
    return rows


def assemble(parts: dict[str, Any], top: int) -> dict[str, Any]:
    """The report from a back-end's parts (``summary``, ``events_by_type``, ``cost_by``,
    ``requests_by_hour``, ``tokens_per_request``, ``latency_ms``, ``provider_errors``,
    ``top_traces``, ``security``, ``redactions``), ordered the same way whatever the back-end."""
    summary = parts["summary"]
    requests = summary["requests"]
    return {
        "events": summary["events"],
        "traces": summary["traces"],
        "requests": requests,
        "total_cost_usd": summary["total_cost_usd"],
        "events_by_type": dict(sorted(parts["events_by_type"].items())),
        "cost_by": {name: sorted(parts["cost_by"][name], key=_cost_order)
                    for name in GROUPINGS},
        "requests_by_hour": sorted(parts["requests_by_hour"], key=lambda r: r["hour"]),
        "tokens_per_request": sorted(parts["tokens_per_request"], key=lambda r: r["bucket"]),
        "latency_ms": {name: sorted(rows, key=lambda r: r["key"])
                       for name, rows in parts["latency_ms"].items()},
        "providers": _providers(parts["provider_errors"], parts["latency_ms"]["provider"]),
        "rates": {
            "error_rate": _ratio(summary["failed_requests"], requests),
            "llm_error_rate": _ratio(summary["llm_errors"], summary["llm_calls"]),
            "retry_rate": _ratio(summary["retries"], requests),
        },
        "top_traces": sorted(parts["top_traces"], key=_cost_order)[:top],
        "security": {**parts["security"],
                     "redactions_by_kind": dict(sorted(parts["redactions"].items()))},
    }


def bucket_of(tokens: int) -> int:
    """The ``TOKEN_BUCKETS`` lower bound ``tokens`` falls in."""
    chosen = TOKEN_BUCKETS[0]
    for bound in TOKEN_BUCKETS:
        if tokens >= bound:
            chosen = bound
    return chosen
