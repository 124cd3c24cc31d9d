"""Tail sampling per trace: every failing trace is kept whole, normal traffic is sampled.

What each knob applies to (env var in brackets):

* ``error_rate`` [``ERROR_SAMPLE_RATE``, 1.0]: fraction of traces with an error or a timeout kept.
* ``success_rate`` [``SUCCESS_SAMPLE_RATE``, 0.10]: fraction of *normal* traces kept: successful,
  faster than the threshold, no retry, no fallback, under the cost threshold.
* ``slow_threshold_ms`` [``SLOW_REQUEST_THRESHOLD_MS``, 1500]: a trace whose root run took longer
  is always kept.
* ``cost_threshold_usd`` [``AUDIT_COST_THRESHOLD_USD``, off]: a trace that cost more is always kept.
* ``trace_rate`` [``TRACE_SAMPLE_RATE``, 0.20]: the head decision, the W3C ``sampled`` flag for
  traces this process starts (what downstream services are told, OpenTelemetry's
  ``TraceIdRatioBased`` rule on the trace id). It does not change what is kept here.
* ``debug`` [``AUDIT_DEBUG``]: keep everything.
* ``keep_first`` [``AUDIT_KEEP_FIRST_TRACES``, 3 from the environment, 0 when built by hand]:
  the first traces a sampler decides are kept whatever the rates, so a first try always writes
  something (``reason = "first"``, counted in ``stats()["sampling"]["kept_first"]``).

How they combine, for each trace, when its root run ends:

0. ``success_rate`` and ``error_rate`` both 1 (keeping everything, as compliance needs) → every
   trace is kept, an upstream ``sampled=0`` included, and its events go out as they come: nothing
   is held, nothing remembered (``reason = "all"`` on the root).
1. debug → keep (as 0, without a reason on the root).
2. error or timeout anywhere in the trace → keep with ``error_rate``.
3. slow root, a retry, a fallback, a guardrail, a human review, feedback, a write-ahead tool
   call, or cost over the threshold → keep.
4. an upstream ``traceparent`` said ``sampled=1`` → keep; ``sampled=0`` → drop.
5. otherwise → keep with ``success_rate``; one of the first ``keep_first`` traces → keep.

The first trace a sampler drops is logged once (at WARNING, with how to keep everything), so
sampling is never silent.

Decisions are deterministic functions of the trace id (so every process that sees a trace
decides alike) and apply to the whole trace: a kept trace is kept whole, a dropped one entirely.
Events wait in a per-trace buffer until the root ends, or at most the run TTL (``expire``: a
root that never ends cleanly must not hold its trace forever). The buffer is bounded
(``max_held_events`` events, and as many open traces);
on overflow the oldest open trace is decided early on what it has shown so far (errors favour
keeping it) and its later events follow that decision, except errors, which are always kept.
Metrics see every event before this stage, sampled out or not.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..events import AuditEventType
from .decided import DecidedTraces

if TYPE_CHECKING:
    from ..config import AuditConfig
    from .base import Item

logger = logging.getLogger("llm_audit_langchain")

_ROOT = "trace_root"
_UPSTREAM = "upstream_sampled"
_MAX_DECIDED = 100_000
_SCALE = float(1 << 64)


def _rate(name: str, default: float) -> float:
    value = _number(name, default, "a number between 0 and 1")
    if value is not None and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={os.environ[name]!r}: must be a number between 0 and 1")
    return default if value is None else value


def _number(name: str, default: float | None, allowed: str) -> float | None:
    """The variable as a finite number ``>= 0`` (empty or unset: ``default``)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be {allowed}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={raw!r}: must be {allowed}")
    return value


