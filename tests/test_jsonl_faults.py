"""JsonlExporter after faults: a lone surrogate, a torn last line left by a crash, a full disk
(a short write, then errors), a log directory deleted while the file is open. After each one,
every line on disk is valid JSON and every event is there exactly once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from conftest import fast_config
from langchain_core.runnables import RunnableLambda
from test_exporters import make_event, read_records

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter


def _lines(directory: Path) -> list[str]:
    return [line for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


# ---- any string encodes ----------------------------------------------------------------------


def test_a_lone_surrogate_is_escaped_and_does_not_stop_the_sink(tmp_path: Path) -> None:
    exporter = JsonlExporter(tmp_path)
    broken = b"caf\xe9 ol\xff".decode("utf-8", "surrogateescape")  # '\udce9', '\udcff'
    exporter.export([make_event(1, data={"name": broken}, action=broken), make_event(2)])
    exporter.export([make_event(3)])
    records = read_records(tmp_path)
    assert [r["data"]["seq"] for r in records] == [1, 2, 3]
    assert records[0]["data"]["name"] == broken  # escaped as \udce9, read back the same
    assert exporter.unserializable == 1


def test_surrogates_through_the_handler_are_all_exported(tmp_path: Path) -> None:
    handler = AuditCallbackHandler([JsonlExporter(tmp_path)], config=fast_config())
    echo = RunnableLambda(lambda text: text)
    try:
        for i in range(20):
            text = f"row {i} " + bytes([0x80 + i]).decode("utf-8", "surrogateescape")
            echo.invoke(text, config={"callbacks": [handler]})
        assert handler.flush(10)
        stats = handler.stats()
    finally:
        handler.shutdown(5)
    assert stats["exported"] == stats["enqueued"] > 0 and stats["pending"] == 0
    assert len(read_records(tmp_path)) == stats["exported"]


# ---- a torn tail after a crash ---------------------------------------------------------------


def test_a_torn_last_line_is_repaired_on_open_and_kept_aside(tmp_path: Path) -> None:
    first = make_event(1)
    path = JsonlExporter(tmp_path).path_for(first.timestamp)
    whole = json.dumps(first.model_dump(mode="json")) + "\n"
    torn = '{"event_version":"3.0","event_id":"abc'
    path.write_text(whole + torn)
    exporter = JsonlExporter(tmp_path)
    exporter.export([make_event(2)])
    exporter.shutdown()
    records = read_records(tmp_path)  # every line parses
    assert [r["data"]["seq"] for r in records] == [1, 2]
    (aside,) = tmp_path.glob("*.torn")
    assert aside.read_text() == torn + "\n"  # the fragment is not lost, and not in the log


# ---- the directory deleted under an open file ------------------------------------------------


def test_writes_after_the_directory_is_deleted_land_in_a_new_file(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    exporter = JsonlExporter(directory)
    exporter.export([make_event(1)])
    shutil.rmtree(directory)
    exporter.export([make_event(2)])
    exporter.export([make_event(3)])
    assert [r["data"]["seq"] for r in read_records(directory)] == [2, 3]


def test_a_file_removed_by_rotation_is_reopened(tmp_path: Path) -> None:
    exporter = JsonlExporter(tmp_path)
    exporter.export([make_event(1)])
    (path,) = tmp_path.glob("*.jsonl")
    path.rename(tmp_path / "rotated.old")
    exporter.export([make_event(2)])
    assert [r["data"]["seq"] for r in read_records(tmp_path)] == [2]


# ---- disk full: all or nothing per batch, never a duplicate ----------------------------------

# A child process whose file-size limit plays a full disk: writes past the limit are cut short,
# then fail with EFBIG, the way ENOSPC behaves. The pipeline retries; then the disk "frees up".
_DISK_FULL_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from langchain_core.runnables import RunnableLambda
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter

    directory, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG), don't kill us
    handler = AuditCallbackHandler(
        [JsonlExporter(directory)],
        config=AuditConfig(flush_interval_ms=5, debug=True, batch_size=7,
                           retry_initial_backoff_s=0.01, retry_max_backoff_s=0.05))
    echo = RunnableLambda(lambda text: text)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    for i in range(60):
        echo.invoke("payload %03d " % i + "x" * 300, config={"callbacks": [handler]})
    handler.flush(1.0)  # cannot finish: the disk is full
    failed_while_full = handler.stats()["failed"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    done = handler.flush(20)
    stats = handler.stats()
    handler.shutdown(5)
    print(json.dumps({"done": done, "failed_while_full": failed_while_full, "stats": stats}))
""")


def test_a_full_disk_writes_whole_batches_and_retries_never_duplicate(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    result = subprocess.run([sys.executable, "-c", _DISK_FULL_CHILD, str(directory), "9000"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    stats = report["stats"]
    assert report["done"] and report["failed_while_full"] > 0
    # The exact account: everything enqueued was exported, nothing dropped or pending.
    assert stats["exported"] == stats["enqueued"] == 60 and stats["pending"] == 0
    assert stats["dropped"] == {}
    records = read_records(directory)  # every line is valid JSON (no torn line mid-file)
    ids = Counter(r["event_id"] for r in records)
    assert len(records) == 60 and max(ids.values()) == 1  # each event once
