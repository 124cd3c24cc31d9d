"""Per user and per thread: today's spend (budgets) and the recent windows (anomalies).

Both tables are bounded: past ``max_keys`` the key seen least recently is forgotten (a user
who comes back later starts as new, which errs on the side of not flagging them).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

_DAY = 86_400.0


@dataclass(slots=True)
class KeyState:
    """One user's (or thread's) spend today and its per-window history."""

    day: int = -1
    cost_today: float = 0.0
    tokens_today: int = 0
    first_window: int = 0
    windows: deque[tuple[int, int, float]] = field(default_factory=deque)
    """(window index, requests, cost), oldest first, only windows with activity."""
    last_trace: str = ""
    baseline: tuple[int, float, float, float, float] | None = None
    """(window it was computed for, requests median, requests deviation, cost median, cost
    deviation): the previous windows do not change during a window, so computed once."""


class KeyedUsage:
    """Requests, cost and tokens per key, by UTC day and by anomaly window."""

    def __init__(self, window_s: float = 3_600.0, history: int = 24,
                 max_keys: int = 100_000) -> None:
        self.window_s = window_s
        self.history = history
        self.max_keys = max_keys
        self.keys: OrderedDict[str, KeyState] = OrderedDict()

    def add(self, key: str, now: float, cost: float, tokens: int, trace_id: str) -> None:
        """One finished request of ``key`` at ``now`` (seconds since the epoch)."""
        state = self.keys.pop(key, None)
        window = int(now // self.window_s)
        if state is None:
            state = KeyState(first_window=window)
        self.keys[key] = state  # most recent last
        if len(self.keys) > self.max_keys:
            self.keys.popitem(last=False)
        day = int(now // _DAY)
        if state.day != day:
            state.day, state.cost_today, state.tokens_today = day, 0.0, 0
        state.cost_today += cost
        state.tokens_today += tokens
        state.last_trace = trace_id
        windows = state.windows
        if windows and windows[-1][0] == window:
            _, requests, spent = windows[-1]
            windows[-1] = (window, requests + 1, spent + cost)
        else:
            windows.append((window, 1, cost))
        while windows and windows[0][0] < window - self.history:
            windows.popleft()

    def today(self, now: float) -> Iterator[tuple[str, KeyState]]:
        """The keys with spend today (UTC)."""
        day = int(now // _DAY)
        return ((key, state) for key, state in self.keys.items() if state.day == day)

    def current(self, now: float) -> Iterator[tuple[str, KeyState]]:
        """The keys active in the current window."""
        window = int(now // self.window_s)
        return ((key, state) for key, state in self.keys.items()
                if state.windows and state.windows[-1][0] == window)
