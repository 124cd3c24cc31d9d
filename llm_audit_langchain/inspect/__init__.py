"""Reading back what was recorded, outside the recording process: ``Trace``/``Traces`` (from a
MemoryExporter, JSONL files or the audit chain), their HTML views (``html``), DataFrames and
plots (``frames``), the trace tree as text (``tree``), DuckDB analytics over JSONL files
(``analytics``) and the ``llm-audit`` command (``cli``). May import anything below it; nothing
in the recording path imports it."""

from .traces import Trace, Traces

__all__ = ["Trace", "Traces"]
