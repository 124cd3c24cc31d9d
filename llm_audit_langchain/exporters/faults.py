"""An append-only line file that survives faults: :class:`AppendFile`, used by the JSONL sink.

- **Torn tail** (a crash mid-write): when the file is opened, a last line without its newline is
  moved to ``<file>.torn`` and cut off, so the next record does not get glued to it.
- **Full disk** (a write cut short, then ``ENOSPC``): the bytes that did land are taken back
  (``ftruncate``), so a batch is in the file whole or not at all and a retry never duplicates.
- **Deleted or rotated file** (or its whole directory): :meth:`AppendFile.still_at` notices, with
  one ``stat`` per batch, that the path no longer names the open file.

Repairs and take-backs hold an ``flock`` on the file, as do writes, so a writer in another
process is never cut short by them. The lock is advisory and waited for a bounded time only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("llm_audit_langchain")

_LOCK_WAIT_S = 2.0
_CHUNK = 65_536


class AppendFile:
    """One open ``O_APPEND`` file and its inode (to notice it was replaced)."""

    def __init__(self, path: Path, fd: int, inode: int) -> None:
        self.path = path
        self.fd = fd
        self.inode = inode

    @classmethod
    def open(cls, path: Path) -> AppendFile:
        """Open (or create) ``path`` for appending; repair a torn last line first."""
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            with _locked(fd):
                _repair_torn_tail(fd, path)
            return cls(path, fd, os.fstat(fd).st_ino)
        except BaseException:
            os.close(fd)
            raise

    def still_at(self, path: Path) -> bool:
        """Whether ``path`` still names this file (not deleted, not rotated away)."""
        try:
            return os.stat(path).st_ino == self.inode
        except OSError:
            return False

    def append_whole(self, payload: bytes, *, fsync: bool = False) -> None:
        """Append ``payload`` entirely, or raise ``OSError`` with none of it left in the file."""
        with _locked(self.fd):
            written = 0
            view = memoryview(payload)
            try:
                while written < len(payload):
                    count = os.write(self.fd, view[written:])
                    if count == 0:
                        raise OSError(errno.ENOSPC, "no bytes written")
                    written += count
            except OSError:
                if written:
                    self._take_back(written)
                raise
            if fsync:
                os.fsync(self.fd)

    def _take_back(self, written: int) -> None:
        """Remove the ``written`` bytes of a failed append from the end of the file."""
        end = os.lseek(self.fd, 0, os.SEEK_CUR)  # O_APPEND: just after our bytes
        size = os.fstat(self.fd).st_size
        if size != end:  # someone else appended after us without the lock: leave it readable
            logger.warning("JsonlExporter: %s: a failed write could not be taken back", self.path)
            return
        os.ftruncate(self.fd, end - written)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``fd`` if one comes within a short wait; go on without
    it otherwise (it only protects repairs, and a stuck holder must not stop the sink)."""
    deadline = time.monotonic() + _LOCK_WAIT_S
    locked = False
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.005)
        except OSError:
            break  # a file system without flock
    try:
        yield
    finally:
        if locked:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)


def _repair_torn_tail(fd: int, path: Path) -> None:
    """Move a last line without its newline to ``<path>.torn`` and cut it off."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = _line_start(fd, size)
    fragment = os.pread(fd, size - start, start)
    aside = path.with_name(path.name + ".torn")
    aside_fd = os.open(aside, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(aside_fd, fragment + b"\n")
    finally:
        os.close(aside_fd)
    os.ftruncate(fd, start)
    logger.warning("JsonlExporter: %s ended with a torn line (%d bytes, from a crash); "
                   "moved to %s", path.name, len(fragment), aside.name)


def _line_start(fd: int, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0
