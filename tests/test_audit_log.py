"""The audit chain writer: format, modes, rotation, restarts, crashes, several processes."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from audit_chain_helpers import make_event, read_lines, records, write_chain

from llm_audit_langchain.audit import (
    GENESIS_HASH,
    AuditChainError,
    AuditLogExporter,
    canonical_json,
    key_fingerprint,
    read_head,
    verify,
)
from llm_audit_langchain.audit import chain as chain_module
from llm_audit_langchain.events import event_to_dict
from llm_audit_langchain.exporters.base import Exporter, ExportResult


def test_implements_the_exporter_protocol(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path)
    assert isinstance(log, Exporter)
    assert log.export([make_event()]) is ExportResult.SUCCESS
    assert log.force_flush(1.0) is True
    log.shutdown(1.0)
    assert log.export([make_event()]) is ExportResult.FAILURE  # closed: refused, not raised


def test_record_is_the_event_plus_chain_fields_hashed_canonically(tmp_path: Path) -> None:
    event = make_event(data={"ü": "naïve", "b": [1, 2.5, None]})
    AuditLogExporter(tmp_path, key=None).export([event])
    (path,) = tmp_path.glob("audit-chain-*.jsonl")
    assert path.name == f"audit-chain-{event.timestamp.date().isoformat()}.jsonl"
    record = json.loads(path.read_bytes())
    body = {k: v for k, v in record.items() if k != "record_hash"}
    assert body == {
        **event_to_dict(event),
        "sequence": 1,
        "prev_hash": GENESIS_HASH,
        "hash_alg": "sha256",
        "key_id": None,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(body) == canonical.encode()
    assert record["record_hash"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_keyed_mode_uses_hmac_and_records_a_key_id_not_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_CHAIN_KEY", "from-the-environment")
    log = AuditLogExporter(tmp_path)
    log.export([make_event()])
    text = next(tmp_path.glob("audit-chain-*.jsonl")).read_text()
    assert "from-the-environment" not in text
    record = json.loads(text)
    assert record["hash_alg"] == "hmac-sha256"
    assert record["key_id"] == key_fingerprint("from-the-environment") == log.key_id
    body = canonical_json({k: v for k, v in record.items() if k != "record_hash"})
    expected = hmac.new(b"from-the-environment", body, "sha256").hexdigest()
    assert record["record_hash"] == expected
    assert verify(tmp_path, key="from-the-environment").ok


def test_sequence_and_links_continue_across_a_restart(tmp_path: Path) -> None:
    first = AuditLogExporter(tmp_path)
    first.export([make_event() for _ in range(5)])
    second = AuditLogExporter(tmp_path)  # a new process would start exactly like this
    assert second.head() == first.head()
    second.export([make_event() for _ in range(5)])
    chain = records(tmp_path)
    assert [r["sequence"] for r in chain] == list(range(1, 11))
    assert chain[5]["prev_hash"] == chain[4]["record_hash"]
    report = verify(tmp_path)
    assert report.ok and report.records == 10


def test_rotation_links_the_next_days_file_to_the_previous_one(tmp_path: Path) -> None:
    day1 = datetime(2030, 1, 1, 23, 59, 59, tzinfo=UTC)
    day2 = day1 + timedelta(seconds=2)
    log = AuditLogExporter(tmp_path)
    log.export([make_event(timestamp=day1), make_event(timestamp=day1)])
    log.export([make_event(timestamp=day2)])
    # Late event stamped on day 1: it never goes back to the older file.
    log.export([make_event(timestamp=day1)])
    files = sorted(p.name for p in tmp_path.glob("audit-chain-*.jsonl"))
    assert files == ["audit-chain-2030-01-01.jsonl", "audit-chain-2030-01-02.jsonl"]
    first = [json.loads(x) for x in (tmp_path / files[0]).read_bytes().splitlines()]
    second = [json.loads(x) for x in (tmp_path / files[1]).read_bytes().splitlines()]
    assert [r["sequence"] for r in first] == [1, 2]
    assert [r["sequence"] for r in second] == [3, 4]
    assert second[0]["prev_hash"] == first[-1]["record_hash"]
    report = verify(tmp_path)
    assert report.ok and report.records == 4 and report.files == files


def test_one_batch_spanning_midnight_is_split_across_files(tmp_path: Path) -> None:
    day1 = datetime(2030, 1, 1, 23, 59, tzinfo=UTC)
    log = AuditLogExporter(tmp_path)
    log.export([make_event(timestamp=day1), make_event(timestamp=day1 + timedelta(minutes=2))])
    assert len(list(tmp_path.glob("audit-chain-*.jsonl"))) == 2
    assert verify(tmp_path).ok


def test_resume_reads_only_the_tail_even_of_large_records(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path)
    log.export([make_event(data={"blob": "x" * 200_000}) for _ in range(3)])  # > 64 KiB lines
    resumed = AuditLogExporter(tmp_path)
    assert resumed.head() is not None and resumed.head() == log.head()
    resumed.export([make_event()])
    assert verify(tmp_path).records == 4


def test_writer_reloads_the_tail_when_another_writer_appended(tmp_path: Path) -> None:
    a, b = AuditLogExporter(tmp_path), AuditLogExporter(tmp_path)
    for _ in range(3):
        a.export([make_event()])
        b.export([make_event(), make_event()])
    assert [r["sequence"] for r in records(tmp_path)] == list(range(1, 10))
    assert verify(tmp_path).ok


# -- crashes ----------------------------------------------------------------------------------


def test_crash_mid_write_leaves_a_torn_line_that_restart_repairs(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 6)
    whole = read_lines(path)[-1]
    with open(path, "ab") as handle:  # what a process killed inside os.write leaves
        handle.write(whole[: len(whole) // 2])

    before = verify(tmp_path)
    assert before.ok and before.records == 6
    assert [(t.file, t.line) for t in before.torn_lines] == [(path.name, 7)]
    strict = verify(tmp_path, allow_torn=False)
    assert not strict.ok and strict.first_broken is not None
    assert strict.first_broken.reason == "torn"

    restarted = AuditLogExporter(tmp_path)
    assert restarted.head() is not None and restarted.head().sequence == 6
    restarted.export([make_event(), make_event()])
    after = verify(tmp_path)
    assert after.ok, after.first_broken
    assert after.records == 8
    assert [(t.file, t.line) for t in after.torn_lines] == [(path.name, 7)]
    chain = records(tmp_path)
    assert chain[6]["sequence"] == 7 and chain[6]["prev_hash"] == chain[5]["record_hash"]
    assert chain[6]["torn_tail"][0]["bytes"] == len(whole) // 2


def test_a_record_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 3)
    path.write_bytes(path.read_bytes()[:-1])
    AuditLogExporter(tmp_path).export([make_event()])
    report = verify(tmp_path)
    assert report.ok and report.records == 4 and report.torn_lines == []


def test_short_write_fails_the_export_and_the_retry_completes_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLogExporter(tmp_path)
    log.export([make_event()])
    batch = [make_event(data={"i": i}) for i in range(4)]
    real_write = os.write
    calls = {"n": 0}

    def disk_full_midway(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            lines = bytes(data).split(b"\n")
            return real_write(fd, lines[0] + b"\n" + lines[1][:30])  # 1.5 records land
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chain_module.os, "write", disk_full_midway)
    assert log.export(batch) is ExportResult.FAILURE
    monkeypatch.setattr(chain_module.os, "write", real_write)
    assert log.export(batch) is ExportResult.SUCCESS  # the pipeline's retry of the same batch

    report = verify(tmp_path)
    assert report.ok, report.first_broken
    assert len(report.torn_lines) == 1
    ids = [r["event_id"] for r in records(tmp_path)]
    assert ids[1:] == [e.event_id for e in batch]  # each event exactly once, in order
    assert report.records == 5


def test_export_reports_failure_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLogExporter(tmp_path)
    log.export([make_event()])
    real_open = os.open

    def failing_open(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".jsonl"):
            raise OSError(errno.EIO, "Input/output error")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(chain_module.os, "open", failing_open)
    assert log.export([make_event()]) is ExportResult.FAILURE
    with pytest.raises(AuditChainError):
        log.append([make_event()])
    monkeypatch.setattr(chain_module.os, "open", real_open)
    assert log.export([make_event()]) is ExportResult.SUCCESS
    report = verify(tmp_path)
    assert report.ok and report.records == 2


# -- several processes ------------------------------------------------------------------------


def _writer_process(
    directory: str, worker: int, batches: int, size: int, start: Any | None = None
) -> None:
    if start is not None:
        start.wait(60)  # all writers begin together, so their appends really contend
    log = AuditLogExporter(directory, key=b"shared-key")
    for b in range(batches):
        events = [make_event(agent=f"w{worker}", data={"b": b, "i": i}) for i in range(size)]
        assert log.export(events) is ExportResult.SUCCESS
    log.shutdown()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_processes_writing_concurrently_share_one_intact_chain(
    tmp_path: Path, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    workers, batches, size = 4, 60, 5
    ctx = multiprocessing.get_context(method)
    start = ctx.Barrier(workers)
    procs = [
        ctx.Process(target=_writer_process, args=(str(tmp_path), w, batches, size, start))
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    report = verify(tmp_path, key=b"shared-key")
    assert report.ok, report.first_broken
    total = workers * batches * size
    assert report.records == total
    chain = records(tmp_path)
    assert [r["sequence"] for r in chain] == list(range(1, total + 1))  # none lost or doubled
    assert len({r["event_id"] for r in chain}) == total
    agents = [r["agent"] for r in chain]
    switches = sum(1 for a, b in itertools.pairwise(agents) if a != b)
    assert switches > workers  # the writers did interleave: this was a real race
    for w in range(workers):  # each batch stays contiguous, each writer's batches in order
        mine = [r for r in chain if r["agent"] == f"w{w}"]
        assert [(r["data"]["b"], r["data"]["i"]) for r in mine] == [
            (b, i) for b in range(batches) for i in range(size)
        ]
    for b in range(len(chain) // size):
        assert len({r["agent"] for r in chain[b * size : (b + 1) * size]}) == 1
    head = read_head(tmp_path)
    assert head is not None and head.sequence == total


def test_a_forked_child_does_not_reuse_the_parents_view_of_the_chain(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path)
    log.export([make_event()])
    ctx = multiprocessing.get_context("fork")

    def child() -> None:
        log.export([make_event(agent="child")])

    proc = ctx.Process(target=child)
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    log.export([make_event(agent="parent")])  # parent's cached tail is stale: it must re-read
    assert [r["agent"] for r in records(tmp_path)] == ["agent", "child", "parent"]
    assert verify(tmp_path).ok


def test_fsync_mode_writes_the_same_chain(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path, fsync=True)
    assert log.export([make_event(), make_event()]) is ExportResult.SUCCESS
    assert verify(tmp_path).records == 2


def test_a_writer_stuck_holding_the_lock_makes_export_fail_not_hang(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path, lock_timeout=0.2)
    fd = os.open(tmp_path / "audit-chain.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's writer, frozen inside its append
    try:
        started = time.monotonic()
        assert log.export([make_event()]) is ExportResult.FAILURE
        assert time.monotonic() - started < 2.0
    finally:
        os.close(fd)
    assert log.export([make_event()]) is ExportResult.SUCCESS
