"""What the database exporters store for one event: the fields that are filtered and grouped
on as top-level columns, the rest as one document, and no field larger than ``max_field_size``.

Shared by ``MongoExporter`` and ``PostgresExporter`` so both stores hold the same record:

- top level (``TOP_LEVEL``): ids, times, event type, status, model, provider, cost, tokens,
  latency, agent/node, the run's ``user_id``, ``department`` and ``thread_id``, ``is_root``
  (the trace's root run: a request), ``error_type`` and ``redactions`` (sanitizer markers in
  the event, by kind). User and
  department come from the caller's ``config["metadata"]``, which only the trace's root event
  carries; the exporter copies them to every event of that trace in the same batch, and
  back-fills the trace's rows stored by earlier batches (:class:`OwnerBackfill`).
- the document: the full JSON form of the event (``event_to_dict``), with large strings
  replaced by a marker (:func:`limit_large_fields`).

A string longer than ``max_field_size`` bytes (UTF-8) is never silently cut: it becomes
``{"llm_audit_large_field": "compressed" | "truncated", "original_bytes": N, "sha256": HEX, ...}``
holding either the whole value zlib-compressed and base64-encoded (``"zlib_b64"``) when that fits
in ``max_field_size``, or the first ``max_field_size`` bytes (``"head"``). The hash lets an
auditor prove that a copy kept elsewhere is the original.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from ..events import AuditEvent, event_to_dict
from .jsonl import json_safe

LargeFieldMode = Literal["compress", "truncate"]
MARKER_KEY = "llm_audit_large_field"
DEFAULT_MAX_FIELD_SIZE = 10_240

TOP_LEVEL = ("event_id", "timestamp", "start_time", "event_type", "trace_id", "span_id",
             "parent_span_id", "run_id", "user_id", "department", "thread_id", "agent",
             "action", "node", "model", "provider", "status", "cost_usd", "tokens_input",
             "tokens_output", "latency_ms", "is_root", "error_type", "redactions")

REDACTION = re.compile(rb"\[REDACTED_([A-Z0-9_]+)[\]:]")
"""The sanitizer's markers (``[REDACTED_EMAIL]``, ``[REDACTED_EMAIL:tag]``), found in an
event's JSON; their kinds become the ``redactions`` field: ``[{"kind": "EMAIL", "count": 2}]``."""


@dataclass
class FieldLimiter:
    """Replaces strings over ``max_field_size`` bytes by a marker; counts what it replaced."""

    max_field_size: int = DEFAULT_MAX_FIELD_SIZE
    mode: LargeFieldMode = "compress"
    compressed: int = 0
    truncated: int = 0

    def limit(self, value: Any) -> Any:
        """``value`` with every oversized string (at any depth) replaced by its marker."""
        if isinstance(value, str):
            # A str of n characters is at least n bytes: skip encoding the short ones.
            if len(value) * 4 <= self.max_field_size:
                return value
            raw = value.encode("utf-8", "surrogatepass")
            return value if len(raw) <= self.max_field_size else self._marker(raw)
        if isinstance(value, dict):
            return {k: self.limit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.limit(v) for v in value]
        return value

    def _marker(self, raw: bytes) -> dict[str, Any]:
        marker: dict[str, Any] = {MARKER_KEY: "", "original_bytes": len(raw),
                                  "sha256": hashlib.sha256(raw).hexdigest()}
        if self.mode == "compress":
            packed = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
            if len(packed) <= self.max_field_size:
                self.compressed += 1
                marker[MARKER_KEY] = "compressed"
                marker["zlib_b64"] = packed
                return marker
        self.truncated += 1
        marker[MARKER_KEY] = "truncated"
        marker["head"] = raw[: self.max_field_size].decode("utf-8", "ignore")
        return marker


def restore_large_field(value: Any) -> Any:
    """The original string of a ``compressed`` marker; any other value unchanged."""
    if isinstance(value, dict) and value.get(MARKER_KEY) == "compressed":
        raw = zlib.decompress(base64.b64decode(value["zlib_b64"]))
        return raw.decode("utf-8", "surrogatepass")
    return value


