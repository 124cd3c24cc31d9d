"""Self-contained HTML views of recorded traces: the notebook trace view (``view``) and the
auditors' report (``report``). No CDN, no network; every recorded string is HTML-escaped
(recorded content is untrusted input). The CSS and the report's small script are package data
files in ``assets/``."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def asset(name: str) -> str:
    """The text of a file in ``assets/`` (``view.css``, ``report.css``, ``report.js``)."""
    return files(__package__).joinpath("assets", name).read_text(encoding="utf-8")
