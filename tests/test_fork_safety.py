"""A child forked at any moment neither hangs nor holds anything its parent needs: real
``os.fork()`` during audit-chain appends, and with every lock of the package held at fork time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import fast_config
from langchain_core.runnables import RunnableLambda
from test_exporters import make_event

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter
from llm_audit_langchain.audit import AuditLogExporter, verify
from llm_audit_langchain.context import _malformed
from llm_audit_langchain.enrich import pricing, tokens
from llm_audit_langchain.privacy import sanitizer as sanitizer_module
from llm_audit_langchain.privacy.sanitizer import Sanitizer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait(pid: int, timeout: float) -> int:
    """The child's exit code; a child still alive after ``timeout`` is killed (code -9)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


def _in_child(body: Callable[[], bool], timeout: float = 20) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = 0 if body() else 1
        finally:
            os._exit(code)
    return _wait(pid, timeout)


def test_forks_during_chain_appends_never_hold_the_chain_lock(tmp_path: Path) -> None:
    chain = AuditLogExporter(tmp_path, lock_timeout=2.0)
    failures: list[BaseException] = []
    stop = threading.Event()
    appended = 0

    def append_forever() -> None:
        nonlocal appended
        while not stop.is_set():
            try:
                chain.append([make_event(appended)])
                appended += 1
            except Exception as exc:
                failures.append(exc)

    def child() -> bool:  # appends itself, then lives on for a while (as a worker would)
        chain.append([make_event(-1)])
        time.sleep(0.3)
        return True

    writer = threading.Thread(target=append_forever)
    writer.start()
    try:
        codes = []
        for _ in range(20):
            time.sleep(0.005)
            codes.append(_in_child(child))
    finally:
        stop.set()
        writer.join(10)
    assert codes == [0] * 20  # every child could append (no inherited lock held against it)
    assert failures == []  # and the parent never waited out a child
    assert appended > 0
    report = verify(tmp_path)
    assert report.ok and report.records == appended + 20


def _locks_of(handler: AuditCallbackHandler, sanitizer: Sanitizer) -> dict[str, threading.Lock]:
    return {
        "handler counts": handler._counts_lock,
        "sanitizer": sanitizer._lock,
        "default sanitizer": sanitizer_module._default._lock,
        "cost roll-up": handler.costs._lock,
        "price book": pricing._book._lock,
        "tiktoken encodings": tokens._encodings_lock,
        "malformed traceparent counter": _malformed._lock,
    }


def test_a_child_forked_while_every_lock_is_held_can_still_take_them_and_run() -> None:
    memory = MemoryExporter()
    handler = AuditCallbackHandler([memory], config=fast_config())
    sanitizer = Sanitizer()
    held = _locks_of(handler, sanitizer)
    for lock in held.values():
        lock.acquire()

    def can_take(lock: threading.Lock) -> bool:
        if not lock.acquire(timeout=1):
            return False
        lock.release()
        return True

    def child() -> bool:
        names = _locks_of(handler, sanitizer)
        free = [name for name, lock in names.items() if can_take(lock)]
        RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [handler]})
        sanitizer("ana@example.com")
        return free == list(names)

    try:
        code = _in_child(child)
    finally:
        for lock in held.values():
            lock.release()
        handler.shutdown(5)
    assert code == 0
