"""A new user's first hour, from the user's side: a fresh handler built from the environment,
as the README's quick start does. Nothing is silent and every mistake names itself."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphs import react_agent
from langchain_core.messages import AIMessage

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    ConfigError,
    JsonlExporter,
    MemoryExporter,
)

_OURS = ("AUDIT_", "TRACE_SAMPLE_RATE", "SUCCESS_SAMPLE_RATE", "ERROR_SAMPLE_RATE",
         "SLOW_REQUEST_THRESHOLD_MS")


@pytest.fixture
def fresh_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No AUDIT_* or sampling variable set, the working directory a fresh temporary one."""
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _answer(_messages: list[object]) -> AIMessage:
    return AIMessage("Paris is sunny.")


def _run_ok(handler: AuditCallbackHandler, times: int) -> None:
    graph = react_agent(responder=_answer)
    for _ in range(times):
        graph.invoke({"messages": [("user", "weather in Paris?")]},
                     config={"callbacks": [handler]})


def _trace_ids(directory: Path) -> set[str]:
    return {json.loads(line)["trace_id"] for path in directory.glob("audit-*.jsonl")
            for line in path.read_text().splitlines()}


# ---- nothing silent -----------------------------------------------------------------------------


def test_the_readme_snippet_writes_the_first_runs_to_logs(fresh_env: Path) -> None:
    handler = AuditCallbackHandler()
    assert (fresh_env / "logs").is_dir()  # created when the handler is built, before any run
    _run_ok(handler, 3)
    handler.shutdown(timeout=10)
    assert len(_trace_ids(fresh_env / "logs")) == 3  # kept as the first (or by the rate)


