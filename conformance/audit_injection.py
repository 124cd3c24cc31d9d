"""pytest plugin for the host conformance run: one ``AuditCallbackHandler`` in every run.

Loaded into the host's own test session by ``conformance/run.py`` (``-p audit_injection``), in the
plain run and in the injected run alike, so both runs load the same plugins. With
``LLM_AUDIT_CONFORMANCE_INJECT=1`` it registers a LangChain configure hook whose context variable
defaults to one handler: every callback manager LangChain configures, in any thread or task,
gets that handler, as if the user had passed ``callbacks=[handler]`` everywhere.

Either way it records each test's outcome (``passed``, ``failed``, ``skipped``) by node id in
``LLM_AUDIT_CONFORMANCE_OUTCOMES`` (JSON), and the handler's counters at the end, so the runner
can compare the two runs test by test.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest

_INJECT = os.environ.get("LLM_AUDIT_CONFORMANCE_INJECT") == "1"
_OUTCOMES = os.environ.get("LLM_AUDIT_CONFORMANCE_OUTCOMES")


class _CountingExporter:
    """Takes every batch and keeps nothing: the host's tests run thousands of traces."""

    name = "conformance"

    def __init__(self) -> None:
        self.events = 0

    def export(self, batch: Any) -> None:
        self.events += len(batch)

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        return None


_handler: Any = None
_exporter = _CountingExporter()
if _INJECT:
    from langchain_core.tracers.context import register_configure_hook

    from llm_audit_langchain import AuditCallbackHandler

    _handler = AuditCallbackHandler(exporters=[_exporter])
    _audit_var: ContextVar[Any] = ContextVar("llm_audit_conformance_handler", default=_handler)
    register_configure_hook(_audit_var, inheritable=True)


class _OutcomeRecorder:
    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        previous = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and previous is None:
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and report.passed and previous != "failed":
            self.outcomes[report.nodeid] = "passed"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not _OUTCOMES:
            return
        stats: dict[str, Any] = {}
        if _handler is not None:
            flushed = _handler.flush(timeout=30)
            stats = {key: value for key, value in _handler.stats().items()
                     if key in ("enqueued", "exported", "dropped", "pending", "internal_errors",
                                "orphan_ends", "duplicate_callbacks", "evicted_runs", "held")}
            stats["flushed"] = flushed
        worker = getattr(session.config, "workerinput", {}).get("workerid")
        path = Path(_OUTCOMES if worker is None else f"{_OUTCOMES}.{worker}")
        path.write_text(json.dumps({"outcomes": self.outcomes, "handler": stats}))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_OutcomeRecorder(), "llm_audit_conformance_outcomes")
