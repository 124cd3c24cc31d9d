"""``llm-audit`` at a terminal (a real pseudo-terminal): ``show`` as a coloured tree, ``stats``
as tables, ``verify`` and ``tail`` coloured by status; recorded strings stay inert text. Piped
output is unchanged (``tests/test_cli.py`` reads it through pipes)."""

from __future__ import annotations

import os
import pty
import re

import pytest
from inspect_recordings import HOSTILE, Recording, record
from test_cli import LLM_AUDIT, llm_audit

pytest.importorskip("rich", reason="needs the cli extra")
RED = "\x1b[1;31m"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(tmp_path_factory.mktemp("terminal"))


def at_terminal(*args: str) -> str:
    """Run ``llm-audit`` with stdout on a pseudo-terminal; returns what the terminal got."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdout is the terminal
        os.environ.update(TERM="xterm-256color", COLUMNS="160")
        os.environ.pop("NO_COLOR", None)
        os.execv(LLM_AUDIT, [LLM_AUDIT, *args])
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    os.close(fd)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def test_show_is_a_coloured_tree(rec: Recording) -> None:
    out = at_terminal("show", rec.demo_trace, "--dir", str(rec.logs))
    text = plain(out)
    assert "└── LangGraph" in text and "├── " in text and "│   " in text
    assert "↳ selected tools: get_weather(city='Paris')" in text
    error_lines = [line for line in out.splitlines() if "weather service has no station" in line]
    assert error_lines and all(RED in line for line in error_lines)
    assert "error in tool get_weather in tools" in text


def test_recorded_strings_are_inert_at_the_terminal(rec: Recording) -> None:
    text = plain(at_terminal("show", rec.hostile_trace, "--dir", str(rec.logs)))
    assert f"no match for {HOSTILE}" in text  # shown as it was recorded, as text


def test_stats_are_tables_and_breaches_are_red(rec: Recording) -> None:
    out = at_terminal("stats", str(rec.logs))
    text = plain(out)
    assert "cost by model" in text and "┃ model" in text and "│ u-42" in text
    assert f"{RED}BREACHED" in out  # a tool failed in 2 of 5 tool runs


def test_verify_and_tail_colour_by_status(rec: Recording) -> None:
    assert "\x1b[1;32mOK" in at_terminal("verify", str(rec.chain))
    tail = at_terminal("tail", str(rec.logs), "--once", "--status", "error")
    assert tail.count("\x1b[1;31m") >= 2
    piped = llm_audit("tail", str(rec.logs), "--once", "--status", "error").stdout
    assert "\x1b[" not in piped and piped.strip()
