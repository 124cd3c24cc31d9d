"""``MongoExporter``: the audit store in MongoDB, one document per event.

Needs the ``mongo`` extra (``pip install 'llm-audit-langchain[mongo]'``, pymongo).

Documents: ``_id`` is the event id, so a retried batch never duplicates a record (an unordered
``insert_many`` stores the new ones and reports the others as duplicate keys, counted as
``duplicates_skipped``). Times are BSON dates (``timestamp``, ``start_time``); the fields that are
filtered and grouped on are top level (``store_records.TOP_LEVEL``); ``data`` and ``error`` are
sub-documents, with strings over ``max_field_size`` replaced by a marker.

Indexes (created at the first export; creating an existing index is a no-op):
``{user_id: 1, timestamp: -1}``, ``{event_type: 1, timestamp: -1}``, ``{trace_id: 1}`` and
``{timestamp: 1}`` with ``expireAfterSeconds`` = ``retention_days``: the TTL index. A
single-field index serves sorts in both directions, so it is also the "timestamp desc" index;
a second index on the same field would only cost writes. A changed retention is applied to the
existing TTL index with ``collMod``.

Write modes: ``"batched"`` (default) writes with ``w=1``: acknowledged by the primary, not yet
journaled. ``"direct"`` writes with ``w="majority", j=True``: acknowledged once journaled on a
majority of the replica set, so an acknowledged batch survives a failover, at the cost of a
journal commit (and replication round trip) per batch.

The client has its own small pool (``max_pool_size``, default 2: the pipeline writes from one
thread; ``stats()`` may read from another) and connect, socket and server-selection timeouts, so
a slow or absent server fails the call instead of holding the worker, and never takes
connections from the application's own client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError
from ..events import AuditEvent
from .store_kpis import WriteCounters, storage_figures, threshold_levels
from .store_records import (
    DEFAULT_MAX_FIELD_SIZE,
    FieldLimiter,
    LargeFieldMode,
    OwnerBackfill,
    store_records,
)

if TYPE_CHECKING:
    from ..config import AuditConfig

WriteMode = Literal["batched", "direct"]
_INSTALL_HINT = "MongoExporter needs pymongo: pip install 'llm-audit-langchain[mongo]'"
_DUPLICATE_KEY = 11000
_INDEX_OPTIONS_CONFLICT = (85, 86)
INDEXES = (
    ("user_time", [("user_id", 1), ("timestamp", -1)]),
    ("type_time", [("event_type", 1), ("timestamp", -1)]),
    ("trace", [("trace_id", 1)]),
)


def _pymongo() -> Any:
    try:
        import pymongo
    except ImportError as exc:
        raise ConfigError(_INSTALL_HINT) from exc
    return pymongo


def mongo_from_config(config: AuditConfig) -> MongoExporter:
    """``AUDIT_EXPORTER=mongodb``: ``AUDIT_MONGO_URI`` and ``AUDIT_RETENTION_DAYS``."""
    return MongoExporter(config.mongo_uri, retention_days=config.retention_days)


def check_uri(uri: str | None, variable: str = "uri (AUDIT_MONGO_URI)") -> dict[str, Any]:
    """The parsed URI; ``ConfigError`` naming ``variable`` when it cannot be used."""
    if not uri or not isinstance(uri, str):
        raise ConfigError(f"{variable}: a MongoDB URI is required (mongodb://host:27017)")
    pymongo = _pymongo()
    from pymongo.uri_parser import parse_uri

    # A mongodb+srv:// URI would be resolved through DNS here; check its syntax as a plain
    # URI instead, so building the exporter never waits on the network.
    plain = "mongodb://" + uri[len("mongodb+srv://"):] if uri.startswith("mongodb+srv://") else uri
    try:
        parsed: dict[str, Any] = parse_uri(plain)
    except (pymongo.errors.InvalidURI, pymongo.errors.ConfigurationError, ValueError) as exc:
        raise ConfigError(f"{variable}: invalid MongoDB URI: {exc}") from None
    return parsed


class MongoExporter:
    """Write audit events to a MongoDB collection with a TTL index.

    Args:
        uri: ``mongodb://`` or ``mongodb+srv://`` URI (``AUDIT_MONGO_URI``).
        database, collection: where the documents go.
        retention_days: the TTL index removes documents this long after their ``timestamp``;
            ``None`` keeps everything (no TTL index).
        write_mode: ``"batched"`` or ``"direct"`` (see the module doc for their cost).
        max_field_size, large_fields: strings over this many bytes are compressed or truncated.
        timeout_s: connect, socket and server-selection timeout of every call.
        max_pool_size: the client's connection bound.

    Raises ``ConfigError`` for a URI that cannot be parsed or a bad argument; it does not
    connect (pymongo connects in the background; the first export waits at most ``timeout_s``).
    """

    name = "mongodb"

    def __init__(self, uri: str | None, *, database: str = "llm_audit",
                 collection: str = "llm_audit", retention_days: int | None = 90,
                 write_mode: WriteMode = "batched", max_field_size: int = DEFAULT_MAX_FIELD_SIZE,
                 large_fields: LargeFieldMode = "compress", timeout_s: float = 5.0,
                 max_pool_size: int = 2) -> None:
        check_uri(uri)
        if write_mode not in ("batched", "direct"):
            raise ConfigError(f"write_mode: {write_mode!r}; use 'batched' or 'direct'")
        if retention_days is not None and retention_days < 1:
            raise ConfigError(f"AUDIT_RETENTION_DAYS: {retention_days} must be ≥ 1")
        if large_fields not in ("compress", "truncate") or max_field_size < 64:
            raise ConfigError("max_field_size must be ≥ 64 and large_fields compress|truncate")
        if not database or not collection or "$" in database + collection:
            raise ConfigError("database and collection must be non-empty names without '$'")
        self.uri = uri
        self.database_name, self.collection_name = database, collection
        self.retention_days = retention_days
        self.write_mode: WriteMode = write_mode
        self.timeout_s = timeout_s
        self.max_pool_size = max_pool_size
        self.limiter = FieldLimiter(max_field_size, large_fields)
        self.counters = WriteCounters()
        self._owners = OwnerBackfill()
        self._lock = threading.Lock()
        self._client: Any = None
        self._indexes_ready = False
        self._closed = False

    def _collection(self) -> Any:
        pymongo = _pymongo()
        from pymongo.write_concern import WriteConcern

        if self._client is None:
            ms = int(self.timeout_s * 1000)
            self._client = pymongo.MongoClient(
                self.uri, maxPoolSize=self.max_pool_size, connectTimeoutMS=ms,
                socketTimeoutMS=ms, serverSelectionTimeoutMS=ms, waitQueueTimeoutMS=ms,
                tz_aware=True, appname="llm-audit-langchain", retryWrites=False)
        concern = (WriteConcern(w="majority", j=True) if self.write_mode == "direct"
                   else WriteConcern(w=1))
        return self._client[self.database_name].get_collection(
            self.collection_name, write_concern=concern)

    def ensure_indexes(self) -> None:
        """Create the indexes (and set the TTL) if missing; safe to call any number of times."""
        with self._lock:
            self._ensure_indexes(self._collection())

    def _ensure_indexes(self, collection: Any) -> None:
        for name, keys in INDEXES:
            collection.create_index(keys, name=name)
        if self.retention_days is not None:
            self._ensure_ttl(collection, self.retention_days * 86400)
        self._indexes_ready = True

    def _ensure_ttl(self, collection: Any, seconds: int) -> None:
        pymongo = _pymongo()
        try:
            collection.create_index([("timestamp", 1)], name="timestamp_ttl",
                                    expireAfterSeconds=seconds)
        except pymongo.errors.OperationFailure as exc:
            if exc.code not in _INDEX_OPTIONS_CONFLICT:
                raise
        # The index may predate a change of retention: make its TTL the configured one.
        collection.database.command("collMod", collection.name, index={
            "keyPattern": {"timestamp": 1}, "expireAfterSeconds": seconds})

    def export(self, batch: Sequence[AuditEvent]) -> None:
        """Insert ``batch`` (unordered); raises on failure (the pipeline retries)."""
        if self._closed or not batch:
            return
        self.counters.attempt()
        started = time.perf_counter()
        with self._lock:
            try:
                duplicates = self._write(batch)
            except Exception as exc:
                self.counters.failure(exc)
                raise
        self.counters.written(time.perf_counter() - started, len(batch), duplicates)

    def _write(self, batch: Sequence[AuditEvent]) -> int:
        pymongo = _pymongo()
        collection = self._collection()
        if not self._indexes_ready:
            self._ensure_indexes(collection)
        documents = [_document(record) for record in store_records(batch, self.limiter)]
        duplicates = 0
        try:
            collection.insert_many(documents, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
            if other or exc.details.get("writeConcernErrors"):
                raise
            duplicates = len(errors)
        self._backfill_owners(collection, batch)
        return duplicates

    def _backfill_owners(self, collection: Any, batch: Sequence[AuditEvent]) -> None:
        """Events of a trace written before its root (which carries the user) get the user."""
        from pymongo import UpdateMany

        # Only the trace id in the filter: nx-27017 mis-evaluates ``$or`` of ``$ne`` here.
        updates = [UpdateMany({"trace_id": trace_id},
                              {"$set": {"user_id": user_id, "department": department}})
                   for trace_id, (user_id, department) in self._owners.pending(batch).items()]
        if updates:
            collection.bulk_write(updates, ordered=False)
        self._owners.settle(batch)

    def stats(self, *, storage: bool = True) -> dict[str, Any]:
        """Write counters, and (``storage=True``) collection and index size and growth, with
        the warning/critical level each KPI has reached."""
        values: dict[str, Any] = {**self.counters.snapshot(),
                                  "fields_compressed": self.limiter.compressed,
                                  "fields_truncated": self.limiter.truncated}
        if storage:
            values.update(self._storage())
        values["levels"] = threshold_levels(values)
        return values

    def _storage(self) -> dict[str, Any]:
        try:
            collection = self._collection()
            database = collection.database
            coll_stats = database.command("collStats", collection.name)
            # nx-27017's collStats has no index sizes; dbStats has them for the database
            # (the audit collection is normally alone in its database).
            index_size = coll_stats.get("totalIndexSize") or database.command(
                "dbStats").get("indexSize")
            first = collection.find_one({}, {"timestamp": 1}, sort=[("timestamp", 1)])
            last = collection.find_one({}, {"timestamp": 1}, sort=[("timestamp", -1)])
        except Exception as exc:
            return {**storage_figures(None, None, None), "storage_error": str(exc)[:300]}
        days = None
        if first and last:
            days = (_utc(last["timestamp"]) - _utc(first["timestamp"])).total_seconds() / 86400
        return storage_figures(int(coll_stats.get("size") or 0),
                               None if index_size is None else int(index_size), days,
                               rows=int(coll_stats.get("count") or 0))

    def force_flush(self, timeout: float | None = None) -> bool:
        """Nothing is buffered here: every export is acknowledged before returning."""
        return True

    def after_fork(self) -> None:
        """In a forked child: a new client (pymongo clients are not fork-safe) and lock."""
        self._client = None
        self._lock = threading.Lock()

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _document(record: dict[str, Any]) -> dict[str, Any]:
    """The MongoDB document: top-level fields with BSON dates, then data, error, version."""
    document = record.pop("document")
    del record["document_json"]
    record["_id"] = record.pop("event_id")
    record["event_id"] = record["_id"]
    record["event_version"] = document["event_version"]
    record["data"] = document["data"]
    record["error"] = document["error"]
    return record
