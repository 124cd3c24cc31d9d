"""Sliding windows in fixed time buckets: a bounded amount of memory whatever the traffic.

A :class:`Buckets` keeps one running sum per ``width`` seconds for ``horizon`` seconds; a window
total is the sum of the buckets it covers (so windows are exact to one bucket, 10 s by default).
:class:`Samples` keeps the values themselves (request latencies, for percentiles), at most
``per_bucket`` per bucket; past that it keeps a uniform random sample of them (reservoir) and
counts what it left out, so a flood cannot grow memory.
"""

from __future__ import annotations

import math
import random
from collections import deque


class Buckets:
    """Sums per time bucket; ``total(now, window)`` over the last ``window`` seconds."""

    __slots__ = ("_index", "_sums", "horizon", "width")

    def __init__(self, width: float, horizon: float) -> None:
        self.width = width
        self.horizon = horizon
        self._index: deque[int] = deque()
        self._sums: deque[float] = deque()

    def add(self, now: float, value: float = 1.0) -> None:
        """Add ``value`` at time ``now`` (seconds; any clock, as long as it is the same one)."""
        index = int(now // self.width)
        indexes = self._index
        if indexes and indexes[-1] == index:
            self._sums[-1] += value
            return
        if indexes and index < indexes[-1]:  # a late arrival: into its own bucket if kept
            self._add_late(index, value)
            return
        indexes.append(index)
        self._sums.append(value)
        oldest = index - int(self.horizon // self.width) - 1
        while indexes[0] < oldest:
            indexes.popleft()
            self._sums.popleft()

    def _add_late(self, index: int, value: float) -> None:
        for position in range(len(self._index) - 1, -1, -1):
            if self._index[position] == index:
                self._sums[position] += value
                return
            if self._index[position] < index:
                break
        # no bucket for that moment any more (or never was): count it in the oldest newer one
        for position, existing in enumerate(self._index):
            if existing > index:
                self._sums[position] += value
                return

    def total(self, now: float, window: float, end_ago: float = 0.0) -> float:
        """The sum over ``(now - end_ago - window, now - end_ago]``, to one bucket."""
        last = int((now - end_ago) // self.width)
        first = last - max(1, math.ceil(window / self.width)) + 1
        result = 0.0
        for index, value in zip(reversed(self._index), reversed(self._sums), strict=True):
            if index < first:
                break
            if index <= last:
                result += value
        return result

    def covered(self, now: float) -> float:
        """Seconds of history held (from the oldest bucket to now)."""
        if not self._index:
            return 0.0
        return now - self._index[0] * self.width


class Samples:
    """Values per time bucket (at most ``per_bucket`` each, reservoir-sampled past that)."""

    __slots__ = ("_index", "_seen", "_values", "horizon", "per_bucket", "width")

    def __init__(self, width: float, horizon: float, per_bucket: int = 2_000) -> None:
        self.width = width
        self.horizon = horizon
        self.per_bucket = per_bucket
        self._index: deque[int] = deque()
        self._values: deque[list[float]] = deque()
        self._seen: deque[int] = deque()

    def add(self, now: float, value: float) -> None:
        """Record one value at ``now``."""
        index = int(now // self.width)
        if not self._index or self._index[-1] < index:
            self._index.append(index)
            self._values.append([])
            self._seen.append(0)
            oldest = index - int(self.horizon // self.width) - 1
            while self._index[0] < oldest:
                self._index.popleft()
                self._values.popleft()
                self._seen.popleft()
        # a late value lands in the newest bucket: percentiles over minutes do not notice
        values = self._values[-1]
        self._seen[-1] += 1
        if len(values) < self.per_bucket:
            values.append(value)
        else:  # reservoir: every value seen in the bucket is kept with equal probability
            slot = random.randrange(self._seen[-1])
            if slot < self.per_bucket:
                values[slot] = value

    def quantile(self, now: float, window: float, q: float) -> float | None:
        """The nearest-rank ``q`` quantile of the window's values; None when there are none."""
        last = int(now // self.width)
        first = last - max(1, math.ceil(window / self.width)) + 1
        chosen: list[float] = []
        for index, values in zip(reversed(self._index), reversed(self._values), strict=True):
            if index < first:
                break
            if index <= last:
                chosen.extend(values)
        if not chosen:
            return None
        chosen.sort()
        rank = max(1, math.ceil(q * len(chosen)))
        return chosen[rank - 1]
