"""``flush(timeout)``, ``shutdown(timeout)`` and interpreter exit never wait past their timeout,
whatever an exporter does; OpenTelemetry's retry messages are logged once, not repeated.

No timing assertions: a call that would hang is run on a helper thread and must have returned
when a generous join gives up; a process that would hang must have exited."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import react_agent
from langchain_core.messages import AIMessage

from llm_audit_langchain import AuditCallbackHandler, AuditEvent, MemoryExporter
from llm_audit_langchain.pipeline.worker import Pipeline

_GENEROUS_S = 60.0


class Stuck:
    """An exporter that exports at once but whose ``force_flush`` or ``shutdown`` never returns
    until released (a blocking socket that ignores its timeout)."""

    def __init__(self, stuck_in: str) -> None:
        self.stuck_in = stuck_in
        self.release = threading.Event()

    def export(self, batch: Sequence[AuditEvent]) -> None:
        return None

    def force_flush(self, timeout: float | None = None) -> bool:
        if self.stuck_in == "force_flush":
            self.release.wait()
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        if self.stuck_in == "shutdown":
            self.release.wait()


@pytest.fixture
def stuck() -> Iterator[list[Stuck]]:
    made: list[Stuck] = []
    yield made
    for exporter in made:
        exporter.release.set()


def _returns(call: Any, *args: Any) -> list[Any]:
    """Run ``call`` on a helper thread; what it returned (empty if it is still running)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call(*args)), daemon=True)
    thread.start()
    thread.join(_GENEROUS_S)
    return result


def test_flush_returns_false_when_an_exporter_flush_never_returns(stuck: list[Stuck]) -> None:
    exporter = Stuck("force_flush")
    stuck.append(exporter)
    handler = AuditCallbackHandler([exporter], config=fast_config())
    react_agent(responder=lambda _: AIMessage("hi")).invoke(
        {"messages": [("user", "hi")]}, config={"callbacks": [handler]})
    assert _returns(handler.flush, 0.2) == [False]
    assert _returns(handler.shutdown, 0.2) == [False]


def test_repeated_flushes_leave_one_thread_on_a_stuck_exporter(stuck: list[Stuck]) -> None:
    """Each flush that overruns leaves its call running on a helper thread; a caller flushing
    every request must not pile up one more such thread per call."""
    exporter = Stuck("force_flush")
    stuck.append(exporter)
    handler = AuditCallbackHandler([exporter], config=fast_config())
    react_agent(responder=lambda _: AIMessage("hi")).invoke(
        {"messages": [("user", "hi")]}, config={"callbacks": [handler]})

    def helpers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "llm-audit-exporter-call"}

    before = helpers()  # an earlier test's stuck call may still be ending: not ours
    for _ in range(20):
        assert _returns(handler.flush, 0.05) == [False]
    assert len(helpers() - before) == 1
    exporter.release.set()  # the stuck call returns: flushing works again
    for thread in threading.enumerate():
        if thread.name == "llm-audit-exporter-call":
            thread.join(_GENEROUS_S)
    assert _returns(handler.flush, 5) == [True]
    handler.shutdown(5)


def test_a_flush_after_one_that_overran_waits_for_it_within_its_own_timeout() -> None:
    """A slow ``force_flush`` overruns a short flush; the next flush, given time, waits for
    that call to return rather than failing at once (or starting a second one beside it)."""
    class Slow(MemoryExporter):
        def force_flush(self, timeout: float | None = None) -> bool:
            time.sleep(0.3)
            return True

    pipeline = Pipeline([Slow()], flush_interval_s=0.02)
    pipeline.enqueue(AuditEvent(event_id="e" * 32, trace_id="a" * 32, span_id="b" * 16,
                                timestamp=datetime.now(UTC), event_type="custom",
                                agent="a", action="b"))
    assert pipeline.flush(timeout=0.1) is False
    assert pipeline.flush(timeout=5) is True
    pipeline.shutdown(5)


def test_shutdown_returns_when_an_exporter_shutdown_never_returns(stuck: list[Stuck]) -> None:
    exporter = Stuck("shutdown")
    stuck.append(exporter)
    handler = AuditCallbackHandler([exporter], config=fast_config())  # no event: no worker yet
    assert len(_returns(handler.shutdown, 0.2)) == 1


_EXIT_SCRIPT = """
import sys, threading
sys.path.insert(0, {tests!r})
from langchain_core.messages import AIMessage
from graphs import react_agent
from llm_audit_langchain import AuditCallbackHandler, AuditConfig

class Stuck:
    def export(self, batch):
        threading.Event().wait()
    def force_flush(self, timeout=None):
        threading.Event().wait()
    def shutdown(self, timeout=None):
        threading.Event().wait()

handler = AuditCallbackHandler([Stuck()], config=AuditConfig(debug=True, shutdown_timeout_s=0.5))
if {run}:
    react_agent(responder=lambda _: AIMessage("hi")).invoke(
        {{"messages": [("user", "hi")]}}, config={{"callbacks": [handler]}})
print("done")
"""


@pytest.mark.parametrize("run", [True, False])
def test_the_process_exits_whatever_the_exporter_does(tmp_path: Path, run: bool) -> None:
    script = _EXIT_SCRIPT.format(tests=str(Path(__file__).parent), run=run)
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=_GENEROUS_S * 3)
    assert done.returncode == 0 and done.stdout.strip() == "done"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens


def test_a_collector_that_is_down_is_reported_once_and_exit_is_not_held(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from langchain_core.messages import AIMessage
        from graphs import react_agent
        from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter
        from llm_audit_langchain.otel import OtlpExporter

        otlp = OtlpExporter(endpoint="http://127.0.0.1:{_closed_port()}/v1/traces", timeout=4)
        handler = AuditCallbackHandler(
            [JsonlExporter("logs"), otlp],
            config=AuditConfig(debug=True, shutdown_timeout_s=2, flush_interval_ms=20))
        react_agent(responder=lambda _: AIMessage("hi")).invoke(
            {{"messages": [("user", "hi")]}}, config={{"callbacks": [handler]}})
        handler.flush(timeout=6)
        print(otlp.library_messages)
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=_GENEROUS_S * 3)
    assert done.returncode == 0, done.stderr
    retry_lines = [line for line in done.stderr.splitlines() if "retrying" in line]
    assert len(retry_lines) == 1, done.stderr
    assert "counted" in retry_lines[0]
    assert int(done.stdout.strip()) >= 1  # the later retries were counted, not logged
    assert list((tmp_path / "logs").glob("audit-*.jsonl"))  # the other sink was not held up
