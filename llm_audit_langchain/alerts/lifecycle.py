"""Each rule and label set moves through Prometheus's states: inactive → pending → firing →
resolved. Only the two transitions that matter to a person are announced: *fired* (once per
firing, however long it lasts: that is the dedupe) and *resolved*. After a resolution, a new
firing within the rule's ``cooldown_s`` is tracked but not announced, nor is its resolution (a
flapping condition pages once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .measures import Labels, Measurement
from .rules import AlertRule

FIRED, RESOLVED = "fired", "resolved"
MAX_COOLDOWNS = 100_000
"""Label sets whose last announcement is remembered per rule (for its cooldown) at most; past
it the oldest is forgotten, so that label set may be announced again before its cooldown ends."""


@dataclass(frozen=True)
class Alert:
    """An announced transition of one rule and label set."""

    rule: AlertRule
    state: str  # "fired" or "resolved"
    labels: dict[str, str]
    value: float | None
    at: float
    active_since: float
    examples: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.rule.name

    @property
    def severity(self) -> str:
        """The rule's severity."""
        return self.rule.severity

    def summary(self) -> str:
        """One line for a person: what, where, how bad."""
        where = ", ".join(f"{k}={v}" for k, v in self.labels.items())
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        rule = self.rule
        verb = "FIRING" if self.state == FIRED else "resolved"
        return (f"[{rule.severity}] {rule.name} {verb}: {rule.metric} = {value} "
                f"({rule.comparison} {rule.threshold:g} over {rule.window_s:g}s)"
                + (f" {{{where}}}" if where else ""))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (alert events, webhooks, SNS messages)."""
        return {"rule": self.rule.name, "state": self.state, "severity": self.rule.severity,
                "metric": self.rule.metric, "value": self.value,
                "threshold": self.rule.threshold, "comparison": self.rule.comparison,
                "window_s": self.rule.window_s, "for_s": self.rule.for_s,
                "labels": self.labels, "at": self.at, "active_since": self.active_since,
                "example_trace_ids": self.examples, "description": self.rule.description,
                "summary": self.summary()}


@dataclass(slots=True)
class _Track:
    since: float  # when the condition started holding
    firing: bool = False
    announced: bool = False  # whether this firing was announced (not suppressed)


class Lifecycle:
    """The state of every rule and label set (the engine's, under its lock)."""

    def __init__(self) -> None:
        self._tracks: dict[str, dict[Labels, _Track]] = {}
        self._last_announced: dict[str, dict[Labels, float]] = {}
        self.suppressed = 0

    def step(self, rule: AlertRule, measured: dict[Labels, Measurement], now: float
             ) -> list[Alert]:
        """Advance ``rule``'s label sets to ``now`` given their values; the announcements."""
        alerts: list[Alert] = []
        tracks = self._tracks.setdefault(rule.name, {})
        announced = self._last_announced.setdefault(rule.name, {})
        holding = {labels for labels, (value, _) in measured.items() if rule.holds(value)}
        for labels in holding:
            track = tracks.get(labels)
            if track is None:
                track = tracks[labels] = _Track(since=now)
            if track.firing or now - track.since < rule.for_s:
                continue
            track.firing = True
            last = announced.get(labels)
            if last is not None and now - last < rule.cooldown_s:
                self.suppressed += 1
                continue
            track.announced = True
            announced.pop(labels, None)  # re-inserted: the dict stays in announcement order
            announced[labels] = now
            value, examples = measured[labels]
            alerts.append(self._alert(rule, FIRED, labels, value, now, track, examples))
        for labels in [labels for labels in tracks if labels not in holding]:
            track = tracks.pop(labels)
            if track.firing and track.announced:
                announced.pop(labels, None)
                announced[labels] = now  # the cooldown runs from the resolution
                current = measured.get(labels)
                alerts.append(self._alert(rule, RESOLVED, labels, current[0] if current else None,
                                          now, track, []))
        if len(announced) > len(tracks) + 1_000:  # forget cooldowns that are over (bounded)
            for labels in [k for k, at in announced.items()
                           if now - at >= rule.cooldown_s and k not in tracks]:
                del announced[labels]
        while len(announced) > MAX_COOLDOWNS:  # a long cooldown over many users or threads
            del announced[next(iter(announced))]
        return alerts

    def active(self) -> list[dict[str, Any]]:
        """Pending and firing alerts now: rule, labels, state, since."""
        return [{"rule": name, "labels": dict(labels), "since": track.since,
                 "state": "firing" if track.firing else "pending"}
                for name, tracks in self._tracks.items() for labels, track in tracks.items()]

    @staticmethod
    def _alert(rule: AlertRule, state: str, labels: Labels, value: float | None, now: float,
               track: _Track, examples: list[str]) -> Alert:
        return Alert(rule=rule, state=state, labels={**rule.labels, **dict(labels)},
                     value=value, at=now, active_since=track.since, examples=examples)
