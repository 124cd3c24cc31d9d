"""The built-in exporters (JSONL, stdout) and ``exporters_from_config``.

JSONL is what users read with ``jq`` and load into DuckDB, so every line is checked with a strict
JSON parser (no NaN or Infinity), with ``jq`` when it is installed, and line counts are exact.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from llm_audit_langchain import AuditConfig, ConfigError
from llm_audit_langchain.events import AuditEvent, AuditEventType, ErrorDetail
from llm_audit_langchain.exporters import (
    Exporter,
    JsonlExporter,
    MemoryExporter,
    StdoutExporter,
)
from llm_audit_langchain.exporters import jsonl as jsonl_module
from llm_audit_langchain.exporters.factory import exporters_from_config
from llm_audit_langchain.pipeline.worker import Pipeline

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PAYLOAD = "x" * 8192  # big enough that one batch is one large write


def make_event(seq: int = 0, *, agent: str = "a", action: str = "b",
               timestamp: datetime | None = None, data: dict[str, Any] | None = None,
               **fields: Any) -> AuditEvent:
    payload: dict[str, Any] = {"seq": seq}
    payload.update(data or {})
    return AuditEvent(
        event_id=uuid4().hex, trace_id=TRACE_ID, span_id=uuid4().hex[:16],
        timestamp=timestamp or datetime.now(UTC), event_type=AuditEventType.CHAIN_END,
        agent=agent, action=action, data=payload, **fields,
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(line: str) -> dict[str, Any]:
    """Parse one line as RFC 8259 JSON: Python's NaN/Infinity extensions are refused."""
    record = json.loads(line, parse_constant=_reject_constant)
    assert isinstance(record, dict), line[:200]
    return record


def read_records_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"{path.name}: last line is incomplete"
    return [strict_json(line) for line in text.splitlines()]


def read_records(directory: Path) -> list[dict[str, Any]]:
    return [record for path in sorted(directory.glob("*.jsonl"))
            for record in read_records_of(path)]


def jq_count(path: Path) -> int:
    """How many JSON values ``jq`` reads from ``path`` (one per line when the file is sane)."""
    jq = shutil.which("jq")
    assert jq is not None
    done = subprocess.run([jq, "-c", "."], stdin=path.open("rb"), capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return len(done.stdout.splitlines())


needs_jq = pytest.mark.skipif(shutil.which("jq") is None,
                              reason="jq is not installed (apt-get install jq); "
                                     "lines are still checked with Python's json")


# ---- JsonlExporter: many writers ----------------------------------------------------------


def _export_from_threads(exporters: Sequence[JsonlExporter], threads_each: int,
                         events_each: int, batch: int) -> set[str]:
    sent: set[str] = set()
    sent_lock = threading.Lock()
    start = threading.Barrier(len(exporters) * threads_each)
    errors: list[BaseException] = []

    def write(exporter: JsonlExporter, worker: str) -> None:
        try:
            mine = [make_event(i, agent=worker, data={"blob": PAYLOAD})
                    for i in range(events_each)]
            with sent_lock:
                sent.update(e.event_id for e in mine)
            start.wait()
            for first in range(0, events_each, batch):
                exporter.export(mine[first:first + batch])
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(exporter, f"w{n}-{t}"))
               for n, exporter in enumerate(exporters) for t in range(threads_each)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in workers)
    assert errors == []
    return sent


def test_jsonl_lines_stay_whole_under_many_threads(tmp_path: Path) -> None:
    exporter = JsonlExporter(tmp_path)
    sent = _export_from_threads([exporter], threads_each=16, events_each=500, batch=25)
    exporter.shutdown()

    records = read_records(tmp_path)
    assert len(records) == 16 * 500
    assert {r["event_id"] for r in records} == sent
    assert all(r["data"]["blob"] == PAYLOAD for r in records)
    for worker in {r["agent"] for r in records}:  # one writer's lines keep their order
        seqs = [r["data"]["seq"] for r in records if r["agent"] == worker]
        assert seqs == list(range(500))


def test_two_exporters_on_one_directory_never_interleave_lines(tmp_path: Path) -> None:
    first, second = JsonlExporter(tmp_path), JsonlExporter(tmp_path)
    sent = _export_from_threads([first, second], threads_each=8, events_each=250, batch=25)
    first.shutdown()
    second.shutdown()

    (path,) = tmp_path.glob("*.jsonl")  # same UTC day, same file
    records = read_records(tmp_path)
    assert len(records) == 2 * 8 * 250
    assert {r["event_id"] for r in records} == sent
    assert path.read_text().count("\n") == len(records)


