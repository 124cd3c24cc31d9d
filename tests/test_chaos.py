"""Chaos: the host is never changed and the log is never corrupted, whatever happens around it.

Each test says exactly what may be lost and checks that the counters say so:
``enqueued == exported + dropped + pending``, with every exported event on disk once.

- a writer killed with SIGKILL mid-run, again and again, then restarted;
- the log directory deleted, or made read-only, while the handler writes;
- exit with several handlers whose queues are full;
- load from many threads and from asyncio at once;
- forks while graphs run and write;
- garbage into every callback (hypothesis), with secrets seeded in the names.

Disk full, torn tails and surrogates: ``test_jsonl_faults.py``; forks during chain appends and
locks held at fork time: ``test_fork_safety.py``; secrets in names: ``test_secrets_in_names.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from conftest import fast_config
from graphs import react_agent, weather_responder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda
from test_exporters import read_records

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter, MemoryExporter
from llm_audit_langchain.audit import verify


def _accounted(stats: dict[str, Any]) -> bool:
    dropped = sum(stats["dropped"].values())
    return bool(stats["enqueued"] == stats["exported"] + dropped + stats["pending"])


# ---- kill -9 mid-run, then restart ------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys, time
    from langchain_core.runnables import RunnableLambda
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter
    from llm_audit_langchain.audit import AuditLogExporter

    log_dir, chain_dir, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    handler = AuditCallbackHandler(
        [JsonlExporter(log_dir), AuditLogExporter(chain_dir)],
        config=AuditConfig(debug=True, flush_interval_ms=1, batch_size=16))
    echo = RunnableLambda(lambda text: text)
    print("ready", flush=True)
    for i in range(runs):
        echo.invoke("run %d " % i + "x" * 2000, config={"callbacks": [handler]})
    handler.flush(30)
    stats = handler.stats()
    handler.shutdown(10)
    print("done", stats["exported"], stats["enqueued"], flush=True)
""")


def test_sigkill_mid_run_leaves_every_line_valid_and_the_chain_verified(tmp_path: Path) -> None:
    log_dir, chain_dir = tmp_path / "jsonl", tmp_path / "chain"
    rng = random.Random(12)
    kills = 6
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(log_dir), str(chain_dir),
                                  "1000000"], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    # A clean run after the crashes: all of its events must be there, after the survivors.
    before = len(read_records(log_dir)) if log_dir.exists() else 0
    done = subprocess.run([sys.executable, "-c", _WRITER, str(log_dir), str(chain_dir), "50"],
                          capture_output=True, text=True, timeout=120, check=True)
    _, exported, enqueued = done.stdout.split()[-3:]
    assert exported == enqueued == "50"
    records = read_records(log_dir)  # every line parses
    assert len(records) == before + 50
    assert max(Counter(r["event_id"] for r in records).values()) == 1
    torn = sum(len(p.read_text().splitlines()) for p in log_dir.glob("*.torn"))
    assert torn <= kills  # at most one torn line per kill, kept aside
    report = verify(chain_dir)
    assert report.ok, report


# ---- the directory deleted while the handler writes -------------------------------------------


