"""Descriptors the audit chain holds open during an append, closed in a forked child.

A forked child gets copies of every open descriptor, and an ``flock`` belongs to the open file,
not to a process: a child that kept the copy of the chain's lock file would hold the chain's lock
for as long as it lives, and its parent's appends would time out. The child closes them at once.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

# ``_FDS_GUARD`` makes "open + remember" and "forget + close" atomic
# with respect to fork, so the child closes exactly the descriptors that were ours.
_OPEN_FDS: set[int] = set()
_FDS_GUARD = threading.Lock()


def open_fd(path: Path, flags: int, mode: int) -> int:
    """``os.open``, remembered until :func:`close_fd` (and closed in a forked child)."""
    with _FDS_GUARD:
        fd = os.open(path, flags, mode)
        _OPEN_FDS.add(fd)
    return fd


def close_fd(fd: int) -> None:
    """``os.close`` a descriptor from :func:`open_fd`."""
    with _FDS_GUARD:
        _OPEN_FDS.discard(fd)
        os.close(fd)


def _close_inherited_fds() -> None:
    global _FDS_GUARD  # noqa: PLW0603 - the parent's may have been held at fork time
    _FDS_GUARD = threading.Lock()
    for fd in _OPEN_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)  # never flock(LOCK_UN): that would release the parent's lock too
    _OPEN_FDS.clear()


def _before_fork() -> None:
    _FDS_GUARD.acquire()


def _release_guard() -> None:
    _FDS_GUARD.release()


os.register_at_fork(before=_before_fork, after_in_parent=_release_guard,
                    after_in_child=_close_inherited_fds)
