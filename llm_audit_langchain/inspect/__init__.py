"""Reading back what was recorded, outside the recording process: the trace tree (``tree``),
DuckDB analytics over JSONL files (``analytics``) and the ``llm-audit`` command (``cli``).
May import anything below it; nothing in the recording path imports it."""
