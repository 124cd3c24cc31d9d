"""Where the audit chain lives on disk, and how to read its ends without reading it all.

A chain directory holds:

- ``audit-chain-YYYY-MM-DD.jsonl``: the records, one file per UTC day, in chain order when the
  file names are sorted;
- ``audit-chain.lock``: the ``flock`` that serialises writers (processes and threads);
- ``audit-chain.head.json``: the truncation anchor, the last record's sequence and hash as the
  writers last saw it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

CHAIN_PREFIX = "audit-chain-"
CHAIN_SUFFIX = ".jsonl"
LOCK_NAME = "audit-chain.lock"
HEAD_NAME = "audit-chain.head.json"

_CHAIN_FILE = re.compile(r"^audit-chain-(\d{4}-\d{2}-\d{2})\.jsonl$")
_TAIL_BLOCK = 64 * 1024


def chain_file_name(day: date) -> str:
    """``audit-chain-YYYY-MM-DD.jsonl`` for ``day``."""
    return f"{CHAIN_PREFIX}{day.isoformat()}{CHAIN_SUFFIX}"


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of ``moment`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def file_day(name: str) -> date | None:
    """The day a chain file name stands for, or None when it is not a chain file."""
    match = _CHAIN_FILE.match(name)
    return None if match is None else date.fromisoformat(match.group(1))


def chain_files(directory: Path) -> list[Path]:
    """The chain's files in chain order (oldest day first)."""
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.is_file()]
    except FileNotFoundError:
        return []
    return [directory / name for name in sorted(names) if _CHAIN_FILE.match(name)]


@dataclass(frozen=True)
class ChainHead:
    """The end of a chain: its last record's sequence and hash (the truncation anchor)."""

    sequence: int
    record_hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as written to ``audit-chain.head.json``."""
        return {"sequence": self.sequence, "record_hash": self.record_hash}


def read_head(directory: str | os.PathLike[str]) -> ChainHead | None:
    """The anchor the writers keep in ``audit-chain.head.json``; None if absent or unreadable."""
    try:
        raw = json.loads((Path(directory) / HEAD_NAME).read_bytes())
        return ChainHead(int(raw["sequence"]), str(raw["record_hash"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_head(directory: Path, head: ChainHead, *, fsync: bool) -> None:
    """Atomically replace the anchor file (write a temporary file, then rename over it)."""
    tmp = directory / f".{HEAD_NAME}.{os.getpid()}.tmp"
    data = json.dumps(head.to_dict(), separators=(",", ":")).encode("ascii")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / HEAD_NAME)
    if fsync:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on ``line`` if it is a complete chain record, else None (torn or foreign)."""
    try:
        record = json.loads(line.decode("utf-8", "surrogatepass"))
    except ValueError:
        return None
    if (
        isinstance(record, dict)
        and isinstance(record.get("sequence"), int)
        and isinstance(record.get("record_hash"), str)
    ):
        return record
    return None


@dataclass(frozen=True)
class Tail:
    """What a writer needs from the end of a chain file.

    ``last`` is the last complete record (None if the file has none). ``torn`` are the raw lines
    after it (newline stripped), left by a crash mid-write. ``ends_with_newline`` says whether
    the file's last byte is a newline; ``size`` is the file size when read.
    """

    last: dict[str, Any] | None
    torn: tuple[bytes, ...]
    ends_with_newline: bool
    size: int


def read_tail(path: Path) -> Tail:
    """Read backwards from the end of ``path`` in 64 KiB steps until a complete record is found.

    Cost is proportional to the last record plus any torn bytes after it, not to the file.
    """
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return Tail(None, (), True, 0)
        buffer = b""
        position = size
        while True:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
            found = _last_record(buffer, at_file_start=position == 0)
            if found is not None or position == 0:
                break
    ends_with_newline = buffer.endswith(b"\n")
    if found is None:
        return Tail(None, _torn_lines(buffer), ends_with_newline, size)
    record, rest = found
    return Tail(record, _torn_lines(rest), ends_with_newline, size)


def _last_record(buffer: bytes, *, at_file_start: bool) -> tuple[dict[str, Any], bytes] | None:
    """The last complete record in ``buffer`` and the bytes after its line."""
    end = len(buffer)
    while end > 0:
        start = buffer.rfind(b"\n", 0, end - 1 if buffer[end - 1 : end] == b"\n" else end) + 1
        if start == 0 and not at_file_start:
            return None  # the line may begin before this buffer: read further back
        line = buffer[start:end].rstrip(b"\n")
        record = parse_record(line) if line else None
        if record is not None:
            return record, buffer[end:]
        end = start
    return None


def _torn_lines(rest: bytes) -> tuple[bytes, ...]:
    return tuple(line for line in rest.split(b"\n") if line)
