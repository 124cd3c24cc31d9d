"""``PostgresExporter``: the audit store in PostgreSQL, one row per event, partitioned by month.

Needs the ``postgres`` extra (``pip install 'llm-audit-langchain[postgres]'``, psycopg 3).

The table (created at the first export, idempotently, under an advisory lock)::

    event_id text, "timestamp" timestamptz, start_time timestamptz, event_type text,
    trace_id, span_id, parent_span_id, run_id, user_id, department, thread_id, agent,
    action, node, model, provider, status text, cost_usd float8, tokens_input/output int8,
    latency_ms float8, is_root bool, error_type text, redactions jsonb,
    document jsonb                          -- the whole event, large fields marked
    PRIMARY KEY (event_id, "timestamp")     PARTITION BY RANGE ("timestamp"), one per month

The primary key makes a retried batch harmless: rows already stored are skipped
(``ON CONFLICT DO NOTHING``) and counted as ``duplicates_skipped``. PostgreSQL requires the
partition key in a partitioned table's primary key; an event's timestamp never changes, so
``(event_id, timestamp)`` is as unique as the event id.

Indexes: BRIN on time (tiny, fits append-only time series), btree on (user_id, time desc),
(event_type, time desc) and trace_id, and GIN (``jsonb_path_ops``) on the document's ``data``
for containment searches (``document->'data' @> '{"provider": "openai"}'``).

Retention drops whole monthly partitions older than ``retention_days`` (never row-by-row
deletes): at the first export, then at most every ``retention_interval_s``, or on demand with
:meth:`PostgresExporter.apply_retention` (a cron job can call it).

Write modes: ``"batched"`` (default) commits each pipeline batch with ``synchronous_commit = off``:
the server acknowledges before the WAL reaches disk, so a crash of the database server can lose
its last few hundred milliseconds of commits (never corrupt them). ``"direct"`` commits with
``synchronous_commit = on`` (and waits for synchronous standbys when the server has them): an
acknowledged batch survives a server crash, at the cost of one WAL flush per batch.

One connection, used only by the pipeline's worker thread: the store can never take more than
one connection of the server's ``max_connections`` from the application's own pool. Connect and
statement timeouts bound every call; a failure closes the connection, raises into the pipeline
(which backs off and retries the batch) and the next export reconnects.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ..errors import ConfigError
from ..events import AuditEvent
from .store_kpis import WriteCounters, storage_figures, threshold_levels
from .store_records import (
    DEFAULT_MAX_FIELD_SIZE,
    TOP_LEVEL,
    FieldLimiter,
    LargeFieldMode,
    OwnerBackfill,
    month_start,
    store_records,
)

if TYPE_CHECKING:
    from ..config import AuditConfig

WriteMode = Literal["batched", "direct"]
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_PARTITION = re.compile(r"_p(\d{4})(\d{2})$")
_INSTALL_HINT = "PostgresExporter needs psycopg 3: pip install 'llm-audit-langchain[postgres]'"

_COLUMNS = """
    event_id text NOT NULL, "timestamp" timestamptz NOT NULL, start_time timestamptz,
    event_type text NOT NULL, trace_id text NOT NULL, span_id text NOT NULL,
    parent_span_id text, run_id text, user_id text, department text, thread_id text,
    agent text, action text, node text, model text, provider text, status text,
    cost_usd double precision, tokens_input bigint, tokens_output bigint,
    latency_ms double precision, is_root boolean NOT NULL DEFAULT false, error_type text,
    redactions jsonb, document jsonb NOT NULL,
    PRIMARY KEY (event_id, "timestamp")
"""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError(_INSTALL_HINT) from exc
    return psycopg


def check_dsn(dsn: str | None, variable: str = "dsn (AUDIT_POSTGRES_DSN)") -> dict[str, Any]:
    """The DSN's parameters; ``ConfigError`` naming ``variable`` when it cannot be parsed."""
    if not dsn or not isinstance(dsn, str):
        raise ConfigError(f"{variable}: a PostgreSQL DSN is required "
                          "(postgresql://user@host:5432/db or 'host=... dbname=...')")
    psycopg = _psycopg()
    try:
        params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(f"{variable}: invalid PostgreSQL DSN: {exc}") from None
    return params


