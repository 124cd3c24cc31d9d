"""The repository's docs, docstrings and command output cite nothing a user does not have: no
requirement documents ("seed 000 §3"), no design notes outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITATION = re.compile(r"[Ss]eed(?:'s| \d| 0)|DESIGN\.md|§")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
            *(ROOT / "llm_audit_langchain").rglob("*.py")]


def test_no_document_or_docstring_cites_what_is_not_in_the_repository() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in _documents()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if CITATION.search(line)]
    assert found == []


def test_the_readme_says_how_to_use_it_in_a_project_and_what_to_do_when_stuck() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Use it in your project" in readme
    assert "pip install llm-audit-langchain" in readme
    assert "llm_audit_langchain.testing" in readme
    assert "## Troubleshooting" in readme
    quick_start = readme.split("## Quick start")[1].split("\n## ")[0]
    assert "AUDIT_DEBUG=true" in quick_start
