"""Verify an audit chain directory, streaming, and name the first thing that is wrong.

Example::

    >>> from llm_audit_langchain.audit import verify
    >>> report = verify("audit", key=b"secret")
    >>> report.ok, report.records, report.first_broken
    (True, 100000, None)

Reasons a chain can fail, in :attr:`ChainBreak.reason`:

- ``modified``: a record's content no longer matches its hash, or it no longer matches the hash
  the next record (or the anchor) links to;
- ``deleted``: records are missing from the middle (or the start) of the chain;
- ``inserted``: a record that does not belong (a copy, or a forged one) sits in the chain;
- ``reordered``: the chain's records are all there but out of order;
- ``truncated``: the chain ends before its anchor (the head file or one you pass), or a writer
  found it shorter than its anchor and recorded the gap;
- ``torn``: a line left half-written by a crash, reported as a failure only with
  ``allow_torn=False`` (by default torn lines are listed in :attr:`VerifyReport.torn_lines`);
- ``bad_json``: a line that is not a chain record and not a crash artefact;
- ``wrong_key``: the record is keyed with a key you did not give, is keyed and you gave none, or
  is plain while you gave a key (a keyed chain rewritten as a plain one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from .chain import GAP_ACTION
from .hashing import GENESIS_HASH, ChainKey, canonical_json, keyring, split_line
from .layout import ChainHead, chain_files, read_head

Reason = Literal[
    "modified", "deleted", "inserted", "reordered", "truncated", "torn", "bad_json", "wrong_key"
]

LOOKAHEAD = 64
"""How many lines past a break verification reads to tell a move from an insertion/deletion."""

_PLAIN = ChainKey(None)


@dataclass(frozen=True)
class LineRef:
    """A line of a chain file (1-based line number)."""

    file: str
    line: int


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain is broken, and why."""

    reason: Reason
    file: str
    line: int
    sequence: int | None
    detail: str


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`. ``ok`` is True only when the chain is intact."""

    ok: bool
    records: int = 0
    files: list[str] = field(default_factory=list)
    torn_lines: list[LineRef] = field(default_factory=list)
    first_broken: ChainBreak | None = None
    last: ChainHead | None = None


@dataclass(frozen=True, slots=True)
class _Line:
    file: str
    number: int
    raw: bytes
    record: dict[str, Any] | None  # None: not valid JSON (a torn-line candidate)
    foreign: bool = False  # valid JSON but not a chain record


@dataclass(slots=True)
class _State:
    expected: int | None  # next sequence; None until the first record when the start was pruned
    prev_hash: str
    prev: _Line | None = None
    prev_parent: str | None = None  # prev_hash of the previous record
    pending_torn: list[_Line] = field(default_factory=list)


@dataclass(frozen=True)
class _Checks:
    ring: dict[str, ChainKey]
    anchors: list[ChainHead]
    report: VerifyReport


def verify(
    directory: str | os.PathLike[str],
    *,
    key: bytes | str | Iterable[bytes | str] | None = None,
    anchor: ChainHead | int | None = None,
    use_head_file: bool = True,
    allow_torn: bool = True,
    allow_pruned_start: bool = False,
) -> VerifyReport:
    """Check every record of the chain in ``directory``, in constant memory.

    ``key``: the HMAC key (or several, for rotated keys; ``$AUDIT_CHAIN_KEY`` when None); with no
    key the chain must be plain SHA-256. ``anchor``: the chain's last sequence (int) or last
    sequence and hash, kept somewhere the log's writers cannot rewrite: the only defence against
    a truncation by someone who can also edit the directory. ``use_head_file`` also checks the
    writers' own anchor, ``audit-chain.head.json``. ``allow_pruned_start`` accepts a chain whose
    oldest files were deleted by a retention policy (the first record need not be sequence 1).
    """
    directory = Path(directory)
    ring = keyring(key)
    anchors = [
        a for a in (_as_anchor(anchor), read_head(directory) if use_head_file else None) if a
    ]
    files = chain_files(directory)
    report = VerifyReport(ok=True, files=[path.name for path in files])
    state = _State(expected=None if allow_pruned_start else 1, prev_hash=GENESIS_HASH)
    lines = _read_lines(files)
    checks = _Checks(ring, anchors, report)
    for line in lines:
        broken = _step(line, lines, state, checks)
        if broken is not None:
            return _fail(report, broken)
    if state.pending_torn:
        report.torn_lines.extend(LineRef(t.file, t.number) for t in state.pending_torn)
    broken = _check_end(state, anchors, report, files)
    if broken is None and report.torn_lines and not allow_torn:
        first = report.torn_lines[0]
        broken = ChainBreak("torn", first.file, first.line, None, "line left half-written")
    return report if broken is None else _fail(report, broken)


def _as_anchor(anchor: ChainHead | int | None) -> ChainHead | None:
    if isinstance(anchor, int):
        return ChainHead(anchor, "")  # sequence only
    return anchor


def _fail(report: VerifyReport, broken: ChainBreak) -> VerifyReport:
    report.ok = False
    report.first_broken = broken
    return report


def _read_lines(files: list[Path]) -> Iterator[_Line]:
    for path in files:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                yield _parse(path.name, number, raw.removesuffix(b"\n"))


def _parse(file: str, number: int, raw: bytes) -> _Line:
    try:
        value = json.loads(raw.decode("utf-8", "surrogatepass"))
    except ValueError:
        return _Line(file, number, raw, None)
    if (
        isinstance(value, dict)
        and isinstance(value.get("sequence"), int)
        and isinstance(value.get("record_hash"), str)
        and isinstance(value.get("prev_hash"), str)
    ):
        return _Line(file, number, raw, value)
    return _Line(file, number, raw, None, foreign=True)


def _step(line: _Line, lines: Iterator[_Line], state: _State, check: _Checks) -> ChainBreak | None:
    record = line.record
    if record is None:
        if line.foreign:
            return _break("bad_json", line, "valid JSON but not a chain record")
        state.pending_torn.append(line)
        return None
    sequence: int = record["sequence"]
    mismatch = _check_hash(line, record, check.ring)
    if mismatch is not None:
        return _break(mismatch[0], line, mismatch[1])
    if state.pending_torn or "torn_tail" in record:
        unacknowledged = _acknowledge_torn(state, record)
        if unacknowledged is not None:
            return unacknowledged
        check.report.torn_lines.extend(LineRef(t.file, t.number) for t in state.pending_torn)
        state.pending_torn.clear()
    if state.expected is None:  # pruned start: take the first record's place in the chain
        state.expected, state.prev_hash = sequence, record["prev_hash"]
    if sequence != state.expected or record["prev_hash"] != state.prev_hash:
        return _classify(line, record, lines, state)
    for anchor in check.anchors:
        if anchor.sequence == sequence and anchor.record_hash not in ("", record["record_hash"]):
            return _break("modified", line, "record differs from the one the anchor names")
    if record.get("action") == GAP_ACTION and record.get("agent") == "audit-chain":
        data = record.get("data") or {}
        return _break(
            "truncated",
            line,
            f"a writer found the chain cut after record {data.get('resumed_after_sequence')}"
            f" although its anchor named record {data.get('anchor_sequence')}",
        )
    check.report.records += 1
    check.report.last = ChainHead(sequence, record["record_hash"])
    state.expected = sequence + 1
    state.prev_parent = record["prev_hash"]
    state.prev_hash = record["record_hash"]
    state.prev = line
    return None


def _check_hash(
    line: _Line, record: dict[str, Any], ring: dict[str, ChainKey]
) -> tuple[Reason, str] | None:
    alg = record.get("hash_alg")
    if alg == "sha256":
        if ring:
            return "wrong_key", "record is not keyed but a key was given (downgraded chain?)"
        key = _PLAIN
    elif alg == "hmac-sha256":
        if not ring:
            return "wrong_key", "record is keyed (HMAC-SHA256) and no key was given"
        found = ring.get(str(record.get("key_id")))
        if found is None:
            return "wrong_key", f"no key given with key_id {record.get('key_id')!r}"
        key = found
    else:
        return "modified", f"unknown hash_alg {alg!r}"
    claimed: str = record["record_hash"]
    body = split_line(line.raw, claimed)
    if body is not None and hmac.compare_digest(key.digest(body), claimed):
        return None
    # The line may have been re-serialised (keys reordered, spaces) with its content intact.
    content = {name: value for name, value in record.items() if name != "record_hash"}
    if hmac.compare_digest(key.digest(canonical_json(content)), claimed):
        return None
    return "modified", "content does not match record_hash"


def _acknowledge_torn(state: _State, record: dict[str, Any]) -> ChainBreak | None:
    """Torn lines are a crash's, not an editor's, only if the next writer acknowledged them."""
    claimed = record.get("torn_tail") or []
    seen = [
        {"bytes": len(t.raw), "sha256": hashlib.sha256(t.raw).hexdigest()}
        for t in state.pending_torn
    ]
    if claimed == seen:
        return None
    if state.pending_torn:
        first = state.pending_torn[0]
        return _break("bad_json", first, "line is not JSON and no writer acknowledged it as torn")
    return ChainBreak(
        "deleted",
        state.prev.file if state.prev else "",
        state.prev.number + 1 if state.prev else 1,
        record["sequence"],
        "torn line(s) that the next record acknowledges are gone",
    )


def _classify(
    line: _Line, record: dict[str, Any], lines: Iterator[_Line], state: _State
) -> ChainBreak:
    """Name a link that does not fit, looking a few lines ahead."""
    expected, sequence = state.expected, record["sequence"]
    assert expected is not None
    if sequence == expected:
        # Right place, wrong link: the previous record was edited and its own hash recomputed.
        where = state.prev or line
        return _break(
            "modified", where, f"record {sequence} links to a different version of this record"
        )
    if sequence < expected and state.prev is not None and record["prev_hash"] == state.prev_parent:
        return _break("inserted", state.prev, f"a second record {sequence - 1} forks the chain")
    ahead = [item.record for item in islice(lines, LOOKAHEAD) if item.record is not None]
    resumes = any(r["sequence"] == expected and r["prev_hash"] == state.prev_hash for r in ahead)
    if resumes:
        if sequence > expected and any(
            r["sequence"] == sequence - 1 and r["record_hash"] == record["prev_hash"] for r in ahead
        ):
            return _break("reordered", line, f"record {sequence} comes before record {expected}")
        return _break("inserted", line, f"record {sequence} does not belong before {expected}")
    if sequence > expected:
        return _break(
            "deleted",
            line,
            f"record(s) {expected}..{sequence - 1} missing before record {sequence}",
        )
    return _break("inserted", line, f"record {sequence} repeats an earlier sequence")


def _check_end(
    state: _State, anchors: list[ChainHead], report: VerifyReport, files: list[Path]
) -> ChainBreak | None:
    last_sequence = 0 if report.last is None else report.last.sequence
    for anchor in anchors:
        if anchor.sequence > last_sequence:
            file = files[-1].name if files else ""
            line = state.prev.number + 1 if state.prev and state.prev.file == file else 1
            return ChainBreak(
                "truncated",
                file,
                line,
                last_sequence + 1,
                f"chain ends at record {last_sequence}; its anchor names record {anchor.sequence}",
            )
    return None


def _break(reason: Reason, line: _Line, detail: str) -> ChainBreak:
    sequence = None if line.record is None else line.record.get("sequence")
    return ChainBreak(reason, line.file, line.number, sequence, detail)


__all__ = ["LOOKAHEAD", "ChainBreak", "LineRef", "Reason", "VerifyReport", "verify"]