def test_the_first_sampled_out_trace_is_logged_once_with_how_to_keep_everything(
        fresh_env: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SUCCESS_SAMPLE_RATE", "0")
    monkeypatch.setenv("AUDIT_KEEP_FIRST_TRACES", "1")
    handler = AuditCallbackHandler()
    with caplog.at_level(logging.INFO, logger="llm_audit_langchain"):
        _run_ok(handler, 3)
        handler.shutdown(timeout=10)
    notes = [r.getMessage() for r in caplog.records if "sampled out" in r.getMessage()]
    assert len(notes) == 1
    assert "AUDIT_DEBUG=true" in notes[0] and "SUCCESS_SAMPLE_RATE=1" in notes[0]
    assert len(_trace_ids(fresh_env / "logs")) == 1
    stats = handler.stats()
    assert stats["sampling"]["kept_first"] == 1 and stats["sampling"]["dropped_traces"] == 2


def test_the_kept_first_traces_say_why_so_stats_weights_them_as_certain(
        fresh_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUCCESS_SAMPLE_RATE", "0")  # else 1 trace in 10 is kept by the rate
    handler = AuditCallbackHandler()
    _run_ok(handler, 1)
    handler.shutdown(timeout=10)
    roots = [json.loads(line) for path in (fresh_env / "logs").glob("audit-*.jsonl")
             for line in path.read_text().splitlines() if '"trace_root":true' in line]
    assert [root["data"]["sampling"] for root in roots] == [{"reason": "first", "rate": 1.0}]


# ---- the constructor names the mistake ----------------------------------------------------------


@pytest.mark.parametrize("args,kwargs,named", [
    (("logs",), {}, "exporters=[JsonlExporter('logs')]"),
    ((), {"exporters": [JsonlExporter]}, "pass an instance"),
    ((), {"exporters": [object()]}, "lacks export, force_flush, shutdown"),
    ((), {"config": {"debug": True}}, "must be an AuditConfig"),
])
def test_a_wrong_constructor_argument_fails_at_construction(
        fresh_env: Path, args: tuple[object, ...], kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        AuditCallbackHandler(*args, **kwargs)  # type: ignore[arg-type]
    assert named in str(caught.value)


def test_an_unknown_config_field_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        AuditConfig(success_sample_rate=1.0)  # type: ignore[call-arg]
    assert "success_sample_rate" in str(caught.value)
    assert "SamplingPolicy" in str(caught.value)


# ---- environment variables ----------------------------------------------------------------------


@pytest.mark.parametrize("name,value,allowed", [
    ("AUDIT_CAPTURE", "bogus", "'full'"),
    ("AUDIT_QUEUE_SIZE", "-1", "greater than or equal to 1"),
    ("AUDIT_DEBUG", "maybe", "boolean"),
    ("SLOW_REQUEST_THRESHOLD_MS", "-5", ">= 0"),
    ("AUDIT_COST_THRESHOLD_USD", "lots", ">= 0"),
    ("SUCCESS_SAMPLE_RATE", "2", "between 0 and 1"),
])
def test_a_bad_variable_raises_config_error_naming_it_its_value_and_what_is_allowed(
        fresh_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
        allowed: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        AuditCallbackHandler()
    message = str(caught.value)
    assert name in message and repr(value) in message and allowed in message


def test_values_are_case_insensitive(fresh_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_CAPTURE", "FULL")
    monkeypatch.setenv("AUDIT_EXPORTER", "JSONL")
    monkeypatch.setenv("AUDIT_DEBUG", "TRUE")
    config = AuditConfig.from_env()
    assert (config.capture, config.exporter, config.debug) == ("full", "jsonl", True)


def test_an_empty_audit_exporter_means_the_default(fresh_env: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "")
    handler = AuditCallbackHandler()
    try:
        assert list(handler.stats()["exporters"]) == ["jsonl"]
    finally:
        handler.shutdown(timeout=5)


def test_a_log_dir_that_is_a_file_fails_at_construction_naming_the_path(
        fresh_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fresh_env / "not-a-dir").write_text("")
    monkeypatch.setenv("AUDIT_LOG_DIR", "not-a-dir")
    with pytest.raises(ConfigError, match="'not-a-dir' exists and is not a directory"):
        AuditCallbackHandler()
    with pytest.raises(ConfigError, match="not-a-dir"):
        JsonlExporter(fresh_env / "not-a-dir" / "sub")


def test_a_misspelled_audit_variable_is_reported_once(
        fresh_env: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AUDIT_SHUTDOWN_TIMEOUT", "3")
    monkeypatch.setenv("AUDIT_SUCCESS_SAMPLE_RATE", "1")
    monkeypatch.setenv("AUDIT_SOMETHING_ELSE_ENTIRELY", "x")  # not ours, not close: quiet
    with caplog.at_level(logging.WARNING, logger="llm_audit_langchain"):
        AuditConfig.from_env()
        AuditConfig.from_env()
    notes = sorted(r.getMessage() for r in caplog.records if "not one we read" in r.getMessage())
    assert len(notes) == 2
    assert "did you mean AUDIT_SHUTDOWN_TIMEOUT_S" in notes[0]
    assert "did you mean SUCCESS_SAMPLE_RATE" in notes[1]


def test_a_memory_exporter_instance_is_accepted(fresh_env: Path) -> None:
    handler = AuditCallbackHandler([MemoryExporter()], config=AuditConfig(debug=True))
    _run_ok(handler, 1)
    handler.shutdown(timeout=10)
    assert handler.stats()["exported"] > 0


@pytest.mark.parametrize("name", ["SUCESS_SAMPLE_RATE", "SUCCESS_SAMPLING_RATE"])
def test_a_misspelled_sampling_variable_is_reported(
        fresh_env: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, name: str) -> None:
    monkeypatch.setenv(name, "1")  # would leave sampling at 10 % unnoticed
    with caplog.at_level(logging.WARNING, logger="llm_audit_langchain"):
        AuditConfig.from_env()
    notes = [r.getMessage() for r in caplog.records if "not one we read" in r.getMessage()]
    assert len(notes) == 1 and "did you mean SUCCESS_SAMPLE_RATE" in notes[0]