def test_two_pipelines_writing_one_directory_keep_every_line(tmp_path: Path) -> None:
    # Two handlers in one process each own a pipeline and a JsonlExporter on the same directory.
    pipelines = [Pipeline([JsonlExporter(tmp_path)], batch_size=50, flush_interval_s=0.02)
                 for _ in range(2)]
    sent: list[str] = []

    def produce(pipeline: Pipeline, name: str) -> None:
        for i in range(500):
            event = make_event(i, agent=name, data={"blob": PAYLOAD})
            sent.append(event.event_id)
            pipeline.enqueue(event)

    producers = [threading.Thread(target=produce, args=(p, f"p{n}-{t}"))
                 for n, p in enumerate(pipelines) for t in range(2)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(timeout=60)
    try:
        assert all(pipeline.flush(timeout=30) for pipeline in pipelines)
        for pipeline in pipelines:
            stats = pipeline.stats()
            assert stats["dropped"] == {}
            assert stats["enqueued"] == stats["exported"] == 1000
    finally:
        for pipeline in pipelines:
            pipeline.shutdown(timeout=5)

    records = read_records(tmp_path)
    assert sorted(r["event_id"] for r in records) == sorted(sent)


# ---- JsonlExporter: files, format, durability ----------------------------------------------


def test_jsonl_files_are_per_utc_day(tmp_path: Path) -> None:
    # Local dates are the opposite of the UTC dates, so a local-date file name would be wrong.
    new_york_late = datetime(2024, 3, 10, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    berlin_early = datetime(2024, 3, 11, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    late = make_event(1, timestamp=new_york_late)  # 2024-03-11 04:30 UTC
    early = make_event(2, timestamp=berlin_early)  # 2024-03-10 22:30 UTC
    exporter = JsonlExporter(tmp_path / "nested" / "logs")
    exporter.export([late, early])
    exporter.export([make_event(3, timestamp=berlin_early)])
    exporter.shutdown()

    directory = tmp_path / "nested" / "logs"
    assert sorted(p.name for p in directory.iterdir()) == [
        "audit-2024-03-10.jsonl", "audit-2024-03-11.jsonl"]
    day_10 = read_records_of(directory / "audit-2024-03-10.jsonl")
    day_11 = read_records_of(directory / "audit-2024-03-11.jsonl")
    assert [r["data"]["seq"] for r in day_10] == [2, 3]
    assert [r["event_id"] for r in day_11] == [late.event_id]
    assert exporter.path_for(new_york_late) == directory / "audit-2024-03-11.jsonl"
    assert exporter.path_for(berlin_early) == directory / "audit-2024-03-10.jsonl"


def test_jsonl_record_round_trips_to_the_event(tmp_path: Path) -> None:
    event = make_event(7, data={"ü": "naïve ✓", "nested": {"list": [1, 2.5, None]}},
                       status="error", latency_ms=12.5, tokens_input=3, tokens_output=4,
                       cost_usd=0.001, error=ErrorDetail(type="ValueError", message="bad"))
    exporter = JsonlExporter(tmp_path)
    exporter.export([event])
    exporter.shutdown()
    (line,) = exporter.path_for(event.timestamp).read_text(encoding="utf-8").splitlines()
    assert AuditEvent.model_validate(strict_json(line)) == event



def test_jsonl_lines_are_the_documented_record_byte_for_byte(tmp_path: Path) -> None:
    """The writer serialises an event's fields directly (no intermediate dict): its lines must
    still be exactly ``event_to_dict`` in orjson, key order included, for events the handler
    built on the worker (a tool error among them) and for events built by validation."""
    import orjson
    from graphs import react_agent, tool_call
    from langchain_core.messages import AIMessage, HumanMessage

    from llm_audit_langchain import AuditCallbackHandler
    from llm_audit_langchain.events import event_to_dict

    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory], config=AuditConfig(exporter="none"))
    graph = react_agent([tool_call("get_weather", {"city": "Atlantis"}, "c1"),
                         AIMessage("Unknown city.")])
    graph.invoke({"messages": [HumanMessage("Weather in Atlantis?")]},
                 config={"callbacks": [handler]})
    handler.shutdown(10)
    class Tagged(AuditEvent):
        note: str = "password=hunter2"

    plain = make_event(1, timestamp=datetime(2024, 3, 10, 23, 0, tzinfo=UTC),
                       error=ErrorDetail(type="E", message="m", input_snapshot={"q": [1]}))
    berlin = timezone(timedelta(hours=1))
    events = [*memory.events, plain,
              plain.model_copy(update={"customer": "alice@example.com"}),  # not a field
              Tagged(**make_event(2).model_dump()),  # a subclass's own field
              make_event(3, timestamp=datetime(2024, 3, 10, 23, 0, tzinfo=berlin))]
    assert any(event.error is not None for event in memory.events)
    exporter = JsonlExporter(tmp_path)
    exporter.export(events)
    exporter.shutdown()
    written = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("*.jsonl")))
    expected = sorted(orjson.dumps(event_to_dict(event)) for event in events)
    assert sorted(written.splitlines()) == expected
    assert b"alice@" not in written and b"hunter2" not in written  # only declared fields