def test_deleting_the_log_directory_mid_run_loses_only_what_was_deleted(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    handler = AuditCallbackHandler([JsonlExporter(log_dir)], config=fast_config())
    echo = RunnableLambda(lambda x: x)
    try:
        for i in range(30):
            echo.invoke(i, config={"callbacks": [handler]})
        assert handler.flush(10)
        shutil.rmtree(log_dir)
        for i in range(30, 70):
            echo.invoke(i, config={"callbacks": [handler]})
        assert handler.flush(10)
        stats = handler.stats()
    finally:
        handler.shutdown(5)
    assert stats["exported"] == stats["enqueued"] == 70 and _accounted(stats)
    kept = sorted(r["data"]["outputs"] for r in read_records(log_dir))
    assert kept == list(range(30, 70))  # everything written after the deletion is on disk


# ---- a read-only directory mid-run ------------------------------------------------------------


class _ReadOnlySwitch:
    """Makes a directory refuse new files and lets it accept them again: its mode bits, or, as
    root (whom mode bits do not stop), the immutable attribute (``chattr +i``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir()
        self.as_root = os.geteuid() == 0

    def read_only(self, on: bool) -> None:
        if not self.as_root:
            self.directory.chmod(0o555 if on else 0o755)
            return
        done = subprocess.run(["chattr", "+i" if on else "-i", str(self.directory)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a directory read-only as root here: {done.stderr!r}")


def test_a_read_only_directory_mid_run_delays_but_loses_nothing(tmp_path: Path) -> None:
    switch = _ReadOnlySwitch(tmp_path / "logs")
    handler = AuditCallbackHandler([JsonlExporter(switch.directory)],
                                   config=fast_config(retry_initial_backoff_s=0.01,
                                                      retry_max_backoff_s=0.05))
    echo = RunnableLambda(lambda x: x)
    try:
        for i in range(20):
            echo.invoke(i, config={"callbacks": [handler]})
        assert handler.flush(10)
        for path in switch.directory.glob("*.jsonl"):  # rotated away: a new file is needed
            path.rename(tmp_path / path.name)
        switch.read_only(True)
        try:
            for i in range(20, 50):
                echo.invoke(i, config={"callbacks": [handler]})
            assert not handler.flush(0.5)  # cannot be written while read-only
            failed = handler.stats()["failed"]
        finally:
            switch.read_only(False)
        assert handler.flush(10)
        stats = handler.stats()
    finally:
        handler.shutdown(5)
        switch.read_only(False)
    assert failed > 0
    assert stats["exported"] == stats["enqueued"] == 50 and stats["dropped"] == {}
    written = sorted(r["data"]["outputs"] for r in read_records(switch.directory))
    assert written == list(range(20, 50))


# ---- exit with full queues and several handlers -----------------------------------------------

_EXITING = textwrap.dedent("""
    import atexit, json, sys

    handlers = []

    def report():  # registered first: runs after the package's own exit flush
        print(json.dumps([h.stats() for h in handlers]), flush=True)

    atexit.register(report)

    from langchain_core.runnables import RunnableLambda
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter

    base = sys.argv[1]
    for n in range(3):
        handlers.append(AuditCallbackHandler(
            [JsonlExporter(f"{base}/h{n}")],
            config=AuditConfig(debug=True, queue_size=200, shutdown_timeout_s=5)))
    echo = RunnableLambda(lambda x: x)
    for i in range(600):
        echo.invoke(i, config={"callbacks": handlers})
    # no flush, no shutdown: the process just ends
""")


def test_exit_with_full_queues_and_several_handlers_accounts_for_every_event(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _EXITING, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=True)
    all_stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(all_stats) == 3
    for n, stats in enumerate(all_stats):
        assert stats["enqueued"] == 600 and _accounted(stats), stats
        assert stats["pending"] == 0
        on_disk = read_records(tmp_path / f"h{n}")
        assert len(on_disk) == stats["exported"]  # what was counted exported is on disk, once
        assert len({r["event_id"] for r in on_disk}) == len(on_disk)
        # what was dropped is counted as dropped from the full queue, nothing else
        assert set(stats["dropped"]) <= {"queue_full"}, stats["dropped"]


# ---- load from threads and asyncio at once ----------------------------------------------------


def test_threads_and_asyncio_at_once_lose_nothing_and_never_mix_traces() -> None:
    memory = MemoryExporter()
    handler = AuditCallbackHandler([memory], config=fast_config(queue_size=100_000))
    graph = react_agent(responder=weather_responder)
    cities = [f"City{i}" for i in range(200)]

    def ask(city: str) -> dict[str, Any]:
        return {"messages": [HumanMessage(f"weather in {city}?")]}

    def threaded(chunk: list[str]) -> None:
        for city in chunk:
            graph.invoke(ask(city), config={"callbacks": [handler]})

    async def concurrent(chunk: list[str]) -> None:
        await asyncio.gather(*(graph.ainvoke(ask(city), config={"callbacks": [handler]})
                               for city in chunk))

    threads = [threading.Thread(target=threaded, args=(cities[i:100:8],)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        asyncio.run(concurrent(cities[100:]))
        for thread in threads:
            thread.join(120)
        assert handler.flush(60)
        stats = handler.stats()
    finally:
        handler.shutdown(10)
    assert stats["exported"] == stats["enqueued"] and stats["dropped"] == {}
    assert stats["internal_errors"] == 0
    roots = [e for e in memory.events if e.data.get("run_root")]
    assert len(roots) == 200
    by_trace: dict[str, set[str]] = {}
    for event in memory.events:
        found = set(re.findall(r"\bCity[0-9]+\b", json.dumps(event.data, default=str)))
        by_trace.setdefault(event.trace_id, set()).update(found)
    assert len(by_trace) == 200
    assert all(len(found) == 1 for found in by_trace.values())  # no cross-talk between runs
    per_trace = Counter(e.trace_id for e in memory.events)
    assert len(set(per_trace.values())) == 1  # every run produced the same events


# ---- forks while runs are being recorded -------------------------------------------------------


def _one_run(handler: AuditCallbackHandler, text: str) -> None:
    """A root run through the callbacks alone (no LangChain executor whose own threads a fork
    would leave behind: what is tested here is our handler, pipeline and sink)."""
    run_id = uuid4()
    handler.on_chain_start({"name": "step"}, {"text": text}, run_id=run_id, name="step")
    handler.on_chain_end({"text": text}, run_id=run_id)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forks_while_runs_are_recorded_leave_parent_and_children_whole(tmp_path: Path) -> None:
    handler = AuditCallbackHandler([JsonlExporter(tmp_path)], config=fast_config())
    stop = threading.Event()
    runs = 0

    def run_forever() -> None:
        nonlocal runs
        while not stop.is_set():
            _one_run(handler, "parent")
            runs += 1

    worker = threading.Thread(target=run_forever)
    worker.start()
    codes = []
    try:
        for _ in range(20):
            time.sleep(0.02)
            pid = os.fork()
            if pid == 0:  # the child records with the inherited handler, flushes, leaves
                code = 1
                try:
                    for _ in range(5):
                        _one_run(handler, "child")
                    code = 0 if handler.flush(20) else 2
                finally:
                    os._exit(code)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    finally:
        stop.set()
        worker.join(60)
    try:
        assert handler.flush(20)
        stats = handler.stats()
    finally:
        handler.shutdown(10)
    assert codes == [0] * 20
    # The parent's account: every run enqueued; what a full queue dropped is counted as such.
    assert stats["enqueued"] == runs and _accounted(stats) and stats["pending"] == 0
    assert set(stats["dropped"]) <= {"queue_full"}
    records = read_records(tmp_path)  # parent and children wrote whole lines only
    assert len({r["event_id"] for r in records}) == len(records)
    texts = Counter(r["data"]["outputs"]["text"] for r in records)
    assert texts == {"parent": stats["exported"], "child": 100}


# ---- garbage into every callback --------------------------------------------------------------

SECRET_NAME = "notify_x_AKIAQX3J7ZT5MBW2NR4K"


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.text(max_size=8) | st.integers()
    return st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)


_garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.binary(max_size=20) | st.just(SECRET_NAME) | st.just(float("nan")),
    _containers, max_leaves=12,
)
_CALLBACKS = ("on_chain_start", "on_chain_end", "on_chain_error", "on_llm_start",
              "on_chat_model_start", "on_llm_end", "on_llm_error", "on_llm_new_token",
              "on_tool_start", "on_tool_end", "on_tool_error", "on_retriever_start",
              "on_retriever_end", "on_retriever_error", "on_retry", "on_custom_event")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(st.tuples(st.sampled_from(_CALLBACKS), _garbage, _garbage,
                                st.sampled_from(["new", "same", "none"])), max_size=12))
def test_garbage_into_every_callback_never_raises_and_stays_accounted(
        calls: list[tuple[str, Any, Any, str]]) -> None:
    memory = MemoryExporter()
    handler = AuditCallbackHandler([memory], config=fast_config())
    run_id = uuid4()
    try:
        for name, first, second, which in calls:
            rid = {"new": uuid4(), "same": run_id, "none": None}[which]
            kwargs: dict[str, Any] = {"run_id": rid, "parent_run_id": None,
                                      "name": SECRET_NAME, "metadata": second}
            getattr(handler, name)(first, second, **kwargs) if name in (
                "on_chain_start", "on_llm_start", "on_chat_model_start", "on_tool_start",
                "on_retriever_start", "on_custom_event") else getattr(handler, name)(
                first, **kwargs)
        assert handler.flush(10)
        stats = handler.stats()
    finally:
        handler.shutdown(5)
    assert _accounted(stats) and stats["pending"] == 0
    text = json.dumps([e.model_dump(mode="json") for e in memory.events])
    assert "AKIAQX3J7ZT5MBW2NR4K" not in text
