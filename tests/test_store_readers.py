"""``traces``, ``slo``, ``ui`` and ``reconstruct`` read a store (``--from URI``) and answer as
they do from the JSONL directory the same agent runs were written to."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import weather_agent
from langchain_core.messages import HumanMessage
from store_servers import MongoServer, PostgresServer, mongo_server, postgres_server
from test_cli import LLM_AUDIT

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter
from llm_audit_langchain.exporters import MongoExporter, PostgresExporter
from llm_audit_langchain.inspect import Traces
from llm_audit_langchain.inspect.cli import main
from llm_audit_langchain.inspect.reconstruct import reconstruct

__all__ = ["mongo_server", "postgres_server"]

pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
pytest.importorskip("pymongo", reason="the mongo extra (pymongo) is not installed")

USERS = ("u-1", "u-2", "u-1", "u-3")


@pytest.fixture(scope="module")
def table() -> str:
    return f"read_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sources(table: str, postgres_server: PostgresServer, mongo_server: MongoServer,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Four real agent runs recorded at once to a directory, PostgreSQL and MongoDB."""
    directory = tmp_path_factory.mktemp("readers") / "logs"
    handler = AuditCallbackHandler(exporters=[
        JsonlExporter(directory),
        PostgresExporter(postgres_server.dsn, table=table, retention_days=None),
        MongoExporter(mongo_server.uri, collection=table, retention_days=None)],
        config=fast_config())
    graph = weather_agent()
    for user in USERS:
        graph.invoke({"messages": [HumanMessage(f"weather for {user}?")]},
                     config={"callbacks": [handler], "metadata": {"user_id": user}})
    assert handler.flush(timeout=20)
    handler.shutdown(timeout=10)
    return {"dir": str(directory), "postgres": postgres_server.dsn, "mongodb": mongo_server.uri}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def source_args(backend: str, sources: dict[str, str], table: str) -> list[str]:
    if backend == "dir":
        return ["--dir", sources["dir"]]
    return ["--from", sources[backend], "--table", table]


def to_ms(summary: dict[str, Any]) -> dict[str, Any]:
    """MongoDB keeps times to the millisecond (BSON dates)."""
    return {**summary, "start": summary["start"][:23]}


@pytest.mark.parametrize("backend", ["postgres", "mongodb"])
@pytest.mark.parametrize("filters", [[], ["--user", "u-1"], ["--limit", "2"], ["--since"],
                                     ["--until"]])
