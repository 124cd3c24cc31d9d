"""Exporters that misbehave on purpose, for pipeline and handler tests.

Each one follows the exporter protocol (``export``, ``force_flush``, ``shutdown``) and records what
it was given, so a test can check both what the pipeline counted and what actually arrived:

- ``AlwaysFailing``: every ``export`` raises, like a sink that is down for good.
- ``ReturnsFailure``: returns ``ExportResult.FAILURE`` for the first ``times`` calls.
- ``DownThenUp``: raises until it has failed ``times`` times or ``up()`` is called, then records.
- ``Hanging``: blocks inside ``export`` until ``release()``; ``entered`` tells when it is stuck.

None of them can hang a test run for ever: ``Hanging`` gives up after ``max_hang_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from llm_audit_langchain.events import AuditEvent
from llm_audit_langchain.exporters.base import ExportResult


class SinkDownError(ConnectionError):
    """What a failing exporter raises: an I/O-style error a real sink could raise."""


class _Recording:
    """Records the batches it accepted, in order, and counts every call."""

    name = "recording"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: list[list[AuditEvent]] = []
        self.calls = 0
        self.shutdown_calls = 0

    def _record(self, batch: Sequence[AuditEvent]) -> None:
        with self._lock:
            self._batches.append(list(batch))

    def _count_call(self) -> int:
        with self._lock:
            self.calls += 1
            return self.calls

    @property
    def events(self) -> list[AuditEvent]:
        """Every event accepted so far, in delivery order."""
        with self._lock:
            return [event for batch in self._batches for event in batch]

    @property
    def batches(self) -> list[list[AuditEvent]]:
        with self._lock:
            return [list(batch) for batch in self._batches]

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            self.shutdown_calls += 1


class AlwaysFailing(_Recording):
    """A sink that is down for good: every export raises."""

    name = "always-failing"

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult | None:
        self._count_call()
        raise SinkDownError("sink unreachable")


class ReturnsFailure(_Recording):
    """Reports failure by return value (no exception) for the first ``times`` calls."""

    name = "returns-failure"

    def __init__(self, times: int | None = None) -> None:
        super().__init__()
        self.times = times  # None: for ever

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult | None:
        call = self._count_call()
        if self.times is None or call <= self.times:
            return ExportResult.FAILURE
        self._record(batch)
        return ExportResult.SUCCESS


class DownThenUp(_Recording):
    """Fails until it has failed ``times`` times (if given) or ``up()`` is called; then records
    every batch it gets. A failed call records nothing, so a duplicate in ``events`` means the
    pipeline delivered the same event twice."""

    name = "down-then-up"

    def __init__(self, times: int | None = None) -> None:
        super().__init__()
        self.times = times
        self.failures = 0
        self._up = threading.Event()

    def up(self) -> None:
        self._up.set()

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult | None:
        self._count_call()
        if not self._up.is_set():
            if self.times is None or self.failures < self.times:
                self.failures += 1
                raise SinkDownError(f"down (failure {self.failures})")
            self._up.set()
        self._record(batch)
        return None


class Hanging(_Recording):
    """Blocks inside ``export`` until ``release()`` (or ``max_hang_s``), then records the batch.

    ``entered`` is set as soon as an export call is stuck, so a test knows the worker is busy.
    """

    name = "hanging"

    def __init__(self, max_hang_s: float = 30.0) -> None:
        super().__init__()
        self.entered = threading.Event()
        self._released = threading.Event()
        self._max_hang_s = max_hang_s

    def release(self) -> None:
        self._released.set()

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult | None:
        self._count_call()
        self.entered.set()
        if not self._released.wait(self._max_hang_s):
            raise TimeoutError("Hanging exporter was never released")
        self._record(batch)
        return None
