"""Reading a store back: one analytics report and one trace reader over three back-ends.

    store = open_store("logs")                                  # JSONL files, DuckDB
    store = open_store("postgresql://audit@db/llm", table="llm_audit")
    store = open_store("mongodb://db:27017/llm_audit", table="llm_audit")
    report = store.report(top=10)       # the same keys and answers whatever the back-end
    events = store.trace_events("4bf92f35")   # one trace (a unique id prefix is enough)
    store.close()

The report's definitions are in ``report.py``; the SQL shared by DuckDB and PostgreSQL is in
``sql.py``; MongoDB's aggregation, with the one place that works around servers that ignore
``$percentile``, is in ``mongo_store.py``.
"""

from __future__ import annotations

from ...events import AuditEvent
from .base import AuditStore, is_store_uri

__all__ = ["AuditStore", "is_store_uri", "open_store", "read_trace"]


def open_store(source: str, *, table: str = "llm_audit") -> AuditStore:
    """The back-end for ``source``: a database URI, else a JSONL file or directory.
    ``table`` is the PostgreSQL table or MongoDB collection (the URI's path names the
    MongoDB database, ``llm_audit`` by default)."""
    if source.startswith(("mongodb://", "mongodb+srv://")):
        from .mongo_store import MongoStore

        return MongoStore(source, collection=table)
    if source.startswith(("postgresql://", "postgres://")):
        from .postgres_store import PostgresStore

        return PostgresStore(source, table=table)
    from .jsonl_store import JsonlStore

    return JsonlStore(source)


def read_trace(source: str, trace_id: str, *, table: str = "llm_audit") -> list[AuditEvent]:
    """One trace's events from a store URI or a JSONL file/directory (``open_store``), the
    connection closed afterwards. ``TraceNotFoundError`` when no (or several) traces match."""
    store = open_store(source, table=table)
    try:
        return store.trace_events(trace_id)
    finally:
        store.close()