@needs_jq
def test_jq_parses_every_line(tmp_path: Path) -> None:
    exporter = JsonlExporter(tmp_path)
    batch = [make_event(i, data={"text": 'quote " backslash \\ newline \n tab \t ü'})
             for i in range(50)]
    exporter.export(batch[:20])
    exporter.export(batch[20:])
    exporter.shutdown()
    (path,) = tmp_path.glob("*.jsonl")
    assert jq_count(path) == 50
    assert len(read_records(tmp_path)) == 50


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def _cyclic() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    return loop


UNSERIALIZABLE: dict[str, Callable[[], Any]] = {
    "object": object,
    "set": lambda: {1, 2},
    "bytes": lambda: b"\x00\xff",
    "repr_raises": _BadRepr,
    "cyclic_dict": _cyclic,
    "tuple_key": lambda: {(1, 2): "pair"},
}


@pytest.mark.parametrize("kind", sorted(UNSERIALIZABLE))
def test_unserializable_value_still_writes_a_valid_line_and_is_counted(
    tmp_path: Path, kind: str,
) -> None:
    exporter = JsonlExporter(tmp_path)
    bad = make_event(1, data={"bad": UNSERIALIZABLE[kind](), "good": "kept"})
    batch = [make_event(0), bad, make_event(2)]
    exporter.export(batch)  # must not raise: a raise would make the whole batch retry for ever
    exporter.shutdown()

    records = read_records(tmp_path)  # strict JSON: NaN/Infinity would fail here
    assert [r["event_id"] for r in records] == [e.event_id for e in batch]
    assert records[1]["data"]["good"] == "kept"
    assert exporter.unserializable == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_inside_data_are_written_as_null(tmp_path: Path, value: float) -> None:
    # Through the pipeline the sanitizer has already turned them into "[float nan]" markers;
    # an exporter used alone still never writes the bare NaN/Infinity that strict JSON rejects.
    exporter = JsonlExporter(tmp_path)
    exporter.export([make_event(0, data={"bad": value, "good": "kept"})])
    exporter.shutdown()
    [record] = read_records(tmp_path)
    assert record["data"] == {"seq": 0, "bad": None, "good": "kept"}


def test_non_finite_numbers_in_event_fields_still_give_strict_json(tmp_path: Path) -> None:
    exporter = JsonlExporter(tmp_path)
    batch = [make_event(latency_ms=float("nan"), cost_usd=float("inf")), make_event(1)]
    exporter.export(batch)
    exporter.shutdown()
    records = read_records(tmp_path)  # strict: a bare NaN or Infinity fails here
    assert [r["event_id"] for r in records] == [e.event_id for e in batch]
    assert exporter.unserializable == 1


def test_fsync_true_syncs_every_batch_to_disk(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = jsonl_module.os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(jsonl_module.os, "fsync", spy)
    durable = JsonlExporter(tmp_path / "durable", fsync=True)
    plain = JsonlExporter(tmp_path / "plain")
    for n in range(3):
        durable.export([make_event(n)])
    assert len(synced) == 3
    for n in range(3):
        plain.export([make_event(n)])
    assert len(synced) == 3  # no fsync per batch unless asked for
    assert durable.force_flush(1.0) is True
    durable.shutdown()
    plain.shutdown()
    assert len(read_records(tmp_path / "durable")) == 3


def test_export_after_shutdown_is_ignored_without_raising(tmp_path: Path) -> None:
    exporter = JsonlExporter(tmp_path)
    exporter.export([make_event(0)])
    exporter.shutdown()
    exporter.export([make_event(1)])
    assert exporter.force_flush(1.0) is True
    exporter.shutdown()  # twice is harmless
    assert [r["data"]["seq"] for r in read_records(tmp_path)] == [0]


def test_jsonl_exporter_implements_the_protocol(tmp_path: Path) -> None:
    assert isinstance(JsonlExporter(tmp_path), Exporter)
    assert isinstance(StdoutExporter(io.StringIO()), Exporter)
    assert isinstance(MemoryExporter(), Exporter)


# ---- StdoutExporter -----------------------------------------------------------------------


@pytest.fixture
def llm_error_event() -> AuditEvent:
    return AuditEvent(
        event_id=uuid4().hex, trace_id=TRACE_ID, span_id="00f067aa0ba902b7",
        timestamp=datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC),
        event_type=AuditEventType.LLM_INVOKE, agent="planner", action="ChatBedrock",
        status="error", latency_ms=123.456, tokens_input=120, tokens_output=45,
        cost_usd=0.001234, error=ErrorDetail(type="ThrottlingException", message="slow down"),
    )


