"""Verification: each kind of tampering is detected and named; what each mode cannot prove."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from audit_chain_helpers import make_event, read_lines, records, write_chain, write_lines

from llm_audit_langchain.audit import (
    HEAD_NAME,
    AuditLogExporter,
    ChainHead,
    canonical_json,
    read_head,
    verify,
)
from llm_audit_langchain.audit.hashing import ChainKey, record_line

KEY = b"k" * 32


@pytest.fixture(params=[None, KEY], ids=["plain", "keyed"])
def key(request: pytest.FixtureRequest) -> bytes | None:
    return request.param  # type: ignore[no-any-return]


def _reason(directory: Path, **kwargs: Any) -> tuple[str, int, int | None]:
    report = verify(directory, **kwargs)
    assert not report.ok
    broken = report.first_broken
    assert broken is not None
    return broken.reason, broken.line, broken.sequence


def test_intact_chain_verifies(tmp_path: Path, key: bytes | None) -> None:
    write_chain(tmp_path, 20, key=key)
    report = verify(tmp_path, key=key)
    assert report.ok and report.records == 20 and report.first_broken is None
    assert report.last == read_head(tmp_path)


def test_empty_directory_is_an_intact_empty_chain(tmp_path: Path) -> None:
    report = verify(tmp_path)
    assert report.ok and report.records == 0 and report.files == []


def test_modified_byte_is_named_modified(tmp_path: Path, key: bytes | None) -> None:
    path = write_chain(tmp_path, 10, key=key)
    lines = read_lines(path)
    lines[4] = lines[4].replace(b'"agent":"agent"', b'"agent":"agenT"')
    write_lines(path, lines)
    assert _reason(tmp_path, key=key) == ("modified", 5, 5)


def test_modified_number_is_named_modified(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 10)
    lines = read_lines(path)
    lines[2] = lines[2].replace(b'"data":{"i":2}', b'"data":{"i":7}')
    write_lines(path, lines)
    assert _reason(tmp_path) == ("modified", 3, 3)


def test_deleted_record_is_named_deleted(tmp_path: Path, key: bytes | None) -> None:
    path = write_chain(tmp_path, 10, key=key)
    lines = read_lines(path)
    del lines[4]
    write_lines(path, lines)
    assert _reason(tmp_path, key=key) == ("deleted", 5, 6)


def test_deleted_first_record_is_named_deleted(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 5)
    write_lines(path, read_lines(path)[1:])
    assert _reason(tmp_path) == ("deleted", 1, 2)
    # ...unless a retention policy pruned the oldest records on purpose
    assert verify(tmp_path, allow_pruned_start=True).ok


def test_inserted_copy_is_named_inserted(tmp_path: Path, key: bytes | None) -> None:
    path = write_chain(tmp_path, 10, key=key)
    lines = read_lines(path)
    lines.insert(7, lines[2])  # a genuine record, replayed later in the file
    write_lines(path, lines)
    assert _reason(tmp_path, key=key) == ("inserted", 8, 3)


def test_inserted_forged_record_is_named_inserted(tmp_path: Path) -> None:
    # Plain mode: the forger computes a valid hash and links to the previous record.
    path = write_chain(tmp_path, 10)
    lines = read_lines(path)
    previous = json.loads(lines[6])
    forged = {k: v for k, v in json.loads(lines[7]).items() if k != "record_hash"}
    forged.update(agent="forger", prev_hash=previous["record_hash"])
    line, _ = record_line(forged, ChainKey(None))
    lines.insert(7, line)
    write_lines(path, lines)
    assert _reason(tmp_path) == ("inserted", 8, 8)


def test_reordered_records_are_named_reordered(tmp_path: Path, key: bytes | None) -> None:
    path = write_chain(tmp_path, 10, key=key)
    lines = read_lines(path)
    lines[3], lines[4] = lines[4], lines[3]
    write_lines(path, lines)
    assert _reason(tmp_path, key=key) == ("reordered", 4, 5)


def test_record_moved_several_places_is_named_reordered(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 20)
    lines = read_lines(path)
    lines.insert(12, lines.pop(3))
    write_lines(path, lines)
    reason, line, _ = _reason(tmp_path)
    assert (reason, line) == ("reordered", 4)


def test_truncated_tail_is_named_truncated_thanks_to_the_head_file(
    tmp_path: Path, key: bytes | None
) -> None:
    path = write_chain(tmp_path, 10, key=key)
    write_lines(path, read_lines(path)[:7])
    assert _reason(tmp_path, key=key) == ("truncated", 8, 8)


def test_truncation_mid_line_is_truncated_not_just_torn(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 10)
    path.write_bytes(path.read_bytes()[:-50])
    report = verify(tmp_path)
    assert not report.ok and report.first_broken is not None
    assert report.first_broken.reason == "truncated"
    assert len(report.torn_lines) == 1


def test_truncation_is_invisible_without_an_anchor(tmp_path: Path) -> None:
    """The documented limit: cutting records off the end leaves a valid, shorter chain."""
    path = write_chain(tmp_path, 10)
    write_lines(path, read_lines(path)[:7])
    assert verify(tmp_path, use_head_file=False).ok
    (tmp_path / HEAD_NAME).unlink()  # someone who can truncate can also remove the head file
    assert verify(tmp_path).ok
    # An anchor kept elsewhere (a last sequence, or sequence and hash) still catches it.
    assert _reason(tmp_path, anchor=10) == ("truncated", 8, 8)


def test_external_anchor_with_hash_catches_a_rewritten_end(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path)
    for i in range(5):
        log.export([make_event(data={"i": i})])
    anchor = log.head()
    assert anchor is not None and anchor == ChainHead(5, records(tmp_path)[-1]["record_hash"])
    assert verify(tmp_path, anchor=anchor).ok
    _recompute_plain_chain(tmp_path, edit={"agent": "rewritten"}, at=4)
    assert _reason(tmp_path, anchor=anchor, use_head_file=False) == ("modified", 5, 5)


def test_writer_restarted_after_truncation_records_the_gap(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 10)
    write_lines(path, read_lines(path)[:6])
    log = AuditLogExporter(tmp_path)
    log.export([make_event()])  # it must not silently move the anchor back
    assert _reason(tmp_path) == ("truncated", 7, 7)
    gap = records(tmp_path)[6]
    assert gap["action"] == "audit_chain.gap"
    assert gap["data"]["anchor_sequence"] == 10 and gap["data"]["resumed_after_sequence"] == 6


def test_writer_restarted_after_all_files_were_removed_records_the_gap(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 4)
    path.unlink()
    AuditLogExporter(tmp_path).export([make_event()])
    assert _reason(tmp_path) == ("truncated", 1, 1)


def test_garbage_line_in_the_middle_is_bad_json(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 6)
    lines = read_lines(path)
    lines.insert(3, b"this is not json\n")
    write_lines(path, lines)
    assert _reason(tmp_path) == ("bad_json", 4, None)


def test_byte_change_that_breaks_json_is_bad_json(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 6)
    lines = read_lines(path)
    lines[2] = lines[2].replace(b'{"action"', b'["action"', 1)
    write_lines(path, lines)
    assert _reason(tmp_path) == ("bad_json", 3, None)


def test_foreign_json_line_is_bad_json(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 6)
    lines = read_lines(path)
    lines.insert(2, b'{"hello": "world"}\n')
    write_lines(path, lines)
    assert _reason(tmp_path) == ("bad_json", 3, None)


def test_deleting_a_whole_day_file_is_deleted(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path)
    start = datetime(2031, 3, 1, 12, tzinfo=UTC)
    for day in range(3):
        log.export([make_event(timestamp=start + timedelta(days=day)) for _ in range(3)])
    (tmp_path / "audit-chain-2031-03-02.jsonl").unlink()
    reason, line, sequence = _reason(tmp_path)
    assert (reason, line, sequence) == ("deleted", 1, 7)  # first line of the third day's file


# -- keys -------------------------------------------------------------------------------------


def test_keyed_chain_fails_with_the_wrong_key_or_none(tmp_path: Path) -> None:
    write_chain(tmp_path, 5, key=KEY)
    assert _reason(tmp_path, key=b"not the key")[0] == "wrong_key"
    assert _reason(tmp_path, key=None)[0] == "wrong_key"
    assert verify(tmp_path, key=[b"old key", KEY]).ok  # rotated keys: any listed key may match


def test_plain_chain_fails_when_a_key_is_expected(tmp_path: Path) -> None:
    """A keyed chain rewritten as a plain one (a downgrade) is refused by a keyed verifier."""
    write_chain(tmp_path, 5)
    assert _reason(tmp_path, key=KEY)[0] == "wrong_key"


def test_keyed_chain_cannot_be_recomputed_without_the_key(tmp_path: Path) -> None:
    write_chain(tmp_path, 8, key=KEY)
    _recompute_chain(tmp_path, ChainKey(b"attacker's guess"), edit={"agent": "x"}, at=3)
    assert _reason(tmp_path, key=KEY)[0] == "wrong_key"
    _recompute_chain(tmp_path, ChainKey(None), edit={"agent": "x"}, at=3)  # downgrade
    assert _reason(tmp_path, key=KEY)[0] == "wrong_key"


def test_plain_chain_recomputed_after_an_edit_passes(tmp_path: Path) -> None:
    """The documented limit of plain SHA-256: it proves integrity against accidents only."""
    path = write_chain(tmp_path, 8)
    lines = read_lines(path)
    lines[3] = lines[3].replace(b'"agent":"agent"', b'"agent":"evil!"')
    write_lines(path, lines)
    assert _reason(tmp_path) == ("modified", 4, 4)
    _recompute_plain_chain(tmp_path, edit={"agent": "evil!"}, at=3)
    assert _reason(tmp_path)[0] == "modified"  # the head file still names the old last hash
    head = records(tmp_path)[-1]
    (tmp_path / HEAD_NAME).write_text(
        json.dumps({"sequence": head["sequence"], "record_hash": head["record_hash"]})
    )
    assert verify(tmp_path).ok  # a full rewrite, head file included, is undetectable


def test_reformatted_line_with_the_same_content_still_verifies(tmp_path: Path) -> None:
    path = write_chain(tmp_path, 3)
    lines = read_lines(path)
    lines[1] = json.dumps(json.loads(lines[1]), indent=None).encode() + b"\n"  # spaces, key order
    write_lines(path, lines)
    assert verify(tmp_path).ok


def _recompute_chain(directory: Path, key: ChainKey, *, edit: dict[str, Any], at: int) -> None:
    """What an attacker with write access does: edit a record and recompute every hash after."""
    (path,) = sorted(directory.glob("audit-chain-*.jsonl"))
    out: list[bytes] = []
    prev_hash: str | None = None
    for index, raw in enumerate(read_lines(path)):
        record = {k: v for k, v in json.loads(raw).items() if k != "record_hash"}
        if index == at:
            record.update(edit)
        if prev_hash is not None:
            record["prev_hash"] = prev_hash
        record["hash_alg"], record["key_id"] = key.alg, key.key_id
        line, prev_hash = record_line(record, key)
        out.append(line)
    write_lines(path, out)


def _recompute_plain_chain(directory: Path, *, edit: dict[str, Any], at: int) -> None:
    _recompute_chain(directory, ChainKey(None), edit=edit, at=at)


def test_canonical_json_is_stable_for_mixed_key_types() -> None:
    assert canonical_json({1: "a", "b": 2}) == b'{"1":"a","b":2}'
