"""``StdoutExporter``: one readable line per event, coloured by status, for development."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from ..events import AuditEvent, event_to_dict
from .jsonl import json_safe

_COLOURS = {"ok": "\033[32m", "error": "\033[31m", "timeout": "\033[35m", "retry": "\033[33m"}
_RESET = "\033[0m"


def event_measures(event: AuditEvent, *, spelled_out: bool = False) -> list[str]:
    """Latency, tokens and cost of one event: compact for one-line views (``12.3ms``,
    ``tok=in/out``), or spelled out for the tree (``12.3 ms``, ``in / out tokens``)."""
    parts = []
    gap, tokens = (" ", "{} in / {} out tokens") if spelled_out else ("", "tok={}/{}")
    if event.latency_ms is not None:
        parts.append(f"{event.latency_ms:.1f}{gap}ms")
    if event.tokens_input is not None or event.tokens_output is not None:
        parts.append(tokens.format(event.tokens_input, event.tokens_output))
    if event.cost_usd is not None:
        parts.append(f"${event.cost_usd:.6f}")
    return parts


class StdoutExporter:
    """Print events as ``HH:MM:SS.mmm status type agent/action latency tokens cost trace``.

    Args:
        stream: where to write (default ``sys.stdout``).
        colour: ANSI colours; default on for a terminal unless ``NO_COLOR`` is set.
        json_lines: print the full JSON record instead of the readable summary.
    """

    name = "stdout"

    def __init__(self, stream: TextIO | None = None, *, colour: bool | None = None,
                 json_lines: bool = False) -> None:
        self._stream = stream
        self._colour = colour
        self._json = json_lines
        self._lock = threading.Lock()

    def _use_colour(self, stream: TextIO) -> bool:
        if self._colour is not None:
            return self._colour
        return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()

    def format(self, event: AuditEvent, colour: bool = False) -> str:
        """The readable one-line form of ``event``."""
        if self._json:
            return json.dumps(json_safe(event_to_dict(event)), ensure_ascii=False, allow_nan=False)
        parts = [event.timestamp.strftime("%H:%M:%S.%f")[:-3], f"{event.status:<7}",
                 f"{event.event_type!s:<18}", f"{event.agent}/{event.action}"]
        parts.extend(event_measures(event))
        if event.error is not None:
            parts.append(f"{event.error.type}: {event.error.message[:120]}")
        parts.append(f"trace={event.trace_id[:8]}")
        line = "  ".join(parts)
        if colour:
            return f"{_COLOURS.get(event.status, '')}{line}{_RESET}"
        return line

    def export(self, batch: Sequence[AuditEvent]) -> None:
        stream = self._stream or sys.stdout
        colour = self._use_colour(stream)
        text = "".join(self.format(e, colour) + "\n" for e in batch)
        with self._lock:
            stream.write(text)
            stream.flush()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held at fork time)."""
        self._lock = threading.Lock()

    def force_flush(self, timeout: float | None = None) -> bool:
        (self._stream or sys.stdout).flush()
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        return None
