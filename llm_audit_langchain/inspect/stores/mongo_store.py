"""The MongoDB back-end: the report's parts as aggregation pipelines over the collection
``MongoExporter`` writes. Definitions are in ``report.py``; each pipeline mirrors a query in
``sql.py``.

Written for MongoDB 5.0+ and for nx-27017 (the wire-protocol server the tests run), so it uses
only what both evaluate the same way: scalar ``$group`` keys (nx-27017 does not evaluate a
document ``_id`` such as ``{model: "$model"}``), ``$dateToString``/``$hour`` on BSON dates,
``$bucket``, and ``$setWindowFields`` with ``$documentNumber`` and ``$sum`` over an unbounded
window (nx-27017's ``$count`` window operator returns null). Percentiles: see
:func:`nearest_rank_percentiles`, the one place that works around ``$percentile``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from ...events import AuditEvent
from ...exporters.mongo import check_uri
from ...exporters.store_records import restore_large_fields
from .base import pick_trace, trace_prefix
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

_LLM = {"event_type": {"$in": list(LLM_TYPES)}}
_ROOT = {"is_root": True}
_KEYS: dict[str, Any] = {
    "user": {"$ifNull": ["$user_id", UNKNOWN]},
    "department": {"$ifNull": ["$department", UNKNOWN]},
    "model": {"$ifNull": ["$model", UNKNOWN]},
    "provider": {"$ifNull": ["$provider", UNKNOWN]},
    "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$timestamp"}},
}


def _count_if(condition: Any) -> dict[str, Any]:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def _present(field: str) -> dict[str, Any]:
    """How many values of ``field`` are not null: SQL's ``sum`` is NULL when none is."""
    return _count_if({"$ne": [f"${field}", None]})


def _nullable_sums(row: dict[str, Any], *fields: str) -> dict[str, Any]:
    for name in fields:
        if not row.pop(f"{name}_present", 0):
            row[name] = None
    return row


def nearest_rank_percentiles(collection: Any, match: dict[str, Any], key: Any,
                             value: str) -> list[dict[str, Any]]:
    """Per ``key``: the count and the nearest-rank p50/p95/p99 of ``value``.

    ``$percentile``/``$median`` (MongoDB 7.0+) would do this in one ``$group``, but they do not
    exist on 5.0/6.0 and nx-27017 silently ignores them (returns no field). Instead each group is
    ranked with ``$setWindowFields`` (row number and group size, over a window sorted by the
    value), and only the rows at rank ``ceil(p * n)`` come back: at most three per group, so
    nothing large crosses the network, and the answer equals SQL's nearest-rank definition.
    """
    ranks = {name: {"$ceil": {"$subtract": [{"$multiply": ["$n", p]}, RANK_EPSILON]}}
             for name, p in PERCENTILES}
    pipeline = [
        {"$match": {**match, value: {"$ne": None}}},
        {"$addFields": {"_key": key}},
        {"$setWindowFields": {
            "partitionBy": "$_key", "sortBy": {value: 1},
            "output": {"rn": {"$documentNumber": {}},
                       "n": {"$sum": 1, "window": {"documents": ["unbounded", "unbounded"]}}}}},
        {"$addFields": {f"r_{name}": rank for name, rank in ranks.items()}},
        {"$match": {"$expr": {"$or": [{"$eq": ["$rn", f"$r_{name}"]} for name in ranks]}}},
        {"$project": {"_id": 0, "_key": 1, "n": 1, "rn": 1, value: 1,
                      **{f"r_{name}": 1 for name in ranks}}},
    ]
    rows: dict[str, dict[str, Any]] = {}
    for doc in collection.aggregate(pipeline, allowDiskUse=True):
        row = rows.setdefault(doc["_key"], {"key": doc["_key"], "count": doc["n"],
                                            **{name: None for name in ranks}})
        for name in ranks:
            if doc["rn"] == doc[f"r_{name}"]:
                row[name] = doc[value]
    return list(rows.values())


def _starts_in(doc: dict[str, Any], since: datetime | None, until: datetime | None) -> bool:
    moment = doc.get("start_time") or doc.get("timestamp")
    return moment is not None and (since is None or moment >= since) and (
        until is None or moment <= until)