def _export_to_string(exporter_options: dict[str, Any], events: list[AuditEvent]) -> str:
    stream = io.StringIO()
    StdoutExporter(stream, **exporter_options).export(events)
    return stream.getvalue()


def test_stdout_line_is_readable(llm_error_event: AuditEvent) -> None:
    out = _export_to_string({"colour": False}, [llm_error_event])
    (line,) = out.splitlines()
    for part in ("12:34:56.789", "error", "llm.invoke", "planner/ChatBedrock", "123.5ms",
                 "tok=120/45", "$0.001234", "ThrottlingException: slow down", "trace=4bf92f35"):
        assert part in line, (part, line)


def test_stdout_omits_unknown_latency_tokens_and_cost() -> None:
    out = _export_to_string({"colour": False}, [make_event(agent="n", action="x")])
    assert "ms" not in out and "tok=" not in out and "$" not in out
    assert "n/x" in out and "ok" in out


def test_stdout_colour_codes_only_when_asked(llm_error_event: AuditEvent) -> None:
    coloured = _export_to_string({"colour": True}, [llm_error_event, make_event()])
    red, green = "\033[31m", "\033[32m"
    first, second = coloured.splitlines()
    assert first.startswith(red) and first.endswith("\033[0m")
    assert second.startswith(green)
    plain = _export_to_string({"colour": False}, [llm_error_event])
    assert "\033[" not in plain
    default_on_a_pipe = _export_to_string({}, [llm_error_event])  # StringIO is no terminal
    assert "\033[" not in default_on_a_pipe


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stdout_colour_default_follows_terminal_and_no_color(
    llm_error_event: AuditEvent, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = _Terminal()
    StdoutExporter(terminal).export([llm_error_event])
    assert "\033[31m" in terminal.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    StdoutExporter(terminal).export([llm_error_event])
    assert "\033[" not in terminal.getvalue()


def test_stdout_json_lines_are_parseable(llm_error_event: AuditEvent) -> None:
    events = [llm_error_event, make_event(data={"obj": object()})]
    out = _export_to_string({"json_lines": True, "colour": False}, events)
    records = [strict_json(line) for line in out.splitlines()]
    assert [r["event_id"] for r in records] == [e.event_id for e in events]
    assert records[0]["tokens_input"] == 120 and records[0]["status"] == "error"
    assert "object" in records[1]["data"]["obj"]


def test_stdout_writes_to_sys_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    StdoutExporter(colour=False).export([make_event(agent="node", action="step")])
    assert "node/step" in capsys.readouterr().out


# ---- exporters_from_config ----------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AUDIT_"):
            monkeypatch.delenv(name)
    yield


@pytest.mark.usefixtures("clean_env")
def test_config_builds_the_named_exporters(tmp_path: Path) -> None:
    exporters = exporters_from_config(AuditConfig(exporter="jsonl,stdout", log_dir=tmp_path,
                                                  fsync=True))
    assert [type(e) for e in exporters] == [JsonlExporter, StdoutExporter]
    jsonl = exporters[0]
    assert isinstance(jsonl, JsonlExporter)
    assert jsonl.directory == tmp_path and jsonl.fsync is True

    spaced = exporters_from_config(AuditConfig(exporter=" JSONL , Memory ", log_dir=tmp_path))
    assert [type(e) for e in spaced] == [JsonlExporter, MemoryExporter]


@pytest.mark.usefixtures("clean_env")
def test_config_none_means_no_exporters() -> None:
    assert exporters_from_config(AuditConfig(exporter="none")) == []


@pytest.mark.usefixtures("clean_env")
def test_config_from_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "stdout")
    assert [type(e) for e in exporters_from_config(AuditConfig.from_env())] == [StdoutExporter]


@pytest.mark.usefixtures("clean_env")
def test_unknown_exporter_name_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        exporters_from_config(AuditConfig(exporter="jsonl,kafak"))
    message = str(raised.value)
    assert "'kafak'" in message
    assert "AUDIT_EXPORTER" in message
    for valid in ("jsonl", "stdout", "memory", "none"):
        assert valid in message
    assert isinstance(raised.value, ValueError)
