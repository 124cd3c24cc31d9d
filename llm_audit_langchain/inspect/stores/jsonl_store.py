"""The JSONL back-end: DuckDB over the files ``JsonlExporter`` writes (no server)."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from ...events import AuditEvent
from ...replay.reading import jsonl_files
from ..analytics import AnalyticsUnavailableError
from .base import in_range
from .sql import sql_report

_LOAD = """
CREATE TEMP VIEW lines AS
SELECT j FROM read_csv({files}, columns={{'j': 'VARCHAR'}}, delim=chr(31), quote='', escape='',
                       header=false, auto_detect=false, max_line_size=67108864)
"""

# The same columns as the PostgreSQL table; user and department come from the trace root's
# metadata, as the database exporters copy them.
_EVENTS = """
CREATE TEMP TABLE events AS
WITH raw AS (
    SELECT j FROM lines
    WHERE json_valid(j) AND json_type(j) = 'OBJECT'
      AND j->>'$.trace_id' IS NOT NULL AND j->>'$.event_type' IS NOT NULL
)
SELECT j->>'$.event_id' AS event_id,
       TRY_CAST(regexp_replace(j->>'$.timestamp', '(Z|\\+00:00)$', '') AS TIMESTAMP)
           AS "timestamp",
       j->>'$.event_type' AS event_type, j->>'$.trace_id' AS trace_id,
       max(j->>'$.data.metadata.user_id') OVER (PARTITION BY j->>'$.trace_id') AS user_id,
       max(j->>'$.data.metadata.department') OVER (PARTITION BY j->>'$.trace_id')
           AS department,
       j->>'$.model' AS model, j->>'$.data.provider' AS provider, j->>'$.status' AS status,
       TRY_CAST(j->>'$.cost_usd' AS DOUBLE) AS cost_usd,
       TRY_CAST(j->>'$.tokens_input' AS BIGINT) AS tokens_input,
       TRY_CAST(j->>'$.tokens_output' AS BIGINT) AS tokens_output,
       TRY_CAST(j->>'$.latency_ms' AS DOUBLE) AS latency_ms,
       COALESCE(j->>'$.start_time' IS NOT NULL AND j->>'$.data.trace_root' = 'true', false)
           AS is_root,
       j->>'$.error.type' AS error_type,
       regexp_extract_all(j, '\\[REDACTED_([A-Z0-9_]+)[\\]:]', 1) AS redaction_kinds
FROM raw
"""

# The same markers ``store_records.REDACTION`` counts when a database exporter writes.
_REDACTIONS = """
SELECT kind, count(*) AS n FROM (SELECT unnest(redaction_kinds) AS kind FROM events) AS k
GROUP BY kind
"""


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


class JsonlStore:
    """JSONL files (a file or a directory) read with DuckDB."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.source = os.fspath(path)
        self.files = [str(f) for f in jsonl_files(path)]

    def report(self, *, top: int = 10) -> dict[str, Any]:
        try:
            import duckdb
        except ImportError as exc:
            raise AnalyticsUnavailableError(
                "reading JSONL analytics needs DuckDB: pip install "
                "'llm-audit-langchain[analytics]'") from exc
        con = duckdb.connect()
        try:
            con.execute("SET enable_progress_bar = false")
            if self.files:
                con.execute(_LOAD.format(files=_sql_list(self.files)))
            else:
                con.execute("CREATE TEMP TABLE lines (j VARCHAR)")
            con.execute(_EVENTS)

            def fetch(sql: str) -> list[dict[str, Any]]:
                cursor = con.execute(sql)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

            return sql_report(fetch, "events", _REDACTIONS, top)
        finally:
            con.close()

    def trace_events(self, trace_id: str) -> list[AuditEvent]:
        from ...replay.fixture import load_trace

        return load_trace(self.source, trace_id)

    def events(self, *, since: datetime | None = None, until: datetime | None = None,
               event_types: Collection[str] | None = None) -> Iterator[AuditEvent]:
        """The files' events (corrupt lines skipped), sorted in memory: files hold them in
        the order each process wrote them."""
        from ...replay.reading import scan

        found = list(scan(self.source))
        if since is not None or until is not None:
            traces = {e.trace_id for e in found if in_range(e, since, until)}
            found = [e for e in found if e.trace_id in traces]
        if event_types is not None:
            wanted = set(event_types)
            found = [e for e in found if str(e.event_type) in wanted]
        found.sort(key=lambda e: (e.timestamp, e.event_id))
        return iter(found)

    def close(self) -> None:
        """Nothing stays open between calls."""
