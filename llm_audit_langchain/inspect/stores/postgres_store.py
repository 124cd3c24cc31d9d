"""The PostgreSQL back-end: the shared SQL over the table ``PostgresExporter`` writes."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from ...errors import ConfigError
from ...events import AuditEvent
from ...exporters.postgres import check_dsn
from ...exporters.store_records import restore_large_fields
from .base import pick_trace, trace_prefix
from .sql import sql_report


class PostgresStore:
    """Read the audit table; one connection, statements bounded by ``timeout_s``."""

    def __init__(self, dsn: str, *, table: str = "llm_audit", timeout_s: float = 60.0) -> None:
        check_dsn(dsn, "--from")
        if not table.replace("_", "").isalnum() or not table.islower():
            raise ConfigError(f"table: {table!r} is not a lowercase SQL identifier")
        import psycopg

        self.source, self.table = dsn, table
        self._conn = psycopg.connect(
            dsn, autocommit=True, connect_timeout=5, application_name="llm-audit-reader",
            options=f"-c statement_timeout={int(timeout_s * 1000)} -c TimeZone=UTC")

    def _fetch(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self._conn.execute(sql, params)
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def report(self, *, top: int = 10) -> dict[str, Any]:
        # The table has the relation's columns (is_root and error_type are stored, so the
        # queries never read the JSONB document).
        redactions = (f"SELECT r->>'kind' AS kind, CAST(sum(CAST(r->>'count' AS BIGINT)) AS "
                      f"BIGINT) AS n FROM {self.table}, jsonb_array_elements(redactions) AS r "
                      "WHERE redactions IS NOT NULL GROUP BY 1")
        return sql_report(self._fetch, self.table, redactions, top)

    def trace_events(self, trace_id: str) -> list[AuditEvent]:
        prefix = trace_prefix(trace_id)
        found = [r["trace_id"] for r in self._fetch(
            f"SELECT DISTINCT trace_id FROM {self.table} WHERE trace_id LIKE %s LIMIT 6",
            [prefix + "%"])]
        chosen = pick_trace(found, trace_id, self.table)
        rows = self._fetch(f"SELECT document FROM {self.table} WHERE trace_id = %s "
                           "ORDER BY \"timestamp\", event_id", [chosen])
        return [AuditEvent.model_validate(restore_large_fields(r["document"])) for r in rows]

    def events(self, *, since: datetime | None = None, until: datetime | None = None,
               event_types: Collection[str] | None = None) -> Iterator[AuditEvent]:
        """Streamed row by row (the whole result never sits in memory)."""
        where: list[str] = []
        params: list[Any] = []
        bounds = [(op, moment) for op, moment in ((">=", since), ("<=", until)) if moment]
        if bounds:
            where.append(f"trace_id IN (SELECT trace_id FROM {self.table} WHERE " + " AND ".join(
                f'COALESCE(start_time, "timestamp") {op} %s' for op, _ in bounds) + ")")
            params += [moment for _, moment in bounds]
        if event_types is not None:
            where.append("event_type = ANY(%s)")
            params.append(list(event_types))
        sql = (f"SELECT document FROM {self.table}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + ' ORDER BY "timestamp", event_id')
        for (document,) in self._conn.cursor().stream(sql, params):
            yield AuditEvent.model_validate(restore_large_fields(document))

    def close(self) -> None:
        self._conn.close()
