"""The pipeline: bounded queue, worker thread, processors, sanitizer, retrying exporters.

Every test checks the accounting a user monitors (``enqueued == exported + dropped + pending``,
with nothing negative and nothing left pending once everything has settled) and, separately,
what the exporters actually received. Time bounds below are hang guards, never speed checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fault_exporters import AlwaysFailing, DownThenUp, Hanging, ReturnsFailure

from llm_audit_langchain.events import AuditEvent, AuditEventType
from llm_audit_langchain.exporters import JsonlExporter, MemoryExporter
from llm_audit_langchain.exporters.base import Exporter, ExportResult
from llm_audit_langchain.pipeline.worker import Pipeline

HANG_GUARD_S = 3.0  # generous: the machine has 2 noisy cores
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def make_event(seq: int = 0, *, agent: str = "a", action: str = "b",
               data: dict[str, Any] | None = None) -> AuditEvent:
    payload = {"seq": seq}
    payload.update(data or {})
    return AuditEvent(
        event_id=uuid4().hex, trace_id=TRACE_ID, span_id=uuid4().hex[:16],
        timestamp=datetime.now(UTC), event_type=AuditEventType.CHAIN_END,
        agent=agent, action=action, data=payload,
    )


def events(count: int, **kwargs: Any) -> list[AuditEvent]:
    return [make_event(i, **kwargs) for i in range(count)]


def ids(batch: Sequence[AuditEvent]) -> list[str]:
    return [event.event_id for event in batch]


def check_accounting(pipeline: Pipeline, *, sent: int | None = None,
                     settled: bool = False) -> dict[str, Any]:
    """The stats invariant, checked in every test.

    ``sent``: how many ``enqueue`` calls the test made (every one must be accounted for).
    ``settled``: everything has reached its end, so nothing may be pending.
    """
    stats = pipeline.stats()
    dropped = stats["dropped"]
    assert all(count > 0 for count in dropped.values()), stats
    assert stats["exported"] >= 0 and stats["pending"] >= 0, stats
    assert stats["enqueued"] == stats["exported"] + sum(dropped.values()) + stats["pending"], stats
    if sent is not None:
        assert stats["enqueued"] == sent, stats
    if settled:
        assert stats["pending"] == 0, stats
    return stats


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def wait_idle(pipeline: Pipeline, name: str) -> dict[str, Any]:
    """Wait until the worker has moved everything out of the queue into ``name``'s backlog."""

    def idle() -> bool:
        stats = pipeline.stats()
        return (stats["queue_size"] == 0
                and stats["exporters"][name]["pending"] == stats["pending"])

    wait_for(idle, f"the queue to drain into the {name} backlog")
    return pipeline.stats()


@pytest.fixture
def make_pipeline() -> Iterator[Callable[..., Pipeline]]:
    """Pipelines with fast timers; released and shut down (bounded) after the test."""
    created: list[tuple[Pipeline, Sequence[Exporter]]] = []

    def make(exporters: Sequence[Exporter], **options: Any) -> Pipeline:
        settings: dict[str, Any] = {
            "queue_size": 1000, "batch_size": 16, "flush_interval_s": 0.02,
            "initial_backoff_s": 0.01, "max_backoff_s": 0.05, "shutdown_timeout_s": 0.5,
        }
        settings.update(options)
        pipeline = Pipeline(exporters, **settings)
        created.append((pipeline, exporters))
        return pipeline

    yield make
    for pipeline, exporters in created:
        for exporter in exporters:
            if isinstance(exporter, Hanging):
                exporter.release()
        pipeline.shutdown(timeout=0.3)


# ---- delivery -------------------------------------------------------------------------------


