"""CloudWatch Logs ``PutLogEvents`` limits, enforced on our side.

The service rejects a whole call that breaks a limit (and the local test server does not check
them all), so every call we make is built to fit:

- at most 10,000 events and 1,048,576 bytes, counting each message's UTF-8 size + 26 bytes;
- events in chronological order, the first and last within 24 hours of each other;
- one event at most 256 KB (message + 26 bytes): a longer record is split into parts, each a JSON
  object that names the event and its part (``{"event_id", "trace_id", "split": {"part", "of"},
  "chunk"}``, the chunks joined in order are the original line); beyond ``MAX_PARTS`` parts the
  rest is cut and the last part says ``"truncated": true``. Nothing is dropped silently;
- no timestamp older than 14 days or more than 2 hours ahead: such an event is stamped with the
  current time instead (its own ``timestamp`` stays in the message) and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 262_144  # message + overhead
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
MAX_AGE_MS = 14 * 24 * 3600 * 1000
MAX_AHEAD_MS = 2 * 3600 * 1000
MAX_PARTS = 64
# Margins so that clock skew between us and the service never puts an event just outside.
_AGE_MARGIN_MS = 3600 * 1000
_AHEAD_MARGIN_MS = 5 * 60 * 1000
# Room for the part wrapper's fields; a chunk is escaped inside a JSON string, which at most
# doubles its size (every character a quote or a backslash), hence the halving below.
_WRAPPER_BYTES = 512
CHUNK_BYTES = (MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES - _WRAPPER_BYTES) // 2


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One ``InputLogEvent``: epoch milliseconds and the message; ``key`` identifies it across
    retries (event id, part number)."""

    timestamp: int
    message: str
    key: str

    @property
    def size(self) -> int:
        """What the event counts against the batch size limit."""
        return len(self.message.encode("utf-8")) + EVENT_OVERHEAD_BYTES

    def as_input(self) -> dict[str, Any]:
        """The dict ``put_log_events`` takes."""
        return {"timestamp": self.timestamp, "message": self.message}


@dataclass
class PrepareCounts:
    """What preparing messages changed, for the exporter's stats."""

    split_events: int = 0
    truncated_events: int = 0
    restamped_events: int = 0


def message_parts(line: str, event_id: str, trace_id: str,
                  counts: PrepareCounts | None = None) -> list[str]:
    """``line`` itself when it fits in one event, else its parts (see the module docstring)."""
    encoded = line.encode("utf-8")
    if len(encoded) + EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES:
        return [line]
    chunks = list(_utf8_chunks(encoded, CHUNK_BYTES))
    truncated = len(chunks) > MAX_PARTS
    if counts is not None:
        counts.split_events += 1
        counts.truncated_events += truncated
    chunks = chunks[:MAX_PARTS]
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        wrapper: dict[str, Any] = {"event_id": event_id, "trace_id": trace_id,
                                   "split": {"part": index, "of": len(chunks)}, "chunk": chunk}
        if truncated and index == len(chunks):
            wrapper["truncated"] = True
            wrapper["original_bytes"] = len(encoded)
        parts.append(orjson.dumps(wrapper).decode("utf-8"))
    return parts


def _utf8_chunks(encoded: bytes, limit: int) -> Iterator[str]:
    """``encoded`` cut into pieces of at most ``limit`` bytes, never inside a character."""
    start = 0
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1  # a continuation byte: step back to the character's first byte
        yield encoded[start:end].decode("utf-8")
        start = end


def in_window(timestamp_ms: int, now_ms: int) -> bool:
    """True when the service accepts ``timestamp_ms`` (with margins for clock skew)."""
    oldest = now_ms - MAX_AGE_MS + _AGE_MARGIN_MS
    newest = now_ms + MAX_AHEAD_MS - _AHEAD_MARGIN_MS
    return oldest <= timestamp_ms <= newest


def restamp(events: Iterable[LogEvent], now_ms: int,
            counts: PrepareCounts | None = None) -> list[LogEvent]:
    """The events, those outside the accepted window stamped ``now_ms``."""
    kept = []
    for event in events:
        if in_window(event.timestamp, now_ms):
            kept.append(event)
            continue
        kept.append(LogEvent(now_ms, event.message, event.key))
        if counts is not None:
            counts.restamped_events += 1
    return kept


def batches(events: Iterable[LogEvent]) -> list[list[LogEvent]]:
    """The events sorted by time (stable) and cut into calls that fit every limit."""
    ordered = sorted(events, key=lambda e: e.timestamp)
    calls: list[list[LogEvent]] = []
    current: list[LogEvent] = []
    size = 0
    for event in ordered:
        event_size = event.size
        if current and (len(current) >= MAX_BATCH_EVENTS
                        or size + event_size > MAX_BATCH_BYTES
                        or event.timestamp - current[0].timestamp > MAX_BATCH_SPAN_MS):
            calls.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        calls.append(current)
    return calls


def batch_fits(call: list[LogEvent]) -> bool:
    """True when one ``put_log_events`` call respects every limit (used by the tests)."""
    if not call or len(call) > MAX_BATCH_EVENTS:
        return False
    if sum(e.size for e in call) > MAX_BATCH_BYTES:
        return False
    if any(e.size > MAX_EVENT_BYTES for e in call):
        return False
    stamps = [e.timestamp for e in call]
    return stamps == sorted(stamps) and stamps[-1] - stamps[0] <= MAX_BATCH_SPAN_MS
