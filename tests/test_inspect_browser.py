"""The report and the notebook trace view in a real headless Chromium (Debian's ``chromium``
driven by Playwright): what a person sees and clicks, and no console errors.

Skipped only when no Chromium is installed (``make test`` installs one when it can). Set
``LLM_AUDIT_SCREENSHOTS=docs`` to refresh the README's screenshots.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inspect_recordings import HOSTILE, Recording, record

from llm_audit_langchain.inspect.html.report import render_report
from llm_audit_langchain.inspect.traces import Traces

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium)")


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM, headless=True,
            args=FLAGS, viewport={"width": 1200, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    page.problems = []  # console errors and uncaught exceptions
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    page.on("dialog", lambda d: (page.problems.append(f"dialog {d.message}"), d.dismiss()))
    yield page
    page.close()


def _screenshot(page: Any, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("LLM_AUDIT_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)
    assert (target / name).stat().st_size > 10_000


def _tree_expands_on_click(view: Any) -> None:
    """The first LLM call starts folded (depth 2); a click on its row shows what it chose."""
    llm = view.locator("details.lat-run.k-llm").first
    choice = llm.locator(".lat-pt", has_text="selected tools").first
    assert llm.get_attribute("open") is None and not choice.is_visible()
    llm.locator(":scope > summary").click()
    assert llm.get_attribute("open") is not None and choice.is_visible()


def _error_row_is_visible_and_marked(view: Any) -> None:
    rows = view.locator(".lat-run.st-error > .lat-row")
    assert rows.count() == 2
    for index in range(2):
        row = rows.nth(index)
        assert row.is_visible()
        assert "ERROR" in row.inner_text()
        colour = row.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(255, 235, 233)"  # the error tint, not the plain row


def test_report_in_a_browser(rec: Recording, page: Any, tmp_path: Path) -> None:
    traces = Traces.from_jsonl(rec.logs)
    report = tmp_path / "report.html"
    report.write_text(render_report(traces, chain_dir=rec.chain), encoding="utf-8")
    page.goto(report.as_uri())
    index = page.locator(".lat-index")
    assert index.is_visible() and page.get_by_text("intact: ").is_visible()
    rows = page.locator("tr.lat-tr")
    assert rows.count() == 4 and page.locator("#lat-count").inner_text() == "4"
    _screenshot(page, "report.png", tmp_path)

    page.fill("#lat-q", "lima")  # free text over the sanitized inputs
    assert page.locator("#lat-count").inner_text() == "1"
    visible = [r for r in rows.all() if r.is_visible()]
    assert [r.get_attribute("data-thread") for r in visible] == ["t-7"]
    page.fill("#lat-q", "")
    page.select_option("#lat-user", "u-7")
    assert page.locator("#lat-count").inner_text() == "2"
    assert page.locator("tbody.lat-thread:not([hidden])").count() == 1  # one conversation
    page.select_option("#lat-user", "")
    page.select_option("#lat-status", "errors")
    assert page.locator("#lat-count").inner_text() == "2"
    page.select_option("#lat-status", "")

    page.click(f'tr.lat-tr a[href="#t-{rec.demo_trace}"]')
    view = page.locator(f"section#t-{rec.demo_trace}")
    assert view.is_visible() and not index.is_visible()
    _error_row_is_visible_and_marked(view)
    _tree_expands_on_click(view)
    _screenshot(page, "report-trace.png", tmp_path)

    view.locator("a.lat-back").click()
    assert index.is_visible()
    page.click(f'tr.lat-tr a[href="#t-{rec.hostile_trace}"]')
    hostile = page.locator(f"section#t-{rec.hostile_trace}")
    assert hostile.get_by_text(HOSTILE).first.is_visible()  # shown as text, never run
    assert page.evaluate("window.__pwned") is None
    assert page.problems == []


def test_notebook_trace_view_in_a_browser(rec: Recording, page: Any, tmp_path: Path) -> None:
    trace = Traces.from_memory(rec.memory)[rec.demo_trace]
    page.set_content(f"<!DOCTYPE html><html><body>{trace._repr_html_()}</body></html>")
    view = page.locator(".lat-trace")
    assert view.is_visible() and "Run tree (12 spans)" in view.inner_text()
    _error_row_is_visible_and_marked(view)
    _tree_expands_on_click(view)
    traceback = view.locator(".lat-err pre").first
    assert not traceback.is_visible()  # folded until asked for
    view.locator(".lat-err summary", has_text="traceback").first.click()
    assert traceback.is_visible() and "ConnectionError" in traceback.inner_text()
    _screenshot(page, "trace-view.png", tmp_path)
    assert page.problems == []
