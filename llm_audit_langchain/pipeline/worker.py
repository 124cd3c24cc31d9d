"""The pipeline: bounded queue → one worker thread → processors → batches → exporters.

``enqueue`` is the only part that runs on the caller's thread: a deque append (atomic, no lock)
and a wake-up when a batch is ready. When the queue is full the oldest event is dropped and counted.
The worker runs the processors (enrich → sample → sanitize) and hands each batch to every exporter.
Each exporter has its own bounded backlog and backoff: one that fails is retried with exponential
backoff and jitter while the others go on, and what it missed is delivered when it returns.

Every event ends in exactly one place, so ``stats()`` always adds up::

    enqueued == exported + sum(dropped.values()) + pending

Longer than our other modules because ``Pipeline`` is one class on purpose: the queue, the
worker, the per-exporter backlogs and the counts share one lock and one set of invariants (the
equation above), and splitting them would spread that invariant over several objects. What its
parts agree on (item, processor and sampler protocols) is in ``base``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..events import AuditEvent, AuditEventType
from ..exporters.base import Exporter, ExportResult
from ..exporters.factory import exporters_from_config
from .base import Item, Processor, Sampler
from .processors import default_processors, default_sampler, default_sanitizer

if TYPE_CHECKING:
    from ..config import AuditConfig

logger = logging.getLogger("llm_audit_langchain")

_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_CHUNK = 64  # queued items processed at a time within a batch (see Pipeline._take_batch)


@dataclass(slots=True, eq=False)
class _Batch:
    events: list[AuditEvent]
    remaining: int  # exporters that still have to take it
    lost: bool = False


class _Slot:
    """One exporter, its backlog of batches and its retry state (worker thread only)."""

    def __init__(self, exporter: Exporter, bound: int, initial: float, cap: float) -> None:
        self.exporter = exporter
        self.name = getattr(exporter, "name", None) or type(exporter).__name__
        self.durable = bool(getattr(exporter, "durable", False))  # the audit chain
        self.backlog: deque[_Batch] = deque()
        self.backlog_events = 0
        self.bound = bound
        self.initial_backoff = initial
        self.max_backoff = cap
        self.failures = 0
        self.next_attempt = 0.0
        self.exported = self.failed = self.retried = self.dropped = 0
        self.overrun: threading.Thread | None = None  # a force_flush that overran its deadline

    def backoff(self) -> float:
        """Exponential with full jitter in [0.5, 1.5) of the step, capped."""
        exponent = min(self.failures - 1, 30)
        step: float = min(self.max_backoff, self.initial_backoff * 2.0**exponent)
        return step * (0.5 + random.random())

    def stats(self) -> dict[str, int]:
        return {"exported": self.exported, "failed": self.failed, "retried": self.retried,
                "dropped": self.dropped, "pending": self.backlog_events}


class Pipeline:
    """Moves events from the hot path to the exporters on one daemon worker thread."""

    def __init__(
        self,
        exporters: Sequence[Exporter],
        processors: Sequence[Processor] = (),
        *,
        sanitizer: Processor | None = None,
        sampler: Sampler | None = None,
        observers: Sequence[Callable[[AuditEvent], None]] = (),
        defer_sampled_out: bool = False,
        queue_size: int = 10_000,
        batch_size: int = 512,
        flush_interval_s: float = 0.5,
        initial_backoff_s: float = 0.1,
        max_backoff_s: float = 30.0,
        shutdown_timeout_s: float = 5.0,
        hold_limit_s: float | None = None,
    ) -> None:
        self._processors = list(processors)
        self._sanitizer = sanitizer
        self._sampler = sampler
        self._observers = list(observers)
        # Only when nothing but the built-in processors needs every event: user processors are
        # promised all of them, sampled out or not, and so are observers unless they say which
        # event types they read (an ``event_types`` attribute, as AuditMetrics.observe has):
        # those types are then built as they arrive, sampled out or not.
        wanted = [getattr(observer, "event_types", None) for observer in self._observers]
        self._defer = (defer_sampled_out and sampler is not None
                       and all(types is not None for types in wanted))
        self._observed_types: frozenset[AuditEventType] = frozenset().union(
            *(types for types in wanted if types is not None))
        self._queue_size = queue_size
        self._batch_size = batch_size
        # A batch's worth wakes the worker, or half the queue when that is smaller: a queue
        # shorter than a batch must not wait for the timer while it fills up and drops.
        self._wake_at = max(1, min(batch_size, queue_size // 2))
        self._interval = flush_interval_s
        self._shutdown_timeout = shutdown_timeout_s
        self._hold_limit = hold_limit_s  # the longest a trace waits in the sampler for its root
        self._slots = [_Slot(e, queue_size, initial_backoff_s, max_backoff_s) for e in exporters]
        self._periodic: list[list[Any]] = []  # [fn, interval, next_due]
        self._warned: set[str] = set()
        self._has_durable = any(slot.durable for slot in self._slots)
        self._init_state()
        _live.add(self)

    @classmethod
    def from_config(
        cls,
        config: AuditConfig,
        exporters: Sequence[Exporter] | None,
        processors: Sequence[Processor] = (),
        observers: Sequence[Callable[[AuditEvent], None]] = (),
        *,
        defer_sampled_out: bool = False,
        hold_limit_s: float | None = None,
    ) -> Pipeline:
        """The default pipeline for ``config`` (used by ``AuditCallbackHandler``); a trace
        waits for its root at most ``hold_limit_s`` (default: the run TTL)."""
        return cls(
            exporters if exporters is not None else exporters_from_config(config),
            [*default_processors(config), *processors],
            sanitizer=default_sanitizer(config),
            sampler=default_sampler(config),
            observers=observers,
            defer_sampled_out=defer_sampled_out,
            queue_size=config.queue_size,
            batch_size=config.batch_size,
            flush_interval_s=config.flush_interval_ms / 1000,
            initial_backoff_s=config.retry_initial_backoff_s,
            max_backoff_s=config.retry_max_backoff_s,
            shutdown_timeout_s=config.shutdown_timeout_s,
            hold_limit_s=config.run_ttl_s if hold_limit_s is None else hold_limit_s,
        )

    def _init_state(self) -> None:
        """(Re)create everything a thread or a fork can invalidate."""
        self._lock = threading.Lock()
        self._settled_cv = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._queue: deque[Item] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closing = False  # close_soon: stop once the queue is drained
        self._stopped = False
        self._taken = 0  # events removed from the queue: by the worker, or dropped
        self._refused = 0  # events offered after shutdown
        self._exported = 0
        self._dropped: dict[str, int] = {}
        self._failed = 0
        self._retried = 0
        self._awaiting_disk: dict[str, threading.Event] = {}  # write-ahead event id -> waiter
        self._lost_roots: deque[str] = deque(maxlen=10_000)  # traces whose root was dropped
        for slot in self._slots:
            slot.backlog.clear()
            slot.backlog_events = 0
            slot.failures = 0
            slot.exported = slot.failed = slot.retried = slot.dropped = 0

    # ---- hot path -----------------------------------------------------------------------------

    def enqueue(self, event: Item) -> None:
        """Queue one event (or one the worker will build); never blocks on I/O, never raises.

        No lock in the common case: ``deque.append`` is atomic, and ``enqueued`` is not counted
        here but derived (taken + refused + still queued), so the counts add up exactly."""
        if self._stopped:
            with self._lock:
                self._refused += 1
                self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + 1
            return
        queue = self._queue
        queue.append(event)
        size = len(queue)
        if size > self._queue_size:
            self._drop_oldest()
        if self._thread is None:
            self._start_worker()
        elif size >= self._wake_at and not self._wake.is_set():
            self._wake.set()
        if self._stopped:  # shutdown finished while we appended: nobody will take it now
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """After shutdown: count whatever is still queued as dropped, so nothing stays pending."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return  # the stopping worker still takes the queue (_abandon_undelivered)
        if left := self._take_queued(keep=0):
            self._drop("shutdown", left)

    def _drop_oldest(self) -> None:
        if dropped := self._take_queued(keep=self._queue_size):
            self._drop("queue_full", dropped)

    def _take_queued(self, keep: int) -> int:
        """Remove the oldest queued events until ``keep`` are left; how many were removed. One by
        one, under the lock: an append racing with it is either counted here or stays queued."""
        taken = 0
        with self._lock:
            queue = self._queue
            try:
                while len(queue) > keep:
                    item = queue.popleft()
                    taken += 1
                    if _closes_trace(item):  # its trace would wait the run TTL for it
                        self._lost_roots.append(item.trace_id)
            finally:
                self._taken += taken
        return taken

    @property
    def _enqueued(self) -> int:
        """Events offered so far (call under ``self._lock`` for a consistent count)."""
        return self._taken + self._refused + len(self._queue)

    def _start_worker(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopped:  # started meanwhile, or shut down
                return
            thread = threading.Thread(target=self._run, name="llm-audit-export", daemon=True)
            self._thread = thread
            thread.start()

    # ---- control ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Have the worker take the queue now rather than at its next interval."""
        self._wake.set()

    def add_periodic(self, fn: Callable[[], None], interval_s: float) -> None:
        """Call ``fn`` on the worker thread about every ``interval_s`` seconds."""
        self._periodic.append([fn, interval_s, time.monotonic() + interval_s])

    def exporters(self) -> list[Exporter]:
        """The exporters this pipeline delivers to (for readers of their own stats)."""
        return [slot.exporter for slot in self._slots]

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every event enqueued so far is exported or dropped; True if so in time."""
        with self._lock:
            target = self._enqueued
            if self._thread is None and not self._queue:
                return self._settled() >= target
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._settled_cv:
            while self._settled() < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wake.set()
                self._settled_cv.wait(0.05 if remaining is None else min(remaining, 0.05))
        return all(self._flush_exporter(slot, deadline) for slot in self._slots)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Decide open traces, flush, stop the worker and shut the exporters down; never waits
        past ``timeout``. Returns True when everything was exported."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            stopped, thread = self._stopped, self._thread
        if stopped:  # a second shutdown, or after close_soon: wait for the worker to finish
            if thread is not None and thread is not threading.current_thread():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            with self._lock:
                return self._enqueued == self._settled()
        with self._lock:
            self._stopping = True  # the worker now releases what the sampler holds
            thread = self._thread
        if thread is None:
            self._release_held()
        flushed = self.flush(timeout)
        with self._lock:
            self._stopped = True
        self._wake.set()
        _live.discard(self)
        if thread is not None and thread is not threading.current_thread():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return flushed and not thread.is_alive()
        self._shutdown_exporters(deadline)
        return flushed

    def close_soon(self) -> None:
        """Shut down without waiting: the worker exports what is queued and held, shuts the
        exporters down and ends its thread. Safe from a finalizer (never blocks; takes no lock
        unless the worker must be started, as the garbage collector may run it on any thread)."""
        if self._stopped:
            return
        self._stopping = self._closing = True  # plain stores: atomic, read by the worker
        if self._thread is None:
            self._start_worker()  # the exporters are still shut down off the caller's thread
        self._wake.set()

    def _request_stop(self) -> None:
        """The first step of ``shutdown``: the worker starts releasing what the sampler holds."""
        with self._lock:
            if not self._stopped:
                self._stopping = True
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        """enqueued, exported, dropped by reason, failed, retried, pending, queue size, held
        traces and per-exporter counters. ``enqueued == exported + dropped + pending``."""
        with self._lock:
            dropped = dict(self._dropped)
            enqueued, exported, queue = self._enqueued, self._exported, len(self._queue)
        return {
            "enqueued": enqueued,
            "exported": exported,
            "dropped": dropped,
            "failed": self._failed,
            "retried": self._retried,
            "pending": enqueued - exported - sum(dropped.values()),
            "queue_size": queue,
            "held": self._sampler.held() if self._sampler is not None else 0,
            "exporters": {slot.name: slot.stats() for slot in self._slots},
            "sampling": _sampler_stats(self._sampler),
        }

    # ---- worker -------------------------------------------------------------------------------

    def _settled(self) -> int:
        return self._exported + sum(self._dropped.values())

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._drain()
                if self._lost_roots:
                    self._decide_rootless()
                if self._stopping:
                    self._release_held()
                    self._deliver()
                self._run_periodic()
                self._release_expired()
            except Exception as exc:  # the worker must survive anything
                self._warn_once("worker", exc)
            if self._closing and not self._stopped:
                with self._lock:
                    if not self._queue:
                        self._stopped = True
            if self._stopped:
                # on the worker itself: nobody waits on it, and an exporter may expect its
                # shutdown on the thread that exported
                self._shutdown_exporters(time.monotonic() + self._shutdown_timeout, bounded=False)
                self._abandon_undelivered()
                _live.discard(self)
                return

    def _abandon_undelivered(self) -> None:
        """After the exporters are shut down nothing left can be delivered: count it dropped."""
        for slot in self._slots:
            while slot.backlog:
                self._give_up(slot, slot.backlog.popleft(), "shutdown")
        if left := self._take_queued(keep=0):
            self._drop("shutdown", left)

    def _release_held(self) -> None:
        """At shutdown: decide every trace the sampler still holds, so none is silently lost."""
        drain = getattr(self._sampler, "drain", None)
        if drain is None:
            return
        try:
            released, dropped = drain()
        except Exception as exc:
            self._warn_once("sampler drain", exc)
            return
        self._release(released, dropped)

    def _decide_rootless(self) -> None:
        """Traces whose closing event a full queue dropped: decided now on what they have
        shown (as at the run TTL), instead of holding them, and ``flush``, until then."""
        close = getattr(self._sampler, "close_trace", None)
        while self._lost_roots:
            trace_id = self._lost_roots.popleft()
            if close is not None:
                self._release(*close(trace_id))
        self._deliver()

    def _release_expired(self) -> None:
        """Decide the traces that waited longer than the hold limit for their root."""
        expire = getattr(self._sampler, "expire", None)
        if expire is None or self._hold_limit is None:
            return
        if self._release(*expire(self._hold_limit)):
            self._deliver()

    def _release(self, released: list[Item], dropped: int) -> bool:
        """What the sampler decided outside ``offer``: count the dropped, hand the kept over
        (built, enriched and sanitized); True when there was something to deliver."""
        if dropped:
            self._drop("sampled_out", dropped)
        events = self._sanitize_all(self._finished(released))
        if events:
            self._hand_over(events)
        return bool(events)

    def _drain(self) -> None:
        while (released := self._take_batch()) is not None:
            if released:
                self._hand_over(released)
            self._deliver()
        self._deliver()

    def _take_batch(self) -> list[AuditEvent] | None:
        """Up to ``batch_size`` queued items, processed: what they released for export; None
        when the queue was empty. Taken and processed ``_CHUNK`` items at a time, so each
        chunk's raw items (LangChain's objects, the callbacks' records) are freed before the next
        chunk is built: the batch's peak of live objects, which set how often the host's garbage
        collector ran and what it promoted, stays small."""
        taken, released = 0, []
        while taken < self._batch_size:
            with self._lock:
                queue = self._queue
                if not queue:
                    break
                chunk = [queue.popleft()
                         for _ in range(min(_CHUNK, self._batch_size - taken, len(queue)))]
                self._taken += len(chunk)
            taken += len(chunk)
            released += self._process(chunk)
        return released if taken else None

    def _process(self, batch: list[Item]) -> list[AuditEvent]:
        """Enrich → observe → sample → sanitize. Sampling comes before sanitizing so the
        sanitizer's cost is paid only for the traces that are kept; nothing leaves the process
        unsanitized either way (observers run in-process, see ``AuditCallbackHandler``).

        With ``defer_sampled_out``, deferrable events go to the sampler unbuilt and are built and
        enriched only if their trace is kept: most traffic is sampled out, and building and
        enriching it was most of the worker's time."""
        kept: list[Item] = []
        sampler = self._sampler
        for item in batch:
            offered: Item
            if (self._defer and not isinstance(item, AuditEvent) and item.deferrable
                    and item.event_type not in self._observed_types):
                offered = item
            else:
                enriched = self._ready(item)
                if enriched is None:
                    continue
                if enriched.event_type is AuditEventType.TOOL_CALL:
                    written = getattr(item, "written", None)  # a write-ahead tool call
                    if written is not None:
                        self._await_disk(enriched, written)
                for observer in self._observers:
                    self._call_safely("observer", observer, enriched)
                if sampler is None:
                    kept.append(enriched)
                    continue
                offered = enriched
            assert sampler is not None  # _defer is only set with a sampler
            try:
                out, sampled_out = sampler.offer(offered)
            except Exception as exc:
                self._warn_once("sampler", exc)
                out, sampled_out = [offered], 0
            kept.extend(out)
            if sampled_out:
                self._drop("sampled_out", sampled_out)
        return self._sanitize_all(self._finished(kept))

    def _finished(self, items: list[Item]) -> list[AuditEvent]:
        """Build and enrich the kept events that were deferred (in order)."""
        events = (item if isinstance(item, AuditEvent) else self._ready(item) for item in items)
        return [event for event in events if event is not None]

    def _ready(self, item: Item) -> AuditEvent | None:
        """The item built and enriched; None when either step dropped it (counted)."""
        event = self._built(item)
        return None if event is None else self._enrich(event)

    def _built(self, item: Item) -> AuditEvent | None:
        if isinstance(item, AuditEvent):
            return item
        try:
            return item.build()
        except Exception as exc:
            self._warn_once("event construction", exc)
            self._drop("build_error", 1)
            return None

    def _enrich(self, event: AuditEvent) -> AuditEvent | None:
        current: AuditEvent | None = event
        for processor in self._processors:
            try:
                current = processor(event)
            except Exception as exc:
                self._warn_once(f"processor {getattr(processor, '__name__', processor)}", exc)
                current = event
            if current is None:
                self._drop("filtered", 1)
                return None
            event = current
        event.data.pop("_raw", None)
        return event

    def _sanitize_all(self, events: list[AuditEvent]) -> list[AuditEvent]:
        """An event that cannot be sanitized is dropped, never exported."""
        if self._sanitizer is None:
            return events
        clean: list[AuditEvent] = []
        for event in events:
            try:
                sanitized = self._sanitizer(event)
            except Exception as exc:
                self._warn_once("sanitizer", exc)
                sanitized = None
            if sanitized is None:
                self._drop("sanitizer_error", 1)
            else:
                clean.append(sanitized)
        return clean

    def _hand_over(self, events: list[AuditEvent]) -> None:
        if not self._slots:
            self._settle(exported=len(events))
            return
        batch = _Batch(events, len(self._slots))
        for slot in self._slots:
            slot.backlog.append(batch)
            slot.backlog_events += len(events)
            while slot.backlog_events > slot.bound and len(slot.backlog) > 1:
                self._give_up(slot, slot.backlog.popleft(), "exporter_backlog_full")

    def _deliver(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.backlog and now >= slot.next_attempt:
                self._deliver_slot(slot)

    def _deliver_slot(self, slot: _Slot) -> None:
        while slot.backlog:
            batch = slot.backlog[0]
            retry = slot.failures > 0
            if retry:
                slot.retried += 1
                self._retried += 1
            error: BaseException | None = None
            try:
                ok = slot.exporter.export(batch.events) is not ExportResult.FAILURE
            except Exception as exc:
                ok, error = False, exc
            if not ok and error is None:
                error = RuntimeError("export returned FAILURE")
            if not ok:
                slot.failures += 1
                slot.failed += 1
                self._failed += 1
                slot.next_attempt = time.monotonic() + slot.backoff()
                self._warn_once(f"exporter {slot.name}", error)
                return
            slot.failures = 0
            slot.backlog.popleft()
            slot.backlog_events -= len(batch.events)
            slot.exported += len(batch.events)
            if slot.durable and self._awaiting_disk:
                self._confirm_on_disk(slot, batch.events)
            self._finish(batch)

    def _await_disk(self, event: AuditEvent, written: threading.Event) -> None:
        """A write-ahead event: its waiter is released once a durable exporter has it on disk
        (at once when there is none: nothing could make it durable). Bounded: a waiter whose
        event was dropped simply times out."""
        if not self._has_durable:
            written.set()
            return
        self._awaiting_disk[event.event_id] = written
        if len(self._awaiting_disk) > 10_000:
            self._awaiting_disk.pop(next(iter(self._awaiting_disk)))

    def _confirm_on_disk(self, slot: _Slot, events: list[AuditEvent]) -> None:
        ids = [event.event_id for event in events if event.event_id in self._awaiting_disk]
        if not ids or not self._flush_exporter(slot, None):  # fsync; failed: they time out
            return
        for event_id in ids:
            self._awaiting_disk.pop(event_id).set()

    def _finish(self, batch: _Batch) -> None:
        batch.remaining -= 1
        if batch.remaining == 0 and not batch.lost:
            self._settle(exported=len(batch.events))

    def _give_up(self, slot: _Slot, batch: _Batch, reason: str) -> None:
        slot.backlog_events -= len(batch.events)
        slot.dropped += len(batch.events)
        batch.remaining -= 1
        if not batch.lost:
            batch.lost = True
            self._drop(reason, len(batch.events))

    def _drop(self, reason: str, count: int) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count
        self._notify_settled()

    def _settle(self, exported: int) -> None:
        with self._lock:
            self._exported += exported
        self._notify_settled()

    def _notify_settled(self) -> None:
        with self._settled_cv:
            self._settled_cv.notify_all()

    def _flush_exporter(self, slot: _Slot, deadline: float | None) -> bool:
        if slot.overrun is not None:  # a flush that overran earlier: wait for it, never beside it
            slot.overrun.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if slot.overrun.is_alive():
                return False
            slot.overrun = None
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return bool(_within(deadline, slot.exporter.force_flush, remaining))
        except _OverranError as exc:
            slot.overrun = exc.thread
            self._warn_once(f"exporter {slot.name} flush", exc)
            return False
        except Exception as exc:
            self._warn_once(f"exporter {slot.name} flush", exc)
            return False

    def _shutdown_exporters(self, deadline: float | None, *, bounded: bool = True) -> None:
        for slot in self._slots:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._call_safely(f"exporter {slot.name} shutdown", _within,
                              deadline if bounded else None, slot.exporter.shutdown, remaining)

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for entry in self._periodic:
            fn, interval, due = entry
            if now >= due:
                entry[2] = now + interval
                self._call_safely("periodic task", fn)

    def _call_safely(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self._warn_once(what, exc)

    def _warn_once(self, what: str, exc: BaseException | None) -> None:
        cause = f"{what}:{type(exc).__name__}"
        if cause in self._warned:
            return
        self._warned.add(cause)
        logger.warning("llm-audit %s failed: %r (counted; further ones are not logged)", what, exc)

    def _after_fork(self) -> None:
        self._init_state()
        reset_sampler = getattr(self._sampler, "after_fork", None)
        if reset_sampler is not None:  # the parent's held traces are the parent's to export
            self._call_safely("sampler after_fork", reset_sampler)
        for slot in self._slots:  # a lock held by the parent's worker would never be released
            reset = getattr(slot.exporter, "after_fork", None)
            if reset is not None:
                self._call_safely(f"exporter {slot.name} after_fork", reset)


class _OverranError(TimeoutError):
    """An exporter call did not return by the deadline (it goes on, on ``thread``)."""

    def __init__(self, message: str, thread: threading.Thread) -> None:
        super().__init__(message)
        self.thread = thread


def _within(deadline: float | None, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, but never waiting past ``deadline``: an exporter may ignore its timeout
    argument (a blocking socket, a library's retry loop), and flush and shutdown promise theirs.
    The call runs on a daemon thread; one that overruns is left to finish there (the error
    raised names it, so the caller can wait for it instead of starting another)."""
    if deadline is None:
        return fn(*args)
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:  # handed back to the caller
            outcome.append((False, exc))

    thread = threading.Thread(target=call, name="llm-audit-exporter-call", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise _OverranError(f"{getattr(fn, '__qualname__', fn)} did not return within its timeout",
                            thread)
    returned, value = outcome[0]
    if not returned:
        raise value
    return value


def _closes_trace(item: Item) -> bool:
    """Whether ``item`` is the event its trace's sampling decision waits for. Runs on the
    caller's thread (a full queue dropping it): whatever the item holds, it never raises."""
    try:
        if isinstance(item, AuditEvent):
            return bool(item.data.get("trace_root"))
        return bool(getattr(item, "closes_trace", False))
    except Exception:  # a hand-made event with odd data: not one we can tell
        return False


def _sampler_stats(sampler: Sampler | None) -> dict[str, int]:
    """The sampler's own counts (kept because first, dropped traces...), when it has any."""
    stats = getattr(sampler, "stats", None)
    try:
        return dict(stats()) if stats is not None else {}
    except Exception:  # a user's sampler: its counts are optional
        return {}


def _flush_all_at_exit() -> None:
    """One deadline for all: every worker starts its last export at once, and exit waits at
    most the longest shutdown timeout, however many handlers there are."""
    pipelines = list(_live)
    if not pipelines:
        return
    deadline = time.monotonic() + max(pipeline._shutdown_timeout for pipeline in pipelines)
    for pipeline in pipelines:
        pipeline._request_stop()
    for pipeline in pipelines:
        with contextlib.suppress(Exception):  # at exit there is nobody left to tell
            pipeline.shutdown(max(0.0, deadline - time.monotonic()))


def _reset_after_fork() -> None:
    for pipeline in list(_live):
        pipeline._after_fork()


atexit.register(_flush_all_at_exit)
os.register_at_fork(after_in_child=_reset_after_fork)
