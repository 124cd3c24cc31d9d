"""The audit-layer writer: an append-only, hash-chained JSONL sink (an immutable decision log).

Every record is one event (``event_to_dict``) plus the chain fields ``sequence``, ``prev_hash``,
``hash_alg``, ``key_id`` and ``record_hash`` (see :mod:`.hashing`). Writers share one chain per
directory, whatever process they are in: each append takes an ``flock`` on the directory's lock
file, re-reads the end of the chain (cheaply: a ``stat`` when nothing changed since its own last
write), appends the batch with one ``os.write`` per file on an ``O_APPEND`` descriptor, and
updates the truncation anchor ``audit-chain.head.json``.

Example::

    >>> from llm_audit_langchain.audit import AuditLogExporter, verify
    >>> log = AuditLogExporter("audit", key=b"secret")      # or $AUDIT_CHAIN_KEY; None: plain
    >>> log.export(events)                                  # from the pipeline's worker
    >>> verify("audit", key=b"secret").ok
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from ..errors import AuditError
from ..events import AuditEvent, AuditEventType, event_to_dict
from ..exporters.base import ExportResult
from .descriptors import close_fd, open_fd
from .hashing import GENESIS_HASH, ChainKey, record_line
from .layout import (
    LOCK_NAME,
    ChainHead,
    Tail,
    chain_file_name,
    chain_files,
    file_day,
    read_head,
    read_tail,
    utc_day,
    write_head,
)

logger = logging.getLogger(__name__)

GAP_ACTION = "audit_chain.gap"
"""``action`` of the record a writer appends when the chain is shorter than its anchor."""


class AuditChainError(AuditError):
    """The audit chain could not be appended to (I/O error, lock timeout, closed exporter)."""


@dataclass(frozen=True)
class _ChainEnd:
    """Where the next record goes: the newest file as this writer last saw it."""

    path: Path | None
    day: date | None
    size: int
    inode: int
    sequence: int  # of the last intact record; 0 for an empty chain
    record_hash: str
    torn: tuple[bytes, ...] = ()  # torn lines after the last intact record, to acknowledge
    unterminated: tuple[Path, ...] = ()  # files whose last byte is not a newline
    lost_anchor: ChainHead | None = None  # the anchor, when the chain is shorter than it


_LIVE: weakref.WeakSet[AuditLogExporter] = weakref.WeakSet()



def _reset_after_fork() -> None:
    for exporter in list(_LIVE):
        exporter._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


class AuditLogExporter:
    """Append-only, tamper-evident audit sink (compliance evidence, apart from the debug log).

    ``key`` (or ``$AUDIT_CHAIN_KEY``) selects the keyed HMAC-SHA256 chain; without one the chain
    is plain SHA-256. ``fsync=True`` syncs every batch to disk before ``export`` returns.
    ``lock_timeout`` bounds the wait for other writers. Several exporters, in one process or
    many, may share a directory: they append to one chain.
    """

    durable = True
    """Records are on disk once ``export`` and ``force_flush`` return: the pipeline releases a
    write-ahead tool call's wait only after that (see the handler's ``write_ahead_timeout_s``)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        fsync: bool = False,
        lock_timeout: float = 10.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ChainKey.resolve(key)
        self._fsync = fsync
        self._lock_timeout = lock_timeout
        self._mutex = threading.Lock()
        self._end: _ChainEnd | None = None
        self._partial_ids: set[str] = set()  # written by an export that then failed
        self._closed = False
        self._logged: set[str] = set()
        _LIVE.add(self)
        # Resume now (and surface a torn tail or a truncation early); under the lock, since
        # another process may be half-way through an append. On failure, the first export retries.
        with contextlib.suppress(OSError, AuditChainError), self._mutex, self._exclusive():
            self._end = self._find_end()

    @property
    def hash_alg(self) -> str:
        """``sha256`` or ``hmac-sha256``."""
        return self._key.alg

    @property
    def key_id(self) -> str | None:
        """Fingerprint of the key in use (never the key), or None in plain mode."""
        return self._key.key_id

    def head(self) -> ChainHead | None:
        """The last record this writer saw, to store outside the directory as an anchor."""
        end = self._end
        if end is None or end.sequence == 0:
            return None
        return ChainHead(end.sequence, end.record_hash)

    # -- exporter protocol -------------------------------------------------------------------

    def export(self, batch: Sequence[AuditEvent]) -> ExportResult:
        """Append ``batch`` to the chain; FAILURE (never an exception) when it could not."""
        try:
            self.append(batch)
        except Exception as exc:  # the pipeline retries; say why once per cause
            self._log_once(type(exc).__name__, "audit chain append failed: %r", exc)
            return ExportResult.FAILURE
        return ExportResult.SUCCESS

    def force_flush(self, timeout: float | None = None) -> bool:
        """Sync the newest chain file to disk (appends are already in the OS when exported)."""
        end = self._end
        if end is None or end.path is None:
            return True
        try:
            fd = os.open(end.path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            os.fsync(fd)
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and refuse later appends."""
        self.force_flush(timeout)
        self._closed = True

    # -- appending ---------------------------------------------------------------------------

    def append(self, events: Sequence[AuditEvent]) -> ChainHead | None:
        """Append ``events`` in order and return the new end of the chain.

        Raises :class:`AuditChainError` when nothing or only part of the batch was written; the
        chain on disk stays verifiable either way, and a retry of the same batch skips the
        events that did reach the file.
        """
        if self._closed:
            raise AuditChainError("the audit log exporter is shut down")
        with self._mutex:
            pending = [event for event in events if event.event_id not in self._partial_ids]
            if pending:
                self._append_locked(pending)
            self._partial_ids.clear()
        return self.head()

    def _append_locked(self, events: list[AuditEvent]) -> None:
        dicts = [event_to_dict(event) for event in events]
        days = [utc_day(event.timestamp) for event in events]
        with self._exclusive():
            try:
                end = self._find_end()
                self._end = self._write(end, dicts, days, [e.event_id for e in events])
            except OSError as exc:
                self._end = None  # re-read the tail next time, whatever happened on disk
                raise AuditChainError(f"could not append to the audit chain: {exc}") from exc
            except BaseException:
                self._end = None
                raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the directory's ``flock``, polling so a stuck writer cannot hang us forever."""
        fd = open_fd(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self._lock_timeout
            pause = 0.0005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise AuditChainError("timed out waiting for the chain lock") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)  # short: a long nap loses the race to the holder
            yield
        finally:
            close_fd(fd)  # closing the descriptor releases the lock

    def _find_end(self) -> _ChainEnd:
        """The end of the chain on disk; a ``stat`` when it is still where this writer left it."""
        files = chain_files(self.directory)
        if not files:  # a new chain, or every file was removed: the anchor would say which
            return _ChainEnd(
                None, None, 0, 0, 0, GENESIS_HASH, lost_anchor=self._lost_anchor(0, GENESIS_HASH)
            )
        newest = files[-1]
        stat = newest.stat()
        cached = self._end
        if (
            cached is not None
            and cached.path == newest
            and (cached.size, cached.inode) == (stat.st_size, stat.st_ino)
            and not cached.torn
            and not cached.unterminated
        ):
            return cached
        return self._scan_end(files, newest, stat.st_size, stat.st_ino)

    def _scan_end(self, files: list[Path], newest: Path, size: int, inode: int) -> _ChainEnd:
        """Walk back from the newest file to the last intact record, collecting torn lines."""
        torn: tuple[bytes, ...] = ()
        unterminated: list[Path] = []
        last: dict[str, Any] | None = None
        for path in reversed(files):
            tail: Tail = read_tail(path)
            torn = tail.torn + torn
            if not tail.ends_with_newline:
                unterminated.append(path)
            if tail.last is not None:
                last = tail.last
                break
        if torn:
            self._log_once("torn", "audit chain: %d torn line(s) after a crash", len(torn))
        sequence = 0 if last is None else int(last["sequence"])
        record_hash = GENESIS_HASH if last is None else str(last["record_hash"])
        return _ChainEnd(
            newest,
            file_day(newest.name),
            size,
            inode,
            sequence,
            record_hash,
            torn,
            tuple(reversed(unterminated)),
            self._lost_anchor(sequence, record_hash),
        )

    def _lost_anchor(self, sequence: int, record_hash: str) -> ChainHead | None:
        """The anchor, when the chain on disk is shorter than it (records were lost).

        The writer cannot restore lost records, but it must not paper over the loss by simply
        moving the anchor: it appends a gap record first, which verification reports as
        ``truncated``.
        """
        anchor = read_head(self.directory)
        if anchor is None:
            return None
        if anchor.sequence > sequence or (
            anchor.sequence == sequence and anchor.record_hash != record_hash
        ):
            self._log_once(
                "gap",
                "audit chain ends at %d but its anchor says %d: recording a gap",
                sequence,
                anchor.sequence,
            )
            return anchor
        return None

    # -- the write itself --------------------------------------------------------------------

    def _write(
        self, end: _ChainEnd, dicts: list[dict[str, Any]], days: list[date], ids: list[str]
    ) -> _ChainEnd:
        if end.lost_anchor is not None:
            dicts = [_gap_record(end.lost_anchor, end), *dicts]
            days = [days[0], *days]
            ids = ["", *ids]
        sequence, prev_hash = end.sequence, end.record_hash
        current_day = end.day
        groups: list[tuple[Path, list[bytes], list[str]]] = []
        for index, (record, day) in enumerate(zip(dicts, days, strict=True)):
            if current_day is None or day > current_day:
                current_day = day  # a late event never goes back to an older file
            path = self.directory / chain_file_name(current_day)
            sequence += 1
            record.update(
                sequence=sequence,
                prev_hash=prev_hash,
                hash_alg=self._key.alg,
                key_id=self._key.key_id,
            )
            if index == 0 and end.torn:
                record["torn_tail"] = [
                    {"bytes": len(line), "sha256": hashlib.sha256(line).hexdigest()}
                    for line in end.torn
                ]
            line, prev_hash = record_line(record, self._key)
            if not groups or groups[-1][0] != path:
                groups.append((path, [], []))
            groups[-1][1].append(line)
            groups[-1][2].append(ids[index])
        # End a torn line with a newline so the next record starts clean: in the same write as
        # the records when it is in the same file.
        terminators = {path: b"\n" for path in end.unterminated}
        for path in list(terminators):
            if all(group[0] != path for group in groups):
                self._append_bytes(path, terminators.pop(path))
        for path, lines, group_ids in groups:
            self._append_lines(path, terminators.pop(path, b""), lines, group_ids)
        last_path = groups[-1][0]
        stat = last_path.stat()
        write_head(self.directory, ChainHead(sequence, prev_hash), fsync=self._fsync)
        return _ChainEnd(last_path, current_day, stat.st_size, stat.st_ino, sequence, prev_hash)

    def _append_lines(self, path: Path, prefix: bytes, lines: list[bytes], ids: list[str]) -> None:
        """One ``os.write`` of whole lines; on a short or failed write, remember what landed."""
        written = 0
        try:
            written = self._append_bytes(path, prefix + b"".join(lines))
        except _PartialWriteError as partial:
            written = partial.written
            raise AuditChainError(f"short write to {path.name}") from partial.__cause__
        finally:
            done = len(prefix)
            for line, event_id in zip(lines, ids, strict=True):
                done += len(line)
                if done > written:
                    break
                if event_id:
                    self._partial_ids.add(event_id)

    def _append_bytes(self, path: Path, data: bytes) -> int:
        created = not path.exists()
        fd = open_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        written = 0
        try:
            while written < len(data):  # short only when the disk is full
                try:
                    count = os.write(fd, data[written:])
                except OSError as exc:
                    raise _PartialWriteError(written) from exc
                if count == 0:
                    raise _PartialWriteError(written)
                written += count
            if self._fsync:
                os.fsync(fd)
        finally:
            close_fd(fd)
        if created and self._fsync:
            _fsync_directory(self.directory)
        return written

    # -- housekeeping ------------------------------------------------------------------------

    def _after_fork(self) -> None:
        self._mutex = threading.Lock()
        self._end = None

    def _log_once(self, cause: str, message: str, *args: object) -> None:
        if cause not in self._logged:
            self._logged.add(cause)
            logger.warning(message, *args)


class _PartialWriteError(Exception):
    def __init__(self, written: int) -> None:
        super().__init__(f"{written} bytes written")
        self.written = written


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _gap_record(anchor: ChainHead, end: _ChainEnd) -> dict[str, Any]:
    """A record that says: the chain lost records after ``end``, up to the anchor."""
    event = AuditEvent(
        event_id=uuid4().hex,
        trace_id=uuid4().hex,
        span_id=uuid4().hex[:16],
        timestamp=datetime.now(UTC),
        event_type=AuditEventType.CUSTOM,
        agent="audit-chain",
        action=GAP_ACTION,
        status="error",
        data={
            "reason": "truncated",
            "anchor_sequence": anchor.sequence,
            "anchor_record_hash": anchor.record_hash,
            "resumed_after_sequence": end.sequence,
            "resumed_after_hash": end.record_hash,
        },
    )
    return event_to_dict(event)


__all__ = ["GAP_ACTION", "AuditChainError", "AuditLogExporter"]
