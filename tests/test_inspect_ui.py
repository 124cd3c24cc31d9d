"""``llm-audit ui``: the real console script serving a directory on 127.0.0.1, read with a
real HTTP client and, when Chromium exists, a real browser that sees new traces arrive."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from graphs import weather_agent
from inspect_recordings import Recording, record
from langchain_core.messages import HumanMessage
from test_cli import LLM_AUDIT
from test_inspect_browser import CHROMIUM, browser, page  # noqa: F401  (fixtures)

from llm_audit_langchain import AuditCallbackHandler, JsonlExporter


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(tmp_path_factory.mktemp("ui"))


@pytest.fixture
def ui(rec: Recording, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A copy of the recording served by ``llm-audit ui --port 0``; yields (url, directory)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for file in rec.logs.glob("*.jsonl"):
        (logs / file.name).write_bytes(file.read_bytes())
    process = subprocess.Popen([LLM_AUDIT, "ui", "--dir", str(logs), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the socket listens
        assert line.startswith("llm-audit ui: serving"), process.stderr.read() if process.stderr \
            else line
        url = line.split(" on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        yield url, logs
    finally:
        process.kill()
        process.wait(timeout=10)


def get(url: str) -> tuple[int, str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def add_a_run(logs: Path) -> str:
    handler = AuditCallbackHandler(exporters=[JsonlExporter(logs)], config=fast_config())
    weather_agent().invoke({"messages": [HumanMessage("Weather in Oslo?")]},
                           config={"callbacks": [handler]})
    assert handler.flush(timeout=10)
    handler.shutdown(timeout=5)
    return "Weather in Oslo?"


def test_ui_serves_the_report_and_sees_new_traces(ui: tuple[str, Path], rec: Recording) -> None:
    url, logs = ui
    status, page_html, headers = get(url + "/")
    assert status == 200 and f'id="t-{rec.demo_trace}"' in page_html
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert 'data-live-version="' in page_html
    version = get(url + "/version")[1]
    assert f'data-live-version="{version}"' in page_html

    status, trace_html, _ = get(f"{url}/trace/{rec.demo_trace[:10]}")
    assert status == 200 and "Run tree (12 spans)" in trace_html
    assert get(url + "/trace/ffffffffffff")[0] == 404 and get(url + "/nothing")[0] == 404

    question = add_a_run(logs)
    assert get(url + "/version")[1] != version
    assert question in get(url + "/")[1]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_ui_page_reloads_when_a_trace_arrives(ui: tuple[str, Path], page: Any) -> None:  # noqa: F811
    url, logs = ui
    page.goto(url + "/")
    assert page.locator("tr.lat-tr").count() == 4
    page.select_option("#lat-status", "ok")  # a filter survives the reload
    add_a_run(logs)
    page.locator("tr.lat-tr").nth(4).wait_for(state="attached", timeout=30_000)
    assert page.locator("tr.lat-tr").count() == 5
    assert page.locator("#lat-status").input_value() == "ok"
    assert page.get_by_text("Weather in Oslo?").first.is_visible()
    assert page.problems == []
