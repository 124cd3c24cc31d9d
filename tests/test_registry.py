"""``AUDIT_EXPORTER`` selects every sink by name (exporters/registry.py): the parsing, OTLP on by
its endpoint, a missing extra, third-party exporters by entry point (a real ``*.dist-info`` that
``importlib.metadata`` reads), and ``AuditCallbackHandler()`` configured by the environment alone
reaching the file sinks, stdout (coloured on a terminal only) and a real OpenTelemetry collector."""

from __future__ import annotations

import importlib
import json
import os
import pty
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector import Collector, collector
from graphs import weather_agent
from langchain_core.messages import HumanMessage

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    AuditLogExporter,
    JsonlExporter,
    MemoryExporter,
    StdoutExporter,
    verify,
)
from llm_audit_langchain.errors import ConfigError
from llm_audit_langchain.exporters.registry import (
    available_exporters,
    exporter_names,
    exporters_from_config,
)

__all__ = ["collector"]  # the fixture, imported so pytest finds it

QUESTION = {"messages": [HumanMessage("Weather in Paris?")]}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("AUDIT_", "OTEL_")):
            monkeypatch.delenv(name)
    yield


# ---- parsing ----------------------------------------------------------------------------------


def test_comma_list_case_aliases_duplicates_and_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", " JSONFILE, stdout ,jsonl,, None ,Memory")
    assert exporter_names(AuditConfig()) == ["jsonl", "stdout", "memory"]
    monkeypatch.setenv("AUDIT_EXPORTER", "none")
    assert exporter_names(AuditConfig()) == []
    assert exporters_from_config(AuditConfig()) == []


def test_empty_or_unset_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert exporter_names(AuditConfig()) == ["jsonl"]
    monkeypatch.setenv("AUDIT_EXPORTER", "  ")
    assert exporter_names(AuditConfig()) == ["jsonl"]


def test_unknown_name_lists_every_valid_one() -> None:
    with pytest.raises(ConfigError) as raised:
        exporters_from_config(AuditConfig(exporter="jsonl,splunkk"))
    message = str(raised.value)
    assert "AUDIT_EXPORTER" in message and "'splunkk'" in message
    for name in ("jsonl", "jsonfile", "stdout", "memory", "none", "otlp", "audit", "cloudwatch",
                 "kafka"):
        assert name in message


def test_otlp_endpoint_alone_adds_otlp_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    assert exporter_names(AuditConfig()) == ["jsonl", "otlp"]
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces")
    assert exporter_names(AuditConfig()) == ["jsonl", "otlp"]
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert exporter_names(AuditConfig()) == ["jsonl"]
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("AUDIT_EXPORTER", "stdout")  # named explicitly: exactly what is named
    assert exporter_names(AuditConfig()) == ["stdout"]


def test_file_sinks_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "jsonl,audit,stdout,memory")
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("AUDIT_CHAIN_DIR", str(tmp_path / "chain"))
    monkeypatch.setenv("AUDIT_CHAIN_KEY", "k" * 32)
    built = exporters_from_config(AuditConfig())
    assert [type(e) for e in built] == [JsonlExporter, AuditLogExporter, StdoutExporter,
                                        MemoryExporter]
    chain = built[1]
    assert isinstance(chain, AuditLogExporter) and chain.hash_alg == "hmac-sha256"
    assert chain.directory == tmp_path / "chain"


# ---- a sink whose extra is missing ----------------------------------------------------------

_BLOCKED = textwrap.dedent("""
    import sys
    for name in ("boto3", "botocore", "confluent_kafka", "opentelemetry"):
        sys.modules[name] = None  # what an install without the extra looks like to import
    from llm_audit_langchain import AuditConfig
    from llm_audit_langchain.errors import ConfigError
    from llm_audit_langchain.exporters.registry import exporters_from_config
    import llm_audit_langchain.exporters as exporters
    for name, extra in (("cloudwatch", "aws"), ("kafka", "kafka"), ("otlp", "otel")):
        try:
            exporters_from_config(AuditConfig(exporter=name, cloudwatch_log_group="/g",
                                              kafka_bootstrap="127.0.0.1:1"))
        except ConfigError as exc:
            assert f"pip install 'llm-audit-langchain[{extra}]'" in str(exc), exc
        else:
            raise SystemExit(f"{name}: no ConfigError")
    try:
        exporters.KafkaExporter
    except ImportError as exc:
        assert "llm-audit-langchain[kafka]" in str(exc), exc
    else:
        raise SystemExit("KafkaExporter imported without confluent_kafka")
    print("core ok", [type(e).__name__ for e in exporters_from_config(AuditConfig())])
""")