def restore_large_fields(value: Any) -> Any:
    """``value`` with every ``compressed`` marker (at any depth) back to its original string;
    ``truncated`` markers stay (the rest of the value was never stored)."""
    if isinstance(value, dict):
        if value.get(MARKER_KEY) == "compressed":
            return restore_large_field(value)
        return {k: restore_large_fields(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_large_fields(v) for v in value]
    return value


def _text(value: Any) -> str | None:
    """A top-level text value (PostgreSQL text cannot hold NUL: it becomes U+FFFD)."""
    return None if value is None else str(value).replace("\x00", "\ufffd")


def trace_owners(batch: Sequence[AuditEvent]) -> dict[str, tuple[str | None, str | None]]:
    """trace id → (user id, department) from the caller's metadata on the trace's events."""
    owners: dict[str, tuple[str | None, str | None]] = {}
    for event in batch:
        metadata = event.data.get("metadata")
        if isinstance(metadata, dict) and ("user_id" in metadata or "department" in metadata):
            owners[event.trace_id] = (_text(metadata.get("user_id")),
                                      _text(metadata.get("department")))
    return owners


class OwnerBackfill:
    """Remembers the traces written without their owner (the root had not arrived yet), so
    the batch that brings the root updates only those. Usually the tail sampler releases a
    trace's events together and nothing needs updating. Bounded to ``max_traces`` traces."""

    def __init__(self, max_traces: int = 10_000) -> None:
        self.max_traces = max_traces
        self._waiting: OrderedDict[str, None] = OrderedDict()

    def pending(self, batch: Sequence[AuditEvent]
                ) -> dict[str, tuple[str | None, str | None]]:
        """The owners ``batch`` brings for traces that earlier batches stored without one."""
        return {t: owner for t, owner in trace_owners(batch).items() if t in self._waiting}

    def settle(self, batch: Sequence[AuditEvent]) -> None:
        """``batch`` and its back-fill are stored: update what is still waiting."""
        owners = trace_owners(batch)
        for trace_id in owners:
            self._waiting.pop(trace_id, None)
        for event in batch:
            if event.trace_id not in owners:
                self._waiting[event.trace_id] = None
                self._waiting.move_to_end(event.trace_id)
        while len(self._waiting) > self.max_traces:
            self._waiting.popitem(last=False)


def store_records(batch: Sequence[AuditEvent], limiter: FieldLimiter) -> list[dict[str, Any]]:
    """One record per event: the ``TOP_LEVEL`` values, ``"document"`` (the event's JSON form
    with large fields replaced) and ``"document_json"`` (its encoding, or None when fields were
    replaced). ``timestamp``/``start_time`` stay ``datetime``."""
    owners = trace_owners(batch)
    records = []
    for event in batch:
        document = event_to_dict(event)
        encoded: bytes | None
        try:
            encoded = orjson.dumps(document)
        except (TypeError, orjson.JSONEncodeError):  # a value JSON cannot hold: its repr
            document = json_safe(document)
            encoded = orjson.dumps(document)
        redactions = _redactions(encoded)
        if len(encoded) > limiter.max_field_size:  # only then can one string be too large
            document, encoded = limiter.limit(document), None
        data = event.data
        graph = data.get("langgraph")
        user_id, department = owners.get(event.trace_id, (None, None))
        record: dict[str, Any] = {
            "event_id": event.event_id, "timestamp": event.timestamp,
            "start_time": event.start_time, "event_type": str(event.event_type),
            "trace_id": event.trace_id, "span_id": event.span_id,
            "parent_span_id": event.parent_span_id, "run_id": event.run_id,
            "user_id": user_id, "department": department,
            "thread_id": _text(data.get("thread_id")),
            "agent": event.agent, "action": event.action,
            "node": _text(graph.get("node")) if isinstance(graph, dict) else None,
            "model": event.model, "provider": _text(data.get("provider")),
            "status": event.status, "cost_usd": event.cost_usd,
            "tokens_input": event.tokens_input, "tokens_output": event.tokens_output,
            "latency_ms": event.latency_ms,
            # the trace's root run (a request, for analytics) and the error's class
            "is_root": event.start_time is not None and data.get("trace_root") is True,
            "error_type": _text(event.error.type) if event.error is not None else None,
            "redactions": redactions,
            "document": document, "document_json": encoded,
        }
        records.append(record)
    return records


def _redactions(encoded: bytes) -> list[dict[str, Any]] | None:
    """What the sanitizer redacted in one event, by kind (None when nothing)."""
    if b"[REDACTED_" not in encoded:
        return None
    counts: dict[str, int] = {}
    for kind in REDACTION.findall(encoded):
        name = kind.decode("ascii")
        counts[name] = counts.get(name, 0) + 1
    return [{"kind": k, "count": n} for k, n in sorted(counts.items())] or None


def month_start(moment: datetime) -> datetime:
    """The first instant of ``moment``'s UTC month."""
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
