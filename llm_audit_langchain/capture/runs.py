"""The run tracker: one start record per open LangChain run, bounded, with TTL eviction.

End and error callbacks carry no name or metadata, so the start record holds them until the run
closes. Runs that never close (a cancelled stream, a killed task) are evicted after a TTL and
reported with status ``timeout``; the map never grows past ``max_runs``, and at most
``MAX_SHADOWED`` open runs share one id (a caller reusing ``config["run_id"]`` for runs it then
abandons: the oldest beyond that is evicted as ``timeout`` too).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

_SHADOWED = "shadowed_run"  # Run.extra key: the open run whose id this one reused
MAX_SHADOWED = 100
"""Open runs tracked under one id at most (the newest and those it shadows)."""


def tag_number(tags: Sequence[str], prefix: str) -> int | None:
    """N of the first ``prefix + N`` tag (``graph:step:3``, ``retry:attempt:2``), if any."""
    for tag in tags:
        if tag.startswith(prefix):
            try:
                return int(tag[len(prefix):])
            except ValueError:
                return None
    return None


def run_key(run_id: Any) -> Any:
    """The key a run id is tracked under: ``run_id.int`` (``UUID.__hash__`` is Python code, an
    int's hash is not, and the callbacks look runs up several times each), or the id as given
    when it is not a UUID (a string a caller put in ``config["run_id"]``)."""
    try:
        return run_id.int
    except AttributeError:
        return run_id


@dataclass(slots=True)
class Run:
    """What the start callback knew about a run, kept until the run ends."""

    run_id: UUID
    kind: str  # "chain" | "llm" | "tool" | "retriever"
    name: str
    agent: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    parent_run_id: UUID | None
    start_ns: int  # wall clock, for timestamps
    start_perf_ns: int  # monotonic, for latency
    inputs: Any = None
    tags: Sequence[str] = ()  # () once the run has ended
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    is_node: bool = False
    sampled: bool | None = None
    first_token_perf_ns: int | None = None
    chunks: int = 0
    _run_id_text: str | None = None

    @property
    def run_id_text(self) -> str:
        """``str(run_id)``, computed once (UUID formatting is not free on the hot path)."""
        if self._run_id_text is None:
            self._run_id_text = str(self.run_id)
        return self._run_id_text


class RunTracker:
    """A ``run_id -> Run`` map (keyed by :func:`run_key`). Thread-safe through the GIL's atomic
    dict operations."""

    def __init__(self, ttl_s: float, max_runs: int) -> None:
        self._runs: dict[Any, Run] = {}
        self._ttl_ns = int(ttl_s * 1e9)
        self._max_runs = max_runs

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: UUID | None) -> Run | None:
        """The open run with this id, if any."""
        return None if run_id is None else self._runs.get(run_key(run_id))

    def open(self, run: Run) -> Run | None:
        """Track ``run``; returns a run evicted to keep a bound (``max_runs``, or
        ``MAX_SHADOWED`` under one id), if one was.

        A run given the id of a run still open (a child handed its parent's ``config``, run id
        included) shadows it until it ends: ends arrive innermost first, so each end finds its
        own start, and the outer run's end is not mistaken for a duplicate."""
        runs = self._runs
        key = run_key(run.run_id)
        shadowed = runs.get(key)
        runs[key] = run
        if shadowed is not None:
            run.extra[_SHADOWED] = shadowed
            return _beyond_shadow_bound(run)  # the map did not grow
        if len(self._runs) <= self._max_runs:
            return None
        try:
            oldest = next(iter(self._runs))
        except (StopIteration, RuntimeError):  # changed by another thread meanwhile
            return None
        return self._runs.pop(oldest, None)

    def close(self, run_id: UUID) -> Run | None:
        """Stop tracking and return the run, or None when its start was not seen."""
        key = run_key(run_id)
        run = self._runs.pop(key, None)
        if run is not None and _SHADOWED in run.extra:
            self._runs[key] = run.extra.pop(_SHADOWED)
        return run

    def open_roots(self) -> int:
        """Open runs that started a trace here (a measure of traces in flight)."""
        return sum(1 for run in self._runs.copy().values() if run.extra.get("root"))

    def expired(self, now_perf_ns: int | None = None) -> list[Run]:
        """Remove and return the runs open for longer than the TTL (with the older runs their
        id shadows: those started earlier, so they are stale too)."""
        now = time.perf_counter_ns() if now_perf_ns is None else now_perf_ns
        snapshot = self._runs.copy()  # atomic under the GIL
        gone: list[Run] = []
        for head in snapshot.values():
            stale: Run | None = head
            while stale is not None and now - stale.start_perf_ns > self._ttl_ns:
                run = self.close(stale.run_id)
                if run is None:
                    break
                gone.append(run)
                stale = self.get(run.run_id)  # the run it shadowed, tracked again
        return gone


def _beyond_shadow_bound(run: Run) -> Run | None:
    """Detach and return the oldest run under ``run``'s id when more than ``MAX_SHADOWED`` are
    open under it. Walked only when an id is reused while its run is open (rare)."""
    holder, depth = run, 1
    while (below := holder.extra.get(_SHADOWED)) is not None:
        if depth >= MAX_SHADOWED:
            detached: Run = holder.extra.pop(_SHADOWED)
            return detached
        holder, depth = below, depth + 1
    return None


class ThreadTraces:
    """LangGraph thread id -> the trace context of its latest root run, bounded (oldest out).

    Records made outside the run's callbacks (checkpoints, written on LangGraph's own threads)
    find their trace here. Only ids are kept, never user objects."""

    def __init__(self, bound: int = 10_000) -> None:
        self._traces: dict[Any, Any] = {}
        self._bound = bound

    def note(self, thread_id: Any, context: Any) -> None:
        """Remember ``context`` as the trace of ``thread_id``."""
        traces = self._traces
        try:
            traces.pop(thread_id, None)
        except TypeError:  # an unhashable thread id: nothing to join on
            return
        traces[thread_id] = context
        if len(traces) > self._bound:
            try:  # noqa: SIM105 - another thread may have trimmed it first
                traces.pop(next(iter(traces)))
            except (KeyError, StopIteration, RuntimeError):
                pass

    def get(self, thread_id: Any) -> Any:
        """The trace context of ``thread_id``'s latest root run, or None."""
        try:
            return self._traces.get(thread_id)
        except TypeError:  # an unhashable thread id
            return None