def test_missing_extra_is_a_config_error_naming_it_and_the_core_still_imports() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_", "OTEL_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:1"  # implicit OTLP: warned, skipped
    result = subprocess.run([sys.executable, "-c", _BLOCKED], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "core ok ['JsonlExporter']" in result.stdout
    assert "OTLP export is off" in result.stderr


# ---- third-party exporters by entry point ----------------------------------------------------


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution ``audit-plugin``: a module and a ``.dist-info`` whose
    ``entry_points.txt`` registers two exporters (one taking the config, one not) and a broken
    one."""
    (tmp_path / "audit_plugin_sinks.py").write_text(textwrap.dedent("""
        from llm_audit_langchain import MemoryExporter

        class ListSink(MemoryExporter):
            name = "listsink"

        class ConfiguredSink(MemoryExporter):
            name = "configured"

            def __init__(self, config):
                super().__init__()
                self.log_dir = config.log_dir
    """))
    info = tmp_path / "audit_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: audit-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [llm_audit_langchain.exporters]
        listsink = audit_plugin_sinks:ListSink
        Configured = audit_plugin_sinks:ConfiguredSink
        broken = audit_plugin_sinks:NoSuchThing
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


@pytest.mark.usefixtures("plugin")
def test_entry_point_exporters_are_selectable_by_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert {"listsink", "configured", "broken"} <= set(available_exporters())
    monkeypatch.setenv("AUDIT_EXPORTER", "memory,ListSink,configured")
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "elsewhere"))
    built = exporters_from_config(AuditConfig())
    assert [type(e).__name__ for e in built] == ["MemoryExporter", "ListSink", "ConfiguredSink"]
    assert built[2].log_dir == tmp_path / "elsewhere"  # type: ignore[attr-defined]


@pytest.mark.usefixtures("plugin")
def test_entry_point_exporter_receives_the_handlers_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "listsink")
    monkeypatch.setenv("AUDIT_DEBUG", "true")
    handler = AuditCallbackHandler()
    weather_agent().invoke(QUESTION, config={"callbacks": [handler]})
    assert handler.shutdown(10)
    stats = handler.stats()
    assert stats["exporters"]["listsink"]["exported"] == stats["exported"] > 0


@pytest.mark.usefixtures("plugin")
def test_broken_entry_point_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"'broken'.*audit_plugin_sinks:NoSuchThing"):
        exporters_from_config(AuditConfig(exporter="broken"))


# ---- AuditCallbackHandler() from the environment alone ---------------------------------------


def test_env_only_handler_writes_jsonl_and_the_hash_chain(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDIT_EXPORTER", "jsonfile,audit")
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("AUDIT_CHAIN_DIR", str(tmp_path / "chain"))
    monkeypatch.setenv("AUDIT_CHAIN_KEY", "a-secret-key-of-some-length")
    monkeypatch.setenv("AUDIT_DEBUG", "true")
    handler = AuditCallbackHandler()
    weather_agent().invoke(QUESTION, config={"callbacks": [handler]})
    assert handler.shutdown(10)
    exported = handler.stats()["exported"]
    lines = [json.loads(line) for f in (tmp_path / "logs").glob("audit-*.jsonl")
             for line in f.read_text().splitlines()]
    assert len(lines) == exported > 0
    report = verify(tmp_path / "chain", key="a-secret-key-of-some-length")
    assert report.ok and report.records == exported


_STDOUT_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from graphs import weather_agent
    from langchain_core.messages import HumanMessage
    from llm_audit_langchain import AuditCallbackHandler

    handler = AuditCallbackHandler()
    weather_agent().invoke({"messages": [HumanMessage("Weather in Paris?")]},
                           config={"callbacks": [handler]})
    handler.shutdown(10)
""")


def _stdout_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AUDIT_", "OTEL_")) and k != "NO_COLOR"}
    env.update(AUDIT_EXPORTER="stdout", AUDIT_DEBUG="true")
    return env


def test_env_only_stdout_is_coloured_on_a_terminal_and_plain_on_a_pipe() -> None:
    tests_dir = str(Path(__file__).parent)
    piped = subprocess.run([sys.executable, "-c", _STDOUT_RUN, tests_dir], capture_output=True,
                           text=True, env=_stdout_env(), timeout=120, check=True).stdout
    assert "llm.invoke" in piped and "\033[" not in piped

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", _STDOUT_RUN, tests_dir], stdout=follower,
                               stderr=subprocess.DEVNULL, env=_stdout_env())
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the child is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(60) == 0
    text = output.decode(errors="replace")
    assert "llm.invoke" in text and "\033[32m" in text  # ok events in green


def test_env_only_handler_reaches_a_real_collector_by_the_endpoint_alone(
        collector: Collector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("AUDIT_DEBUG", "true")
    handler = AuditCallbackHandler()
    weather_agent().invoke(QUESTION, config={"callbacks": [handler]})
    assert handler.shutdown(10)
    assert set(handler.stats()["exporters"]) == {"jsonl", "otlp"}
    lines = [json.loads(line) for f in (tmp_path / "logs").glob("audit-*.jsonl")
             for line in f.read_text().splitlines()]
    spans = {e["span_id"] for e in lines if e["start_time"] is not None}
    received = {s.span_id for s in collector.wait_for_spans(len(spans))}
    assert received >= spans > set()