def trace_fraction(trace_id: str, *, salt: int = 0) -> float:
    """A uniform number in [0, 1) fixed by the trace id (its low 64 bits, as OpenTelemetry)."""
    value = int(trace_id[16:], 16) if salt == 0 else int(trace_id[:16], 16)
    return value / _SCALE


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """The sampling rules. ``SamplingPolicy.from_env()`` reads them from the environment."""

    trace_rate: float = 0.20
    success_rate: float = 0.10
    error_rate: float = 1.0
    slow_threshold_ms: float = 1500.0
    cost_threshold_usd: float | None = None
    debug: bool = False
    max_held_events: int = 50_000
    keep_first: int = 0

    def __post_init__(self) -> None:
        for name in ("trace_rate", "success_rate", "error_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SamplingPolicy.{name}={value!r} must be between 0 and 1")
        if self.slow_threshold_ms < 0 or self.keep_first < 0:
            raise ConfigError(f"SamplingPolicy: slow_threshold_ms={self.slow_threshold_ms!r} "
                              f"and keep_first={self.keep_first!r} must be >= 0")

    @classmethod
    def from_env(cls, *, debug: bool | None = None, keep_first: int = 0) -> SamplingPolicy:
        """From ``TRACE_SAMPLE_RATE``, ``SUCCESS_SAMPLE_RATE``, ``ERROR_SAMPLE_RATE``,
        ``SLOW_REQUEST_THRESHOLD_MS``, ``AUDIT_COST_THRESHOLD_USD`` and ``AUDIT_DEBUG``."""
        if debug is None:
            debug = os.environ.get("AUDIT_DEBUG", "").strip().lower() in ("1", "true", "yes")
        slow = _number("SLOW_REQUEST_THRESHOLD_MS", 1500.0, "a number of milliseconds >= 0")
        cost = _number("AUDIT_COST_THRESHOLD_USD", None, "a cost in USD >= 0")
        return cls(
            trace_rate=_rate("TRACE_SAMPLE_RATE", 0.20),
            success_rate=_rate("SUCCESS_SAMPLE_RATE", 0.10),
            error_rate=_rate("ERROR_SAMPLE_RATE", 1.0),
            slow_threshold_ms=1500.0 if slow is None else slow,
            cost_threshold_usd=cost,
            debug=debug,
            keep_first=keep_first,
        )

    @classmethod
    def from_config(cls, config: AuditConfig) -> SamplingPolicy:
        """The environment's policy, with ``config.debug``, ``config.keep_first_traces`` and
        ``config.sampling`` applied."""
        if isinstance(config.sampling, SamplingPolicy):
            return config.sampling
        if config.sampling is not None:
            raise ConfigError(f"AuditConfig(sampling=...) must be a SamplingPolicy, "
                              f"not {type(config.sampling).__name__}")
        return cls.from_env(debug=config.debug or None, keep_first=config.keep_first_traces)

    @property
    def keeps_everything(self) -> bool:
        """True when no trace can be dropped (``debug``, or successes and errors both kept at
        rate 1): events then go straight through, nothing is held or remembered."""
        return self.debug or (self.success_rate >= 1.0 and self.error_rate >= 1.0)

    def head_sampled(self, trace_id: str) -> bool:
        """The W3C ``sampled`` flag for a trace this process starts."""
        return trace_fraction(trace_id) < self.trace_rate

    def decide(self, trace: TraceState, upstream: bool | None) -> tuple[bool, str]:
        """Keep or drop a trace, and why (``error``, ``slow``, ``retry``, ``rate``...)."""
        if self.debug:
            return True, "debug"
        if trace.error:
            return trace_fraction(trace.trace_id, salt=1) < self.error_rate, "error"
        if trace.reason is not None:
            return True, trace.reason
        if upstream is not None:
            return upstream, "upstream"
        return trace_fraction(trace.trace_id) < self.success_rate, "rate"

    def keep_rate(self, reason: str) -> float:
        """The probability with which a trace kept for ``reason`` was kept."""
        if reason == "rate":
            return self.success_rate
        if reason == "error":
            return self.error_rate
        return 1.0

    def sampler(self) -> TailSampler:
        """A fresh per-trace buffer applying this policy (one per pipeline)."""
        return TailSampler(self)


@dataclass(slots=True)
class TraceState:
    """What a trace has shown so far, and its held events."""

    trace_id: str
    events: list[Item] = field(default_factory=list)
    error: bool = False
    reason: str | None = None  # why it must be kept, other than an error
    cost: float = 0.0
    opened: float = field(default_factory=time.monotonic)