def test_traces_from_a_store_lists_what_the_directory_lists(
        backend: str, filters: list[str], sources: dict[str, str], table: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, listed = run(["traces", "--dir", sources["dir"], "--json", "--limit", "-1"], capsys)
    assert code == 0 and len(json.loads(listed)) == len(USERS)
    if filters in (["--since"], ["--until"]):
        # halfway between the first two runs' starts: MongoDB keeps only milliseconds
        first, second = (datetime.fromisoformat(t["start"]) for t in json.loads(listed)[:2])
        filters = [filters[0], (first + (second - first) / 2).isoformat()]
    argv = ["traces", "--json", *filters]
    code, expected = run([*argv, *source_args("dir", sources, table)], capsys)
    assert code == 0
    code, got = run([*argv, *source_args(backend, sources, table)], capsys)
    assert code == 0
    want, have = json.loads(expected), json.loads(got)
    if filters[:1] == ["--since"]:
        assert len(want) == 3
    if filters[:1] == ["--until"]:
        assert len(want) == 1
    if backend == "mongodb":
        want, have = [to_ms(t) for t in want], [to_ms(t) for t in have]
    assert have == want
    _, text = run(["traces", *filters, *source_args(backend, sources, table)], capsys)
    _, text_from_dir = run(["traces", *filters, *source_args("dir", sources, table)], capsys)
    assert text == text_from_dir


def test_traces_from_a_directory_reads_as_dir(sources: dict[str, str], table: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["traces", "--from", sources["dir"], "--json"], capsys) == run(
        ["traces", "--dir", sources["dir"], "--json"], capsys)


@pytest.mark.parametrize("backend", ["postgres", "mongodb"])
def test_slo_from_a_store_matches_the_directory(backend: str, sources: dict[str, str],
                                                table: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, expected = run(["slo", "--json", *source_args("dir", sources, table)], capsys)
    assert code == 0
    code, got = run(["slo", "--json", *source_args(backend, sources, table)], capsys)
    assert code == 0
    want, have = json.loads(expected), json.loads(got)
    assert [s["slo"] for s in want["slos"]] and have["slos"] == want["slos"]
    if backend == "postgres":
        assert (have["from"], have["to"]) == (want["from"], want["to"])


@pytest.mark.parametrize("backend", ["postgres", "mongodb"])
def test_reconstruct_from_a_store_tells_the_same_story(backend: str, sources: dict[str, str],
                                                       table: str) -> None:
    trace_id = Traces.from_jsonl(sources["dir"]).latest().trace_id
    from_dir = reconstruct(trace_id, sources["dir"])
    from_store = reconstruct(trace_id, sources[backend], table=table)
    ids = [e["event_id"] for e in from_store["timeline"]]
    expected_ids = [e["event_id"] for e in from_dir["timeline"]]
    if backend == "mongodb":  # events of the same millisecond may swap places
        ids, expected_ids = sorted(ids), sorted(expected_ids)
    assert ids == expected_ids
    assert {e["service"] for e in from_store["timeline"]} == {
        "postgresql:127.0.0.1/postgres" if backend == "postgres" else "mongodb:127.0.0.1"}
    assert from_store["ai_decisions"] and len(from_store["ai_decisions"]) == len(
        from_dir["ai_decisions"])
    if backend == "postgres":  # microsecond times: the whole story is the same
        def without_service(story: dict[str, Any]) -> str:
            text = json.dumps(story, default=str, sort_keys=True)
            return text.replace(sources["dir"].rsplit("/", 1)[-1], "S").replace(
                "postgresql:127.0.0.1/postgres", "S")
        assert without_service(from_store) == without_service(from_dir)
    # both at once: every event once, each with the source that recorded it
    both = reconstruct(trace_id, sources["dir"], sources[backend], table=table)
    assert len(both["timeline"]) == len(from_dir["timeline"])


def test_traces_from_store_is_the_directory_s_traces(sources: dict[str, str],
                                                     table: str) -> None:
    from_dir = Traces.from_jsonl(sources["dir"])
    from_store = Traces.from_store(sources["postgres"], table=table)
    assert [(t.trace_id, t.status, t.user_id, t.cost_usd, len(t)) for t in from_store] == [
        (t.trace_id, t.status, t.user_id, t.cost_usd, len(t)) for t in from_dir]


def test_ui_serves_a_store(sources: dict[str, str], table: str) -> None:
    from llm_audit_langchain.inspect.serve import LiveReport

    process = subprocess.Popen([LLM_AUDIT, "ui", "--from", sources["postgres"], "--table", table,
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("llm-audit ui: serving postgresql://"), (
            process.stderr.read() if process.stderr else line)
        url = line.split(" on ")[1].split()[0]
        trace_id = Traces.from_jsonl(sources["dir"]).latest().trace_id
        with urllib.request.urlopen(f"{url}/", timeout=30) as response:
            index = response.read().decode()
        assert all(t.trace_id in index for t in Traces.from_jsonl(sources["dir"]))
        with urllib.request.urlopen(f"{url}/trace/{trace_id}", timeout=30) as response:
            page = response.read().decode()
        assert page == LiveReport(sources["dir"]).trace_page(trace_id)
        with urllib.request.urlopen(f"{url}/version", timeout=30) as response:
            assert len(response.read().decode()) == 16
    finally:
        process.kill()
        process.wait(timeout=10)


def test_ui_with_an_unreachable_store_is_a_clear_error(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    from store_servers import free_port

    source = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres"
    assert main(["ui", "--from", source, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "cannot read postgresql://postgres:***@" in err and "secret" not in err


def test_every_back_end_selects_the_same_whole_traces(sources: dict[str, str],
                                                      table: str) -> None:
    from llm_audit_langchain.inspect.stores import open_store

    starts = sorted((t.start, t.trace_id) for t in Traces.from_jsonl(sources["dir"]))
    middle = starts[1][0] + (starts[2][0] - starts[1][0]) / 2
    expected_types = {"tool.call", "tool.result"}
    answers = []
    for backend in ("dir", "postgres", "mongodb"):
        store = open_store(sources[backend], table=table)
        try:
            late = list(store.events(since=middle))
            early = list(store.events(until=middle))
            tools = list(store.events(event_types=sorted(expected_types)))
            every = list(store.events())
        finally:
            store.close()
        assert [e.timestamp for e in every] == sorted(e.timestamp for e in every)
        assert {str(e.event_type) for e in tools} == expected_types
        answers.append(({e.event_id for e in late}, {e.event_id for e in early},
                        {e.event_id for e in tools}, len(every)))
        # whole traces, among them every run that started in the range (a run that started
        # before it but ran into it is there too: the caller checks the start)
        per_trace = Counter(e.trace_id for e in every)
        for selected, wanted in ((late, starts[2:]), (early, starts[:2])):
            counted = Counter(e.trace_id for e in selected)
            assert {trace_id for _, trace_id in wanted} <= set(counted)
            assert all(per_trace[trace_id] == n for trace_id, n in counted.items())
        assert starts[0][1] not in {e.trace_id for e in late}, backend
        assert starts[3][1] not in {e.trace_id for e in early}
    assert answers[0] == answers[1] == answers[2]
