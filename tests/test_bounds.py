"""Bounds of long-lived maps that no other test file covers (docs/memory.md lists them all):
each is fed ten times its bound of distinct keys and must stay within it, still working."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from llm_audit_langchain.capture.runs import MAX_SHADOWED, Run, RunTracker
from llm_audit_langchain.inspect.cli.tail import _Follower
from llm_audit_langchain.replay.reading import ScanStats


def _run(run_id: uuid.UUID, name: str, start_perf_ns: int | None = None) -> Run:
    now = time.perf_counter_ns() if start_perf_ns is None else start_perf_ns
    return Run(run_id, "chain", name, name, "0" * 31 + "1", "0" * 15 + "1", None, None,
               time.time_ns(), now)


def _under_one_id(tracker: RunTracker, run_id: uuid.UUID) -> list[str]:
    """Names of the open runs tracked under ``run_id``, newest first."""
    names = []
    run = tracker.get(run_id)
    while run is not None:
        names.append(run.name)
        run = run.extra.get("shadowed_run")
    return names


def test_runs_reusing_one_id_are_bounded_and_the_oldest_evicted() -> None:
    """A caller that reuses ``config["run_id"]`` for runs it abandons (streams never read to
    the end): the map does not grow, so only a bound per id keeps the chain from growing."""
    tracker = RunTracker(ttl_s=600.0, max_runs=1_000)
    reused = uuid.uuid4()
    evicted = [tracker.open(_run(reused, f"run{i}")) for i in range(10 * MAX_SHADOWED)]
    open_names = _under_one_id(tracker, reused)
    assert len(tracker) == 1 and len(open_names) == MAX_SHADOWED
    assert open_names == [f"run{i}" for i in reversed(range(9 * MAX_SHADOWED, 10 * MAX_SHADOWED))]
    # each one evicted is returned once, oldest first (the handler reports it as a timeout)
    assert [run.name for run in evicted if run is not None] == [
        f"run{i}" for i in range(9 * MAX_SHADOWED)]
    # ends still pair innermost first
    closed = tracker.close(reused)
    assert closed is not None and closed.name == f"run{10 * MAX_SHADOWED - 1}"
    following = tracker.get(reused)
    assert following is not None and following.name == f"run{10 * MAX_SHADOWED - 2}"


def test_a_child_given_its_parents_id_still_shadows_it() -> None:
    tracker = RunTracker(ttl_s=600.0, max_runs=1_000)
    shared = uuid.uuid4()
    assert tracker.open(_run(shared, "parent")) is None
    assert tracker.open(_run(shared, "child")) is None
    assert [run.name for run in (tracker.close(shared), tracker.close(shared)) if run] == [
        "child", "parent"]
    assert len(tracker) == 0


def test_one_sweep_expires_every_stale_run_under_one_id() -> None:
    tracker = RunTracker(ttl_s=1.0, max_runs=1_000)
    reused, other = uuid.uuid4(), uuid.uuid4()
    start = time.perf_counter_ns()
    for i in range(5):
        tracker.open(_run(reused, f"stale{i}", start + i))
    tracker.open(_run(other, "fresh", start + 10**10))
    expired = tracker.expired(now_perf_ns=start + 5 * 10**9)
    assert sorted(run.name for run in expired) == [f"stale{i}" for i in range(5)]
    assert tracker.get(reused) is None and _under_one_id(tracker, other) == ["fresh"]


def test_tail_forgets_the_files_that_are_gone(tmp_path: Path) -> None:
    """``llm-audit tail`` follows for months: one offset per daily file ever seen would grow."""
    follower = _Follower(tmp_path, ScanStats())
    for day in range(30):
        current = tmp_path / f"audit-2027-01-{day + 1:02d}.jsonl"
        current.write_bytes(b'{"x": 1}\n{"x": 2}\n{"partial"')
        assert [number for _, number, _ in follower.read_new()] == [1, 2]
        assert set(follower.offsets) == set(follower.partial) == set(follower.numbers) == {
            current}
        current.unlink()  # rotated away, as retention does
    assert list(follower.read_new()) == []
    assert not follower.offsets and not follower.partial and not follower.numbers


def test_jsonl_forgets_the_ids_of_batches_given_up(tmp_path: Path) -> None:
    """A batch spanning two UTC days whose second day cannot be written: its retry must not
    write the first day again, and once the pipeline gives up and sends other batches, the ids
    remembered for that retry must not pile up."""
    from datetime import UTC, datetime

    from llm_audit_langchain import AuditEvent, JsonlExporter

    def event(seq: int, day: int) -> AuditEvent:
        return AuditEvent(event_id=f"{seq:032x}", trace_id="1" * 32, span_id="2" * 16,
                          timestamp=datetime(2024, 3, day, 12, tzinfo=UTC),
                          event_type="custom", agent="a", action="b")

    (tmp_path / "audit-2024-03-11.jsonl").mkdir()  # the later day's file cannot be opened
    exporter = JsonlExporter(tmp_path)
    first = [event(0, 10), event(1, 11)]
    for _ in range(3):  # the pipeline's retries of one batch
        with pytest.raises(OSError):
            exporter.export(first)
    for seq in range(2, 200, 2):  # given up; later batches fail the same way
        with pytest.raises(OSError):
            exporter.export([event(seq, 10), event(seq + 1, 11)])
    assert len(exporter._landed) <= 2
    lines = (tmp_path / "audit-2024-03-10.jsonl").read_text().splitlines()
    assert len(lines) == 100 and len(set(lines)) == 100  # each first-day event written once
    exporter.shutdown()


def test_the_sanitizers_result_cache_is_bounded_in_entries_too() -> None:
    """A million characters of short strings would be ~66,000 entries (~12 MB): the entry cap
    keeps it small, and results stay right past it."""
    from llm_audit_langchain.privacy import sanitizer as sanitizer_module
    from llm_audit_langchain.privacy.sanitizer import Sanitizer

    sanitizer = Sanitizer()
    cap = sanitizer_module._CACHE_MAX_ENTRIES
    for i in range(3 * cap):
        sanitizer.sanitize_text(f"call {i} at 10:{i % 60:02d}")
    assert len(sanitizer._cache) <= cap
    redacted = sanitizer.sanitize_text("mail ana@example.com at 10:00")
    assert redacted == "mail [REDACTED_EMAIL] at 10:00"