_KEEP_TYPES = {AuditEventType.AGENT_RETRY: "retry", AuditEventType.AGENT_FALLBACK: "fallback",
               AuditEventType.LLM_GUARDRAIL: "guardrail", AuditEventType.ALERT_FIRED: "alert",
               AuditEventType.ALERT_RESOLVED: "alert", AuditEventType.HUMAN_REVIEW: "review",
               AuditEventType.FEEDBACK: "feedback"}
# What a person said about a trace, and side-effecting tool calls: kept even when they arrive
# after their trace was sampled out.
_ALWAYS_KEPT = frozenset({AuditEventType.HUMAN_REVIEW, AuditEventType.FEEDBACK})
_WRITE_AHEAD = "write_ahead"


class TailSampler:
    """Holds each trace's events until its root run ends, then keeps or drops them all.

    Only the pipeline's worker thread calls ``offer`` and ``drain``.
    """

    def __init__(self, policy: SamplingPolicy) -> None:
        self.policy = policy
        self._keep_all = policy.keeps_everything
        self._open: OrderedDict[str, TraceState] = OrderedDict()
        self._decided = DecidedTraces(_MAX_DECIDED)
        self._held = 0
        self.early_decisions = 0
        self.expired_traces = 0
        self.rootless_traces = 0
        self.late_errors = 0
        self.decided_traces = 0
        self.kept_first = 0
        self.dropped_traces = 0

    def held(self) -> int:
        """Events waiting for their trace's root to end."""
        return self._held

    def after_fork(self) -> None:
        """In a forked child: forget the parent's open traces (the parent exports them)."""
        self._open.clear()
        self._held = 0

    def offer(self, event: Item) -> tuple[list[Item], int]:
        """Take one event; return the events released now and how many were dropped.

        ``event`` may still be unbuilt (``pending.PendingEvent``): the pipeline builds only what
        is kept. What decides (status, type, cost, the root's latency) is readable either way."""
        if self._keep_all:
            if event.data.get(_ROOT) and not self.policy.debug:
                event.data["sampling"] = {"reason": "all", "rate": 1.0}
            return [event], 0
        decided = self._decided.get(event.trace_id)
        if decided is not None:
            return self._follow(decided, event)
        trace = self._open.get(event.trace_id)
        if trace is None:
            if event.event_type is AuditEventType.FEEDBACK:  # about a trace that is over
                return [event], 0
            trace = self._open[event.trace_id] = TraceState(event.trace_id)
        self._observe(trace, event)
        released: list[Item]
        if event.event_type in _ALWAYS_KEPT or event.data.get(_WRITE_AHEAD):
            released, dropped = [event], 0  # never held (a crash must not lose it); kept trace
        else:
            trace.events.append(event)
            self._held += 1
            if event.data.get(_ROOT):
                released, dropped = self._close(trace, event.data.get(_UPSTREAM), event)
            else:
                released, dropped = [], 0
        # Open traces are bounded too: one that holds nothing (only a review or a write-ahead
        # call so far, released at once) would otherwise wait for its root uncounted in _held.
        limit = self.policy.max_held_events
        if self._held > limit or len(self._open) > limit:
            more, lost = self._decide_oldest_early()
            released.extend(more)
            dropped += lost
        return released, dropped

    def drain(self) -> tuple[list[Item], int]:
        """Decide every open trace now (at shutdown): nothing held is silently lost."""
        released: list[Item] = []
        dropped = 0
        while self._open:
            more, lost = self._decide_oldest_early()
            released.extend(more)
            dropped += lost
        return released, dropped

    def expire(self, max_age_s: float, now: float | None = None) -> tuple[list[Item], int]:
        """Decide the traces held for longer than ``max_age_s`` seconds, on what they have shown.

        A trace whose root event never comes (the root's id reused, its event dropped from a
        full queue) would otherwise wait forever; past the run TTL no end can still be expected.
        Released whole, as at shutdown; its later events follow the decision."""
        now = time.monotonic() if now is None else now
        released: list[Item] = []
        dropped = 0
        while self._open:  # opened in order: the oldest first
            trace = next(iter(self._open.values()))
            if now - trace.opened < max_age_s:
                break
            self.expired_traces += 1
            more, lost = self._close(trace, None, None)
            released.extend(more)
            dropped += lost
        return released, dropped

    def close_trace(self, trace_id: str) -> tuple[list[Item], int]:
        """Decide ``trace_id`` now on what it has shown (its root's event was lost: dropped
        from a full queue), as ``expire`` would once the run TTL is over."""
        trace = self._open.get(trace_id)
        if trace is None:
            return [], 0
        self.rootless_traces += 1
        return self._close(trace, None, None)

    def stats(self) -> dict[str, int]:
        """Held events, open traces, early decisions (buffer overflow), traces decided after
        waiting too long for their root, traces decided when their root's event was dropped
        from a full queue, late errors, traces kept because they were among the first, traces
        dropped; and ``keeps_everything`` (1 when no trace can be dropped, as compliance needs:
        readable before any trace is written)."""
        return {"keeps_everything": int(self._keep_all),
                "held": self._held, "open_traces": len(self._open),
                "early_decisions": self.early_decisions, "expired_traces": self.expired_traces,
                "rootless_traces": self.rootless_traces,
                "late_errors": self.late_errors, "kept_first": self.kept_first,
                "dropped_traces": self.dropped_traces}

    def _observe(self, trace: TraceState, event: Item) -> None:
        if event.status in ("error", "timeout"):
            trace.error = True
        elif event.status == "retry" or event.event_type in _KEEP_TYPES:
            trace.reason = trace.reason or _KEEP_TYPES.get(event.event_type, "retry")
        elif event.event_type is AuditEventType.TOOL_CALL and event.data.get(_WRITE_AHEAD):
            trace.reason = trace.reason or "write_ahead"
        if event.cost_usd:
            trace.cost += event.cost_usd
            threshold = self.policy.cost_threshold_usd
            if threshold is not None and trace.cost > threshold:
                trace.reason = trace.reason or "cost"
        if (event.data.get(_ROOT) and event.latency_ms is not None
                and event.latency_ms > self.policy.slow_threshold_ms):
            trace.reason = trace.reason or "slow"

    def _close(self, trace: TraceState, upstream: Any, root: Item | None
               ) -> tuple[list[Item], int]:
        keep, reason = self.policy.decide(trace, upstream if isinstance(upstream, bool) else None)
        self.decided_traces += 1
        if not keep and reason == "rate" and self.decided_traces <= self.policy.keep_first:
            keep, reason = True, "first"
            self.kept_first += 1
        del self._open[trace.trace_id]
        self._held -= len(trace.events)
        self._remember(trace.trace_id, keep)
        if not keep:
            self._dropped_trace(trace.trace_id, reason)
            return [], len(trace.events)
        if root is not None:  # rate: the keep probability, so analytics can weight by 1/rate
            root.data["sampling"] = {"reason": reason, "rate": self.policy.keep_rate(reason)}
        return trace.events, 0

    def _dropped_trace(self, trace_id: str, reason: str) -> None:
        self.dropped_traces += 1
        if self.dropped_traces == 1:  # once per sampler: sampling must never be silent
            logger.warning(
                "llm-audit: trace %s was sampled out (%s) and is not exported; successful "
                "traces are kept at SUCCESS_SAMPLE_RATE=%s. Set AUDIT_DEBUG=true or "
                "SUCCESS_SAMPLE_RATE=1 to keep every trace (counted in "
                "stats()['dropped']['sampled_out']; this is logged once)",
                trace_id, reason, self.policy.success_rate)

    def _decide_oldest_early(self) -> tuple[list[Item], int]:
        _, trace = next(iter(self._open.items()))
        self.early_decisions += 1
        return self._close(trace, None, None)

    def _follow(self, keep: bool, event: Item) -> tuple[list[Item], int]:
        """An event of an already decided trace follows the decision; errors are never lost."""
        if keep or event.event_type in _ALWAYS_KEPT or event.data.get(_WRITE_AHEAD):
            return [event], 0
        if event.status in ("error", "timeout"):
            self.late_errors += 1
            event.data["sampling"] = {"reason": "late_error"}
            return [event], 0
        return [], 1

    def _remember(self, trace_id: str, keep: bool) -> None:
        self._decided.remember(trace_id, keep)
