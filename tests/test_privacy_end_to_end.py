"""No secret reaches any byte an exporter writes: through the real handler, graph and files.

The sanitizer's own tests check the function; these check the wiring: prompts, tool arguments,
tool outputs, error messages, tracebacks, input snapshots and graph state all pass it before the
JSONL file and the stdout exporter see them, in every capture mode but ``full``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from graphs import react_agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from test_sanitizer import digits_of, text_with_secret

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditConfig,
    JsonlExporter,
    StdoutExporter,
)

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def run_leaky_agent(secret_text: str, mode: str, log_dir: Path) -> tuple[bytes, str]:
    """A graph whose question, tool arguments, tool output and tool error all hold the secret.
    Returns what the JSONL file and the stdout exporter received."""

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        if "fail" in query:
            raise ValueError(f"lookup failed for {query}")
        return f"found: {query}"

    stdout = io.StringIO()
    handler = AuditCallbackHandler(
        exporters=[JsonlExporter(log_dir), StdoutExporter(stdout, json_lines=True)],
        config=AuditConfig(capture=mode, debug=True, flush_interval_ms=20),  # type: ignore[arg-type]
    )
    model_answers = [
        AIMessage("", tool_calls=[
            {"name": "lookup", "args": {"query": secret_text}, "id": "c1"},
            {"name": "lookup", "args": {"query": f"fail {secret_text}"}, "id": "c2"},
        ]),
        AIMessage(f"I found {secret_text}"),
    ]
    graph = react_agent(model_answers, tools=[lookup])
    graph.invoke({"messages": [HumanMessage(f"please check {secret_text}")]},
                 config={"callbacks": [handler], "metadata": {"user_note": secret_text}})
    assert handler.flush(10)
    handler.shutdown(5)
    written = b"".join(p.read_bytes() for p in sorted(log_dir.glob("*.jsonl")))
    return written, stdout.getvalue()


@SETTINGS
@given(case=text_with_secret(), mode=st.sampled_from(["redacted", "none"]))
def test_secrets_never_reach_exported_bytes(case: tuple[str, str, str], mode: str,
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    text, shown, core = case
    written, printed = run_leaky_agent(text, mode, tmp_path_factory.mktemp("logs"))
    assert written  # the run was recorded
    for output in (written.decode("utf-8"), printed):
        assert shown not in output and core not in output
        if core.isdigit() and len(core) >= 11:
            assert core not in digits_of(output)


def test_full_capture_is_an_explicit_opt_in_that_keeps_content(tmp_path: Path) -> None:
    written, _ = run_leaky_agent("call me at ana@example.com", "full", tmp_path)
    assert b"ana@example.com" in written


def test_tool_errors_are_recorded_without_their_secret(tmp_path: Path) -> None:
    written, _ = run_leaky_agent("card 4111 1111 1111 1111 please", "redacted", tmp_path)
    text = written.decode("utf-8")
    assert "lookup failed for" in text  # the error is there...
    assert "4111 1111 1111 1111" not in text and "4111111111111111" not in text  # ...not the card
    assert "[REDACTED_CARD]" in text
