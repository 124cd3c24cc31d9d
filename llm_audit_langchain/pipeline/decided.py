"""``DecidedTraces``: the keep/drop decisions of recently closed traces, so an event arriving after
its trace was decided (a late callback, a background task) follows the decision.

Bounded and compact: keys are the last 64 bits of the trace id as an int (a 32-character string
key costs three times the memory), and the oldest are forgotten a generation at a time (two plain
dicts swapped when the newer one fills), with no per-insert bookkeeping. Between ``capacity / 2``
and ``capacity`` of the most recent decisions are remembered at any time.
"""

from __future__ import annotations


def _key(trace_id: str) -> int:
    try:
        return int(trace_id[-16:], 16)
    except ValueError:  # not hex: not one of ours, still remembered
        return hash(trace_id)


class DecidedTraces:
    """``get(trace_id)`` → True (kept), False (dropped) or None (not remembered)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._half = max(1, capacity // 2)
        self._new: dict[int, bool] = {}
        self._old: dict[int, bool] = {}

    def get(self, trace_id: str) -> bool | None:
        """The decision for ``trace_id``, if it is still remembered."""
        key = _key(trace_id)
        found = self._new.get(key)
        return self._old.get(key) if found is None else found

    def remember(self, trace_id: str, keep: bool) -> None:
        """Record a decision; the oldest generation goes when the newer one is full."""
        self._new[_key(trace_id)] = keep
        if len(self._new) >= self._half:
            self._old, self._new = self._new, {}

    def __len__(self) -> int:
        return len(self._new) + len(self._old)