def postgres_from_config(config: AuditConfig) -> PostgresExporter:
    """``AUDIT_EXPORTER=postgres``: ``AUDIT_POSTGRES_DSN`` and ``AUDIT_RETENTION_DAYS``."""
    return PostgresExporter(config.postgres_dsn, retention_days=config.retention_days)


def partition_name(table: str, month: datetime) -> str:
    """``{table}_pYYYYMM``: the partition holding ``month``."""
    return f"{table}_p{month.year:04d}{month.month:02d}"


def _next_month(month: datetime) -> datetime:
    return (month + timedelta(days=32)).replace(day=1)


class PostgresExporter:
    """Write audit events to a PostgreSQL table partitioned by month.

    Args:
        dsn: libpq connection string or ``postgresql://`` URI (``AUDIT_POSTGRES_DSN``).
        table: table name (lowercase identifier); partitions are ``{table}_pYYYYMM``.
        retention_days: partitions wholly older than this are dropped; ``None`` keeps all.
        write_mode: ``"batched"`` or ``"direct"`` (see the module doc for their cost).
        max_field_size: strings over this many bytes are compressed or truncated, with a marker.
        large_fields: ``"compress"`` (zlib, falls back to truncating) or ``"truncate"``.
        connect_timeout_s, statement_timeout_s: bound every connection attempt and statement.
        gin_index: index the document's ``data`` for JSONB containment searches.

    Raises ``ConfigError`` for a DSN that cannot be parsed or a bad argument; it does not
    connect (the first export does, on the worker thread).
    """

    name = "postgres"

    def __init__(self, dsn: str | None, *, table: str = "llm_audit",
                 retention_days: int | None = 90, write_mode: WriteMode = "batched",
                 max_field_size: int = DEFAULT_MAX_FIELD_SIZE,
                 large_fields: LargeFieldMode = "compress", connect_timeout_s: float = 5.0,
                 statement_timeout_s: float = 10.0, gin_index: bool = True,
                 retention_interval_s: float = 3600.0) -> None:
        self._params = check_dsn(dsn)
        if not _IDENTIFIER.match(table):
            raise ConfigError(f"table: {table!r} is not a lowercase SQL identifier")
        if write_mode not in ("batched", "direct"):
            raise ConfigError(f"write_mode: {write_mode!r}; use 'batched' or 'direct'")
        if retention_days is not None and retention_days < 1:
            raise ConfigError(f"AUDIT_RETENTION_DAYS: {retention_days} must be ≥ 1")
        if large_fields not in ("compress", "truncate") or max_field_size < 64:
            raise ConfigError("max_field_size must be ≥ 64 and large_fields compress|truncate")
        self.dsn = dsn
        self.table = table
        self.retention_days = retention_days
        self.write_mode: WriteMode = write_mode
        self.gin_index = gin_index
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.retention_interval_s = retention_interval_s
        self.limiter = FieldLimiter(max_field_size, large_fields)
        self.counters = WriteCounters()
        self._owners = OwnerBackfill()
        self.dropped_partitions: list[str] = []
        self._lock = threading.Lock()
        self._conn: Any = None
        self._schema_ready = False
        self._partitions: set[str] = set()
        self._next_retention = 0.0
        self._closed = False

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> Any:
        psycopg = _psycopg()
        timeout_ms = int(self.statement_timeout_s * 1000)
        return psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, round(self.connect_timeout_s)),
            application_name="llm-audit-langchain",
            options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            # A server that stops answering mid-write fails the call instead of hanging it.
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            tcp_user_timeout=timeout_ms)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            if self._schema_ready:
                self._create_stage(self._conn)
        return self._conn

    def _create_stage(self, conn: Any) -> None:
        """The per-connection table each batch is COPied into before the idempotent insert."""
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS llm_audit_stage "
                     f"(LIKE {self.table}_template) ON COMMIT DELETE ROWS")

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                conn.close()

    # -- schema -----------------------------------------------------------------------------

    def ensure_schema(self, months_ahead: int = 0) -> None:
        """Create the table, its indexes, this month's partition and ``months_ahead`` more if
        missing (idempotent). An administrator can run it so that the writing role needs no
        ``CREATE`` privilege until the next month without a partition."""
        with self._lock:
            self._ensure_schema()
            month = month_start(datetime.now(UTC))
            for _ in range(months_ahead):
                month = _next_month(month)
                self._ensure_partition(month)

    def _ensure_schema(self) -> None:
        conn = self._connection()
        t = self.table
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT "
                              "NULL", [t, f"{t}_template"]).fetchone()[0]
        statements = [
            f"CREATE TABLE IF NOT EXISTS {t} ({_COLUMNS}) PARTITION BY RANGE (\"timestamp\")",
            # A plain table with the same columns: the per-connection COPY staging table is
            # created LIKE it (LIKE a partitioned table would copy its partitioning).
            f"CREATE TABLE IF NOT EXISTS {t}_template ({_COLUMNS})",
            f"CREATE INDEX IF NOT EXISTS {t}_time_brin ON {t} USING brin (\"timestamp\")",
            f"CREATE INDEX IF NOT EXISTS {t}_user_time ON {t} (user_id, \"timestamp\" DESC)",
            f"CREATE INDEX IF NOT EXISTS {t}_type_time ON {t} (event_type, \"timestamp\" DESC)",
            f"CREATE INDEX IF NOT EXISTS {t}_trace ON {t} (trace_id)",
        ]
        if self.gin_index:
            statements.append(f"CREATE INDEX IF NOT EXISTS {t}_data_gin ON {t} "
                              "USING gin ((document->'data') jsonb_path_ops)")
        try:
            with conn.transaction():
                # Several processes may start at once: one creates, the others find it done.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"llm_audit:{t}"])
                for statement in statements:
                    conn.execute(statement)
        except _psycopg().errors.InsufficientPrivilege:
            if not exists:
                raise
            # Provisioned by an administrator; this role may only write (its indexes are
            # whatever the administrator created).
        self._create_stage(conn)
        self._schema_ready = True
        self._ensure_partition(month_start(datetime.now(UTC)))

    def _ensure_partition(self, month: datetime) -> None:
        name = partition_name(self.table, month)
        if name in self._partitions:
            return
        conn = self._connection()
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]:
            self._partitions.add(name)
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"llm_audit:{name}"])
            # DDL takes no parameters; both bounds are dates this code formats.
            conn.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {self.table} FOR "
                         f"VALUES FROM ('{month.isoformat()}') "
                         f"TO ('{_next_month(month).isoformat()}')")
        self._partitions.add(name)

    # -- retention --------------------------------------------------------------------------

    def partitions(self) -> list[str]:
        """The table's partitions, oldest first."""
        with self._lock:
            return self._partition_names()

    def _partition_names(self) -> list[str]:
        rows = self._connection().execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname", [self.table]).fetchall()
        return [row[0] for row in rows]

    def apply_retention(self, now: datetime | None = None, *, dry_run: bool = False
                        ) -> list[str]:
        """Drop every partition whose whole month is older than ``retention_days``; returns the
        dropped names (with ``dry_run``, the names it would drop). A partition is dropped only
        once all its events have expired."""
        if self.retention_days is None:
            return []
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.retention_days)
        with self._lock:
            if not self._schema_ready:
                self._ensure_schema()
            expired = []
            for name in self._partition_names():
                found = _PARTITION.search(name)
                if found is None:
                    continue
                start = datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC)
                if _next_month(start) <= cutoff:
                    expired.append(name)
            if dry_run:
                return expired
            for name in expired:
                self._connection().execute(f"DROP TABLE IF EXISTS {name}")
                self._partitions.discard(name)
            self.dropped_partitions.extend(expired)
            return expired

    # -- export -----------------------------------------------------------------------------

    def export(self, batch: Sequence[AuditEvent]) -> None:
        """Write ``batch`` in one transaction; raises on failure (the pipeline retries)."""
        if self._closed or not batch:
            return
        self.counters.attempt()
        started = time.perf_counter()
        with self._lock:
            try:
                duplicates = self._write(batch)
            except Exception as exc:
                self.counters.failure(exc)
                self._discard_connection()
                raise
        self.counters.written(time.perf_counter() - started, len(batch), duplicates)
        if self.retention_days is not None and time.monotonic() >= self._next_retention:
            self._next_retention = time.monotonic() + self.retention_interval_s
            try:
                self.apply_retention()
            except Exception as exc:  # the batch is stored; retention runs again next time
                self.counters.last_error = f"retention: {type(exc).__name__}: {exc}"[:500]
                with self._lock:
                    self._discard_connection()

    def _write(self, batch: Sequence[AuditEvent]) -> int:
        if not self._schema_ready:
            self._ensure_schema()
        records = store_records(batch, self.limiter)
        for month in {month_start(r["timestamp"].astimezone(UTC)) for r in records}:
            self._ensure_partition(month)
        conn = self._connection()
        commit = "on" if self.write_mode == "direct" else "off"
        columns = ", ".join(f'"{c}"' for c in TOP_LEVEL) + ", document"
        with conn.transaction():
            conn.execute(f"SET LOCAL synchronous_commit = {commit}")
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY llm_audit_stage ({columns}) FROM STDIN") as copy:
                    for record in records:
                        copy.write_row(_row(record))
                cursor.execute(f"INSERT INTO {self.table} ({columns}) SELECT {columns} "
                               "FROM llm_audit_stage ON CONFLICT DO NOTHING")
                inserted: int = cursor.rowcount
                self._backfill_owners(cursor, batch)
        self._owners.settle(batch)
        return len(records) - max(0, inserted)

    def _backfill_owners(self, cursor: Any, batch: Sequence[AuditEvent]) -> None:
        """Events of a trace written before its root (which carries the user) get the user."""
        owners = self._owners.pending(batch)
        if not owners:
            return
        traces = list(owners)
        cursor.execute(
            f"UPDATE {self.table} AS t SET user_id = o.user_id, department = o.department "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) AS o(trace_id, user_id, department)"
            " WHERE t.trace_id = o.trace_id AND (t.user_id IS DISTINCT FROM o.user_id"
            " OR t.department IS DISTINCT FROM o.department)",
            [traces, [owners[t][0] for t in traces], [owners[t][1] for t in traces]])

    # -- KPIs -------------------------------------------------------------------------------

    def stats(self, *, storage: bool = True) -> dict[str, Any]:
        """Write counters, and (``storage=True``) table and index size and growth, with the
        warning/critical level each KPI has reached. Opens its own short connection."""
        values = {**self.counters.snapshot(), **self.limiter_counts(),
                  "dropped_partitions": list(self.dropped_partitions)}
        if storage:
            values.update(self._storage())
        values["levels"] = threshold_levels(values)
        return values

    def limiter_counts(self) -> dict[str, int]:
        return {"fields_compressed": self.limiter.compressed,
                "fields_truncated": self.limiter.truncated}

    def _storage(self) -> dict[str, Any]:
        try:
            with self._connect() as conn:
                size, index_size = conn.execute(
                    "SELECT coalesce(sum(pg_table_size(inhrelid)), 0), "
                    "coalesce(sum(pg_indexes_size(inhrelid)), 0) FROM pg_inherits "
                    "WHERE inhparent = to_regclass(%s)", [self.table]).fetchone()
                rows, days = conn.execute(
                    f"SELECT count(*), extract(epoch FROM max(\"timestamp\") - "
                    f"min(\"timestamp\")) / 86400.0 FROM {self.table}").fetchone()
        except Exception as exc:
            return {**storage_figures(None, None, None), "storage_error": str(exc)[:300]}
        return storage_figures(int(size), int(index_size), float(days or 0.0), rows=rows)

    # -- protocol ---------------------------------------------------------------------------

    def force_flush(self, timeout: float | None = None) -> bool:
        """Nothing is buffered here: every export commits before returning."""
        return True

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connection and lock."""
        self._conn = None
        self._lock = threading.Lock()

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            self._discard_connection()


_REDACTIONS = TOP_LEVEL.index("redactions")


def _row(record: dict[str, Any]) -> tuple[Any, ...]:
    encoded = record["document_json"] or orjson.dumps(record["document"])
    document = encoded.decode("utf-8")
    values = [record[c] for c in TOP_LEVEL]
    if values[_REDACTIONS] is not None:
        values[_REDACTIONS] = orjson.dumps(values[_REDACTIONS]).decode("ascii")
    # PostgreSQL text and jsonb cannot hold NUL characters; the document holds every text
    # value of the row, so one look at it says whether any needs replacing.
    if "\\u0000" in document:
        document = document.replace("\\u0000", "\\ufffd")
        values = [v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values]
    values.append(document)
    return tuple(values)