class MongoStore:
    """Read the audit collection with aggregation pipelines."""

    def __init__(self, uri: str, *, collection: str = "llm_audit",
                 timeout_s: float = 60.0) -> None:
        parsed = check_uri(uri, "--from")
        import pymongo

        ms = int(timeout_s * 1000)
        self.source = uri
        self._client: Any = pymongo.MongoClient(
            uri, maxPoolSize=2, connectTimeoutMS=5000, serverSelectionTimeoutMS=5000,
            socketTimeoutMS=ms, tz_aware=True, appname="llm-audit-reader")
        self.collection = self._client[parsed.get("database") or "llm_audit"][collection]

    def _aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self.collection.aggregate(pipeline, allowDiskUse=True))

    def _group(self, match: dict[str, Any], key: Any, **fields: Any) -> list[dict[str, Any]]:
        rows = self._aggregate([{"$match": match}, {"$group": {"_id": key, **fields}}])
        for row in rows:
            row["key"] = row.pop("_id")
        return rows

    def _summary(self) -> dict[str, Any]:
        is_root = {"$eq": ["$is_root", True]}
        rows = self._aggregate([{"$group": {
            "_id": None, "events": {"$sum": 1},
            "requests": _count_if(is_root),
            "failed_requests": _count_if({"$and": [is_root, {"$eq": ["$status", "error"]}]}),
            "llm_calls": _count_if({"$in": ["$event_type", list(LLM_TYPES)]}),
            "llm_errors": _count_if({"$eq": ["$event_type", "llm.error"]}),
            "retries": _count_if({"$or": [{"$eq": ["$event_type", "agent.retry"]},
                                          {"$eq": ["$status", "retry"]}]}),
            "total_cost_usd": {"$sum": "$cost_usd"}, "total_cost_usd_present":
                _present("cost_usd")}}])
        summary = rows[0] if rows else {"events": 0, "requests": 0, "failed_requests": 0,
                                        "llm_calls": 0, "llm_errors": 0, "retries": 0,
                                        "total_cost_usd": None}
        _nullable_sums(summary, "total_cost_usd")
        traces = self._aggregate([{"$group": {"_id": "$trace_id"}},
                                  {"$group": {"_id": None, "n": {"$sum": 1}}}])
        summary["traces"] = traces[0]["n"] if traces else 0
        return summary

    def _cost_by(self, key: Any) -> list[dict[str, Any]]:
        rows = self._group(
            _LLM, key, calls={"$sum": 1},
            tokens_input={"$sum": "$tokens_input"}, tokens_input_present=_present("tokens_input"),
            tokens_output={"$sum": "$tokens_output"},
            tokens_output_present=_present("tokens_output"),
            cost_usd={"$sum": "$cost_usd"}, cost_usd_present=_present("cost_usd"))
        return [_nullable_sums(r, "tokens_input", "tokens_output", "cost_usd") for r in rows]

    def _tokens_per_request(self) -> list[dict[str, Any]]:
        tokens = {"$add": [{"$ifNull": ["$tokens_input", 0]},
                           {"$ifNull": ["$tokens_output", 0]}]}
        rows = self._aggregate([
            {"$match": _LLM}, {"$group": {"_id": "$trace_id", "tokens": {"$sum": tokens}}},
            {"$bucket": {"groupBy": "$tokens", "boundaries": [*TOKEN_BUCKETS, 10**18],
                         "output": {"requests": {"$sum": 1}}}}])
        return [{"bucket": r["_id"], "requests": r["requests"]} for r in rows]

    def _top_traces(self, top: int) -> list[dict[str, Any]]:
        rows = self._aggregate([
            {"$group": {"_id": "$trace_id", "cost_usd": {"$sum": "$cost_usd"},
                        "priced": _present("cost_usd"),
                        "llm_calls": _count_if({"$in": ["$event_type", list(LLM_TYPES)]}),
                        "user_id": {"$max": "$user_id"}}},
            {"$match": {"priced": {"$gt": 0}}},
            {"$sort": {"cost_usd": -1, "_id": 1}}, {"$limit": int(top)}])
        return [{"trace_id": r["_id"], "cost_usd": r["cost_usd"], "llm_calls": r["llm_calls"],
                 "user_id": r.get("user_id")} for r in rows]

    def _security(self) -> dict[str, Any]:
        pattern = "|".join(RATE_LIMIT_PATTERNS)
        return {
            "guardrail_interventions": self.collection.count_documents(
                {"event_type": "llm.guardrail"}),
            "rate_limited": self.collection.count_documents(
                {"event_type": "llm.error", "error_type": {"$regex": pattern, "$options": "i"}}),
        }

    def report(self, *, top: int = 10) -> dict[str, Any]:
        provider_errors = self._group(
            _LLM, _KEYS["provider"], calls={"$sum": 1},
            errors=_count_if({"$eq": ["$event_type", "llm.error"]}),
            cost_usd={"$sum": "$cost_usd"}, cost_usd_present=_present("cost_usd"))
        parts: dict[str, Any] = {
            "summary": self._summary(),
            "events_by_type": {r["key"]: r["n"] for r in self._group(
                {}, "$event_type", n={"$sum": 1})},
            "cost_by": {name: self._cost_by(_KEYS[name]) for name in GROUPINGS},
            "requests_by_hour": [{"hour": r["key"], "requests": r["requests"]} for r in
                                 self._group(_ROOT, {"$hour": "$timestamp"},
                                             requests={"$sum": 1})],
            "tokens_per_request": self._tokens_per_request(),
            "latency_ms": {name: nearest_rank_percentiles(self.collection, _LLM, _KEYS[name],
                                                          "latency_ms")
                           for name in ("model", "provider")},
            "provider_errors": [_nullable_sums(r, "cost_usd") for r in provider_errors],
            "top_traces": self._top_traces(top),
            "security": self._security(),
            "redactions": {r["_id"]: r["n"] for r in self._aggregate([
                {"$match": {"redactions": {"$ne": None}}}, {"$unwind": "$redactions"},
                {"$group": {"_id": "$redactions.kind", "n": {"$sum": "$redactions.count"}}}])},
        }
        return assemble(parts, top)

    def trace_events(self, trace_id: str) -> list[AuditEvent]:
        prefix = trace_prefix(trace_id)
        # A prefix as a range ("g" sorts after every hex digit): it can use the trace_id index,
        # and nx-27017 ignores a $regex filter in distinct.
        found = self.collection.distinct(
            "trace_id", {"trace_id": {"$gte": prefix, "$lt": prefix + "g"}})
        chosen = pick_trace(list(found)[:6], trace_id, self.collection.name)
        documents = self.collection.find({"trace_id": chosen}).sort([("timestamp", 1),
                                                                     ("_id", 1)])
        return [AuditEvent.model_validate(restore_large_fields(doc)) for doc in documents]

    def events(self, *, since: datetime | None = None, until: datetime | None = None,
               event_types: Collection[str] | None = None) -> Iterator[AuditEvent]:
        """Streamed in cursor batches (times have the millisecond precision of BSON dates)."""
        query: dict[str, Any] = {}
        if since is not None or until is not None:
            # start_time, else timestamp: two plain range queries, each document checked
            # again here (nx-27017 compares dates to the second, and drops a range when the
            # filter also tests a field for null)
            bounds = {k: v for k, v in (("$gte", since), ("$lte", until)) if v is not None}
            fields = {"trace_id": 1, "start_time": 1, "timestamp": 1, "_id": 0}
            traces = {doc["trace_id"] for field in ("start_time", "timestamp")
                      for doc in self.collection.find({field: bounds}, fields)
                      if _starts_in(doc, since, until)}
            query["trace_id"] = {"$in": sorted(traces)}
        if event_types is not None:
            query["event_type"] = {"$in": list(event_types)}
        for document in self.collection.find(query).sort([("timestamp", 1), ("_id", 1)]):
            yield AuditEvent.model_validate(restore_large_fields(document))

    def close(self) -> None:
        self._client.close()
