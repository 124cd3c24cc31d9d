"""Unusual usage per user or thread, against that key's own history (abuse, runaway loops).

For each key active in the current window (one hour by default), its requests (or cost) in the
window are compared with the same figure in each of its previous windows (up to 24; idle
windows count as 0): the score is how many robust deviations the current value is above the
median, where the deviation is 1.4826 x the median absolute deviation (MAD; the factor makes it
comparable to a standard deviation for normal data). The median and MAD are robust: one earlier
burst does not poison the baseline the way a mean and a standard deviation would.

A flat history has MAD 0, so the deviation has a floor (10 % of the median, and at least one
request or one cent): a steady user who sends one more request is not an anomaly. A key needs
``min_history`` windows of history before it can be flagged (new users are not flagged on their
first requests), and the current value must reach the rule's ``min_count`` (minimum volume).
"""

from __future__ import annotations

from collections.abc import Iterator
from statistics import median

from .keyed import KeyedUsage, KeyState

MAD_TO_SIGMA = 1.4826
_FLOORS = {"requests": 1.0, "cost": 0.01}


def robust_score(current: float, baseline: list[float], floor: float) -> float:
    """How many robust deviations ``current`` lies above the median of ``baseline``."""
    middle, scale = robust_baseline(baseline, floor)
    return (current - middle) / scale


def robust_baseline(baseline: list[float], floor: float) -> tuple[float, float]:
    """The median of ``baseline`` and its robust deviation (1.4826 x MAD, floored)."""
    middle = median(baseline)
    mad = median(abs(value - middle) for value in baseline)
    return middle, max(MAD_TO_SIGMA * mad, 0.1 * middle, floor)


def _baseline(state: KeyState, window: int, history: int) -> tuple[int, float, float, float,
                                                                     float]:
    """The key's baseline for ``window`` (cached on the key: it is fixed during a window)."""
    cached = state.baseline
    if cached is not None and cached[0] == window:
        return cached
    first = max(state.first_window, window - history)
    previous = {entry[0]: entry for entry in state.windows if entry[0] < window}
    requests = [float(previous[i][1]) if i in previous else 0.0 for i in range(first, window)]
    costs = [previous[i][2] if i in previous else 0.0 for i in range(first, window)]
    state.baseline = (window, *robust_baseline(requests, _FLOORS["requests"]),
                      *robust_baseline(costs, _FLOORS["cost"]))
    return state.baseline


def anomaly_scores(usage: KeyedUsage, now: float, what: str, *, min_history: int = 3,
                   min_value: float = 0.0) -> Iterator[tuple[str, float, str]]:
    """(key, score, last trace id) for keys active now with enough history and volume.

    ``what`` is ``requests`` or ``cost``."""
    column = 1 if what == "requests" else 2
    window = int(now // usage.window_s)
    for key, state in usage.current(now):
        if window - max(state.first_window, window - usage.history) < min_history:
            continue  # new: not enough of its own history to call anything unusual
        current = state.windows[-1][column]
        if current < min_value:
            continue
        baseline = _baseline(state, window, usage.history)
        middle, scale = baseline[2 * column - 1], baseline[2 * column]
        yield key, (current - middle) / scale, state.last_trace