def test_events_reach_every_exporter_in_order(make_pipeline: Callable[..., Pipeline]) -> None:
    first, second = MemoryExporter(), MemoryExporter()
    pipeline = make_pipeline([first, second], batch_size=7)
    sent = events(100)
    for event in sent:
        pipeline.enqueue(event)

    assert pipeline.flush(timeout=10) is True
    assert ids(first.events) == ids(sent)
    assert ids(second.events) == ids(sent)
    stats = check_accounting(pipeline, sent=100, settled=True)
    assert stats["exported"] == 100
    assert stats["dropped"] == {}
    assert stats["exporters"]["memory"]["exported"] == 100


def test_flush_without_events_returns_true(make_pipeline: Callable[..., Pipeline]) -> None:
    pipeline = make_pipeline([MemoryExporter()])
    assert pipeline.flush(timeout=1) is True
    check_accounting(pipeline, sent=0, settled=True)


def test_pipeline_without_exporters_settles_everything(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    pipeline = make_pipeline([])
    for event in events(20):
        pipeline.enqueue(event)
    assert pipeline.flush(timeout=10) is True
    check_accounting(pipeline, sent=20, settled=True)


# ---- bounded queue --------------------------------------------------------------------------


def test_a_batch_processed_in_chunks_is_still_exported_whole(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    """The worker builds and sanitizes a few dozen items at a time (so their raw objects are freed
    early), but exporters still get batches of ``batch_size``: fewer, larger requests."""
    batches: list[int] = []

    class Counting(MemoryExporter):
        def export(self, batch: Sequence[AuditEvent]) -> ExportResult:
            batches.append(len(batch))
            return super().export(batch)

    exporter = Counting()
    pipeline = make_pipeline([exporter], batch_size=300, flush_interval_s=3600)
    sent = events(700)
    for event in sent:
        pipeline.enqueue(event)
    assert pipeline.flush(timeout=10)
    assert ids(exporter.events) == ids(sent)
    assert max(batches) == 300 and sum(batches) == 700  # the worker may wake at any size
    check_accounting(pipeline, sent=700, settled=True)


def test_a_queue_shorter_than_a_batch_wakes_the_worker_before_it_fills(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    """With ``queue_size`` below ``batch_size`` a batch can never be queued: half the queue
    must wake the worker, or it would wait for its timer while the queue fills and drops."""
    memory = MemoryExporter()
    pipeline = make_pipeline([memory], queue_size=20, batch_size=512, flush_interval_s=3600)
    pipeline.enqueue(make_event(-1))  # starts the worker, which then sleeps for its interval
    sent = events(10)
    for event in sent:
        pipeline.enqueue(event)
    deadline = time.monotonic() + 10
    while len(memory.events) < 11 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ids(memory.events)[-10:] == ids(sent)
    assert pipeline.stats()["dropped"] == {}


def test_dropping_a_hand_made_event_with_odd_data_never_raises_into_the_caller(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    """A full queue looks at what it drops (is it a trace's root?) on the caller's thread: an
    event built with ``model_construct`` and ``data=None`` must still be dropped and counted."""
    stuck = Hanging()
    pipeline = make_pipeline([stuck], queue_size=2, batch_size=2)
    pipeline.enqueue(make_event(-1))
    assert stuck.entered.wait(HANG_GUARD_S)
    odd = AuditEvent.model_construct(**{**make_event(0).__dict__, "data": None})
    for event in (odd, make_event(1), make_event(2)):
        pipeline.enqueue(event)  # the third drops `odd`
    stats = check_accounting(pipeline, sent=4)
    assert stats["dropped"] == {"queue_full": 1}
    stuck.release()


def test_full_queue_drops_the_oldest_and_counts_each_drop(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    stuck = Hanging()
    pipeline = make_pipeline([stuck], queue_size=10, batch_size=10)
    first = make_event(-1)
    pipeline.enqueue(first)
    assert stuck.entered.wait(HANG_GUARD_S), "the worker never picked up the first event"

    later = events(25)  # the worker is stuck on `first`: 10 fit, the 15 oldest are dropped
    for event in later:
        pipeline.enqueue(event)
    stats = check_accounting(pipeline, sent=26)
    assert stats["dropped"] == {"queue_full": 15}
    assert stats["queue_size"] == 10

    stuck.release()
    assert pipeline.flush(timeout=10) is True
    assert ids(stuck.events) == ids([first, *later[15:]])
    stats = check_accounting(pipeline, sent=26, settled=True)
    assert stats["exported"] == 11


def test_a_trace_whose_root_event_is_dropped_is_decided_at_once(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    """A full queue drops a trace's closing event while the sampler holds the rest of it: the
    trace is decided at once on what it showed (no run TTL here: it would wait forever), so
    ``flush`` returns and nothing stays held."""
    from llm_audit_langchain import SamplingPolicy

    def traced(trace: int, *, root: bool = False, status: str = "ok") -> AuditEvent:
        event = make_event(trace, data={"trace_root": True} if root else None)
        event.trace_id, event.status = f"{trace:032x}", status  # type: ignore[assignment]
        return event

    stuck = Hanging()
    pipeline = make_pipeline([stuck], queue_size=10, batch_size=10,
                             sampler=SamplingPolicy(success_rate=0.0).sampler())
    for _ in range(3):
        pipeline.enqueue(traced(1))  # trace 1's children: held until its root ends
    wait_for(lambda: pipeline.stats()["held"] == 3, "the children to be held")
    pipeline.enqueue(traced(2, root=True, status="error"))  # kept: the exporter hangs on it
    assert stuck.entered.wait(HANG_GUARD_S), "the worker never exported the failing trace"
    pipeline.enqueue(traced(1, root=True))  # dropped below by the full queue
    for trace in range(3, 18):
        pipeline.enqueue(traced(trace, root=True))
    stuck.release()
    assert pipeline.flush(timeout=10) is True
    stats = check_accounting(pipeline, sent=20, settled=True)
    assert stats["held"] == 0 and stats["sampling"]["rootless_traces"] == 1
    assert stats["dropped"]["queue_full"] == 6


def test_enqueue_never_blocks_while_the_exporter_hangs(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    stuck = Hanging()
    pipeline = make_pipeline([stuck], queue_size=1000, batch_size=100)
    pipeline.enqueue(make_event(-1))
    assert stuck.entered.wait(HANG_GUARD_S)
    burst = events(10_000)

    # Enqueue from another thread so that a blocking enqueue fails the test instead of hanging it.
    producer = threading.Thread(target=lambda: [pipeline.enqueue(e) for e in burst], daemon=True)
    producer.start()
    producer.join(timeout=30)
    assert not producer.is_alive(), "enqueue blocked while the exporter was stuck"

    stats = check_accounting(pipeline, sent=10_001)
    assert stats["dropped"] == {"queue_full": 9_000}

    started = time.monotonic()
    assert pipeline.flush(timeout=0.2) is False
    assert time.monotonic() - started < HANG_GUARD_S
    started = time.monotonic()
    assert pipeline.shutdown(timeout=0.5) is False
    assert time.monotonic() - started < HANG_GUARD_S
    check_accounting(pipeline, sent=10_001)

    # Once the sink answers again, every event still held ends somewhere and is counted.
    stuck.release()
    wait_for(lambda: pipeline.stats()["pending"] == 0, "the released worker to settle")
    stats = check_accounting(pipeline, sent=10_001, settled=True)
    assert stats["exported"] == len(stuck.events)


# ---- failing exporters ----------------------------------------------------------------------


def test_always_failing_exporter_is_retried_and_never_raises_into_the_caller(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    dead = AlwaysFailing()
    pipeline = make_pipeline([dead], batch_size=10)
    for event in events(50):
        pipeline.enqueue(event)  # must not raise

    wait_for(lambda: pipeline.stats()["retried"] >= 3, "retries")
    before = pipeline.stats()
    wait_for(lambda: pipeline.stats()["failed"] > before["failed"], "more failures")
    after = pipeline.stats()
    assert after["retried"] >= before["retried"]
    assert after["exporters"]["always-failing"]["failed"] == after["failed"] > 0
    assert dead.calls >= after["failed"]

    started = time.monotonic()
    assert pipeline.flush(timeout=0.2) is False
    assert time.monotonic() - started < HANG_GUARD_S
    stats = check_accounting(pipeline, sent=50)
    assert stats["exported"] == 0
    assert stats["dropped"] == {}
    assert stats["pending"] == 50  # held in the backlog for a retry, not lost
    assert dead.events == []


def test_exporter_returning_failure_is_retried_until_it_succeeds(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    flaky = ReturnsFailure(times=3)
    pipeline = make_pipeline([flaky], batch_size=1000)
    sent = events(30)
    for event in sent:
        pipeline.enqueue(event)

    assert pipeline.flush(timeout=10) is True
    assert ids(flaky.events) == ids(sent)
    stats = check_accounting(pipeline, sent=30, settled=True)
    assert stats["failed"] == 3
    assert stats["retried"] >= 3
    assert stats["exported"] == 30


def test_recovered_exporter_gets_everything_buffered_once_and_in_order(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    sink = DownThenUp()
    pipeline = make_pipeline([sink], batch_size=16)
    sent = events(200)
    for event in sent[:150]:
        pipeline.enqueue(event)
    wait_for(lambda: pipeline.stats()["failed"] >= 3, "failed attempts while down")
    for event in sent[150:]:
        pipeline.enqueue(event)
    check_accounting(pipeline, sent=200)

    sink.up()
    assert pipeline.flush(timeout=10) is True
    received = ids(sink.events)
    assert len(received) == len(set(received)), "an event was delivered twice"
    assert received == ids(sent)
    stats = check_accounting(pipeline, sent=200, settled=True)
    assert stats["exported"] == len(received) == 200
    assert stats["exporters"]["down-then-up"]["exported"] == 200


def test_exporter_that_fails_a_few_times_then_works_loses_nothing(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    sink = DownThenUp(times=4)
    pipeline = make_pipeline([sink], batch_size=5)
    sent = events(40)
    for event in sent:
        pipeline.enqueue(event)
    assert pipeline.flush(timeout=10) is True
    assert ids(sink.events) == ids(sent)
    stats = check_accounting(pipeline, sent=40, settled=True)
    assert stats["failed"] == 4


def test_exporter_backlog_is_bounded_and_overflow_is_counted(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    sink = DownThenUp()
    pipeline = make_pipeline([sink], queue_size=20, batch_size=5)
    sent = events(100)
    for start in range(0, 100, 5):  # feed one batch at a time so the queue itself never fills
        for event in sent[start:start + 5]:
            pipeline.enqueue(event)
        wait_idle(pipeline, "down-then-up")

    stats = check_accounting(pipeline, sent=100)
    backlog = stats["exporters"]["down-then-up"]["pending"]
    assert 0 < backlog <= 20  # the backlog bound (queue_size)
    assert "queue_full" not in stats["dropped"]
    assert stats["dropped"]["exporter_backlog_full"] == 100 - backlog
    assert stats["exporters"]["down-then-up"]["dropped"] == 100 - backlog

    sink.up()
    assert pipeline.flush(timeout=10) is True
    assert ids(sink.events) == ids(sent[100 - backlog:])  # the newest survive, the oldest went
    stats = check_accounting(pipeline, sent=100, settled=True)
    assert stats["exported"] == backlog


def test_healthy_exporter_keeps_receiving_while_another_is_down(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    healthy, dead = MemoryExporter(), AlwaysFailing()
    pipeline = make_pipeline([dead, healthy], batch_size=10)
    sent = events(100)
    for event in sent:
        pipeline.enqueue(event)

    wait_for(lambda: len(healthy.events) == 100, "the healthy exporter to get every event",
             timeout=HANG_GUARD_S)
    assert ids(healthy.events) == ids(sent)
    stats = check_accounting(pipeline, sent=100)
    assert stats["exporters"]["memory"]["exported"] == 100
    assert stats["exporters"]["always-failing"]["failed"] > 0
    assert stats["exporters"]["always-failing"]["exported"] == 0


def test_shutdown_with_a_dead_exporter_counts_what_was_never_delivered(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    dead = AlwaysFailing()
    pipeline = make_pipeline([dead], batch_size=10)
    for event in events(30):
        pipeline.enqueue(event)
    wait_for(lambda: pipeline.stats()["failed"] >= 1, "a failed export")

    started = time.monotonic()
    assert pipeline.shutdown(timeout=0.3) is False
    assert time.monotonic() - started < HANG_GUARD_S
    # After shutdown the backlog can never be delivered: those events are lost, and a user
    # watching `dropped` must see it rather than a `pending` that never moves.
    wait_for(lambda: pipeline.stats()["pending"] == 0,
             "undelivered events to be counted as dropped", timeout=HANG_GUARD_S)
    stats = check_accounting(pipeline, sent=30, settled=True)
    assert sum(stats["dropped"].values()) == 30


# ---- processors and sanitizer ---------------------------------------------------------------


def test_processor_that_raises_is_skipped_and_the_event_kept(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    def explode(event: AuditEvent) -> AuditEvent:
        raise RuntimeError("processor bug")

    def tag(event: AuditEvent) -> AuditEvent:
        event.data["tagged"] = True
        return event

    memory = MemoryExporter()
    pipeline = make_pipeline([memory], processors=[explode, tag])
    sent = events(10)
    for event in sent:
        pipeline.enqueue(event)

    assert pipeline.flush(timeout=10) is True
    assert ids(memory.events) == ids(sent)
    assert all(event.data["tagged"] is True for event in memory.events)
    check_accounting(pipeline, sent=10, settled=True)


def test_processor_returning_none_drops_the_event_as_filtered(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    def drop_odd(event: AuditEvent) -> AuditEvent | None:
        return None if event.data["seq"] % 2 else event

    memory = MemoryExporter()
    pipeline = make_pipeline([memory], processors=[drop_odd])
    sent = events(20)
    for event in sent:
        pipeline.enqueue(event)

    assert pipeline.flush(timeout=10) is True
    assert ids(memory.events) == ids(sent[0::2])
    stats = check_accounting(pipeline, sent=20, settled=True)
    assert stats["dropped"] == {"filtered": 10}
    assert stats["exported"] == 10


def test_event_the_sanitizer_cannot_handle_is_dropped_and_never_exported(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    def sanitizer(event: AuditEvent) -> AuditEvent | None:
        if "secret" in event.data:
            raise ValueError("cannot redact this")
        if "unsure" in event.data:
            return None
        event.data["sanitized"] = True
        return event

    memory = MemoryExporter()
    pipeline = make_pipeline([memory], sanitizer=sanitizer)
    clean = events(6)
    risky = events(3, data={"secret": "sk-live-123"})
    unsure = events(2, data={"unsure": "4111 1111 1111 1111"})
    for event in [*clean[:3], *risky, *clean[3:], *unsure]:
        pipeline.enqueue(event)

    assert pipeline.flush(timeout=10) is True
    assert ids(memory.events) == ids(clean)
    assert all(event.data["sanitized"] is True for event in memory.events)
    assert not any("secret" in e.data or "unsure" in e.data for e in memory.events)
    stats = check_accounting(pipeline, sent=11, settled=True)
    assert stats["dropped"] == {"sanitizer_error": 5}


def test_raw_objects_are_removed_before_export(make_pipeline: Callable[..., Pipeline]) -> None:
    memory = MemoryExporter()
    pipeline = make_pipeline([memory], sanitizer=lambda event: event)
    pipeline.enqueue(make_event(data={"_raw": {"response": object()}, "kept": 1}))
    assert pipeline.flush(timeout=10) is True
    (exported,) = memory.events
    assert "_raw" not in exported.data and exported.data["kept"] == 1
    check_accounting(pipeline, sent=1, settled=True)


# ---- shutdown -------------------------------------------------------------------------------


def test_shutdown_delivers_pending_events_and_shuts_exporters_down(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    sink = DownThenUp(times=0)
    pipeline = make_pipeline([sink], flush_interval_s=60.0, batch_size=1000)
    sent = events(25)
    for event in sent:
        pipeline.enqueue(event)

    assert pipeline.shutdown(timeout=10) is True
    assert ids(sink.events) == ids(sent)
    assert sink.shutdown_calls == 1
    check_accounting(pipeline, sent=25, settled=True)


@pytest.mark.parametrize("sent", [0, 5])
def test_shutdown_twice_shuts_each_exporter_down_once(
    make_pipeline: Callable[..., Pipeline], sent: int,
) -> None:
    sink = DownThenUp(times=0)
    pipeline = make_pipeline([sink])
    for event in events(sent):
        pipeline.enqueue(event)

    assert pipeline.shutdown(timeout=10) is True
    assert pipeline.shutdown(timeout=10) is True
    assert sink.shutdown_calls == 1  # the protocol: shutdown is called once
    assert len(sink.events) == sent
    check_accounting(pipeline, sent=sent, settled=True)


def test_enqueue_after_shutdown_is_dropped_and_counted(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    memory = MemoryExporter()
    pipeline = make_pipeline([memory])
    for event in events(5):
        pipeline.enqueue(event)
    assert pipeline.shutdown(timeout=10) is True

    for event in events(3):
        pipeline.enqueue(event)  # must not raise

    assert len(memory.events) == 5
    stats = check_accounting(pipeline, sent=8, settled=True)
    assert stats["dropped"] == {"shutdown": 3}
    assert stats["exported"] == 5


# ---- concurrency ----------------------------------------------------------------------------


def test_concurrent_producers_every_event_is_accounted_for(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    memory = MemoryExporter()
    pipeline = make_pipeline([memory], queue_size=2000, batch_size=256)
    threads, per_thread = 8, 5_000
    start = threading.Barrier(threads)

    def produce(worker: int) -> None:
        start.wait()
        for seq in range(per_thread):
            pipeline.enqueue(make_event(seq, agent=f"t{worker}"))

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in producers)

    assert pipeline.flush(timeout=30) is True
    stats = check_accounting(pipeline, sent=threads * per_thread, settled=True)
    received = memory.events
    assert len(received) == stats["exported"]
    assert stats["exported"] == stats["enqueued"] - sum(stats["dropped"].values())
    assert set(stats["dropped"]) <= {"queue_full"}
    assert len({event.event_id for event in received}) == len(received)
    for worker in range(threads):  # each producer's events arrive in the order it sent them
        seqs = [e.data["seq"] for e in received if e.agent == f"t{worker}"]
        assert seqs == sorted(seqs)


# ---- fork -----------------------------------------------------------------------------------


def _read_jsonl(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text().splitlines()]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
def test_forked_child_gets_a_working_pipeline_with_only_its_own_events(
    tmp_path: Path, make_pipeline: Callable[..., Pipeline],
) -> None:
    logs, result_file = tmp_path / "logs", tmp_path / "child.json"
    memory = MemoryExporter()
    # A long interval and a big batch: events sit in the parent's queue until a flush.
    pipeline = make_pipeline([JsonlExporter(logs), memory], flush_interval_s=60.0,
                             batch_size=1000)
    for event in events(2, agent="parent-early"):
        pipeline.enqueue(event)
    assert pipeline.flush(timeout=10) is True
    for event in events(3, agent="parent-pending"):
        pipeline.enqueue(event)  # still queued in the parent when the child is forked

    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            seen_before = len(memory.events)
            for event in events(4, agent="child"):
                pipeline.enqueue(event)
            flushed = pipeline.flush(timeout=10)
            result_file.write_text(json.dumps({
                "flushed": flushed,
                "new_agents": [e.agent for e in memory.events[seen_before:]],
                "stats": pipeline.stats(),
            }))
            status = 0
        finally:
            os._exit(status)

    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    child = json.loads(result_file.read_text())
    assert child["flushed"] is True
    assert child["new_agents"] == ["child"] * 4
    assert child["stats"]["enqueued"] == 4 and child["stats"]["exported"] == 4

    # The parent goes on: its pending events are exported once (by the parent, not the child).
    pipeline.enqueue(make_event(agent="parent-after"))
    assert pipeline.flush(timeout=10) is True
    assert [e.agent for e in memory.events] == ["parent-early"] * 2 + ["parent-pending"] * 3 + [
        "parent-after"]
    check_accounting(pipeline, sent=6, settled=True)
    agents = sorted(record["agent"] for record in _read_jsonl(logs))
    assert agents == sorted(["parent-early"] * 2 + ["parent-pending"] * 3 + ["child"] * 4
                            + ["parent-after"])


# ---- exit hook ------------------------------------------------------------------------------

_ATEXIT_PIPELINE_SCRIPT = """
import sys
from datetime import UTC, datetime
from uuid import uuid4
from llm_audit_langchain.events import AuditEvent, AuditEventType
from llm_audit_langchain.exporters import JsonlExporter
from llm_audit_langchain.pipeline.worker import Pipeline

pipeline = Pipeline([JsonlExporter(sys.argv[1])], flush_interval_s=60.0, batch_size=1000)
for seq in range(7):
    pipeline.enqueue(AuditEvent(
        event_id=uuid4().hex, trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id=uuid4().hex[:16], timestamp=datetime.now(UTC),
        event_type=AuditEventType.CHAIN_END, agent="exit", action="b", data={"seq": seq}))
print(pipeline.stats()["exported"])
"""


def _run_and_exit(script: str, log_dir: Path) -> str:
    """Run ``script`` in a fresh interpreter that exits normally; return what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    done = subprocess.run([sys.executable, "-c", script, str(log_dir)], check=False,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pending_events_are_exported_at_interpreter_exit(tmp_path: Path) -> None:
    exported_before_exit = _run_and_exit(_ATEXIT_PIPELINE_SCRIPT, tmp_path)
    assert exported_before_exit == "0"
    records = _read_jsonl(tmp_path)
    assert [r["data"]["seq"] for r in records] == list(range(7))


_ATEXIT_HANDLER_SCRIPT = """
import sys
from datetime import UTC, datetime
from uuid import uuid4
from langchain_core.runnables import RunnableLambda
from llm_audit_langchain import (
    AuditCallbackHandler, AuditConfig, AuditEvent, AuditEventType, JsonlExporter)

# A 60 s timer: nothing is exported before exit unless the exit hook does it.
handler = AuditCallbackHandler(exporters=[JsonlExporter(sys.argv[1])],
                               config=AuditConfig(flush_interval_ms=60000, debug=True))
add_one = RunnableLambda(lambda x: x + 1, name="add_one")
for n in range(5):
    assert add_one.invoke(n, config={"callbacks": [handler]}) == n + 1
for seq in range(3):
    handler.emit_event(AuditEvent(
        event_id=uuid4().hex, trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id=uuid4().hex[:16], timestamp=datetime.now(UTC),
        event_type=AuditEventType.CUSTOM, agent="script", action="note", data={"seq": seq}))
print(handler.stats()["exported"])
"""  # exits without flush() or shutdown()


def test_handler_events_are_written_at_exit_without_flush(tmp_path: Path) -> None:
    exported_before_exit = _run_and_exit(_ATEXIT_HANDLER_SCRIPT, tmp_path)
    assert exported_before_exit == "0"
    records = _read_jsonl(tmp_path)
    chain_ends = [r for r in records if r["event_type"] == "chain.end"]
    custom = [r for r in records if r["event_type"] == "custom"]
    assert [r["action"] for r in chain_ends] == ["add_one"] * 5
    assert [r["data"]["seq"] for r in custom] == [0, 1, 2]
    assert len(records) == 8
