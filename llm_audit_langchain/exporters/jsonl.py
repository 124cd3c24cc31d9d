"""``JsonlExporter``: one JSON object per line in ``DIR/audit-YYYY-MM-DD.jsonl`` (UTC date).

Each batch is written with a single ``os.write`` on an ``O_APPEND`` descriptor, under a lock, so
lines never interleave, whatever the number of threads or handlers writing to the directory.
Every line parses with ``jq``. A value that JSON cannot represent is written as its ``repr``
and counted, never lost with the rest of the line; a string that UTF-8 cannot hold (a lone
surrogate from ``surrogateescape``) is written ``\\u``-escaped.

After faults (faults.py): a torn last line left by a crash is moved aside when the file is
opened; a write cut short by a full disk is taken back, so a batch is on disk whole or not at all
and its retry never duplicates; a file deleted or rotated away (or its whole directory) is noticed
before the next write and created again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError
from ..events import AuditEvent, ErrorDetail, event_to_dict
from .faults import AppendFile

logger = logging.getLogger("llm_audit_langchain")


class JsonlExporter:
    """Append events to daily JSONL files.

    Args:
        directory: created when the exporter is built; ``ConfigError`` names it when it cannot
            be created or written (a file in the way, no permission).
        fsync: ``os.fsync`` after every batch (durable across power loss, slower).
        prefix: file name prefix; files are ``{prefix}YYYY-MM-DD.jsonl``.
    """

    name = "jsonl"

    def __init__(self, directory: str | os.PathLike[str] = "logs", *, fsync: bool = False,
                 prefix: str = "audit-") -> None:
        self.directory = writable_directory(Path(directory), "JsonlExporter")
        self.fsync = fsync
        self.prefix = prefix
        self.unserializable = 0
        self._lock = threading.Lock()
        self._files: dict[str, AppendFile] = {}
        self._landed: set[str] = set()  # ids written by an export that then failed on a later day
        self._closed = False

    def path_for(self, when: datetime) -> Path:
        """The file that holds events stamped ``when`` (UTC day)."""
        return self.directory / f"{self.prefix}{_utc_day(when)}.jsonl"

    def export(self, batch: Sequence[AuditEvent]) -> None:
        by_day: dict[str, list[AuditEvent]] = {}
        for event in batch:
            by_day.setdefault(_utc_day(event.timestamp), []).append(event)
        with self._lock:
            if self._closed:
                return
            if self._landed:  # only this batch's ids matter: a batch given up is forgotten
                self._landed.intersection_update(event.event_id for event in batch)
            if len(by_day) == 1 and not self._landed:  # the common case: nothing to track
                for day, events in by_day.items():
                    self._append(day, b"".join(map(self._line, events)))
                return
            for day, events in by_day.items():
                # A retried batch whose earlier days were written: only the rest goes out.
                todo = [event for event in events if event.event_id not in self._landed]
                if todo:
                    self._append(day, b"".join(self._line(event) for event in todo))
                    self._landed.update(event.event_id for event in todo)
            self._landed.clear()

    def _line(self, event: AuditEvent) -> bytes:
        try:
            if not _finite(event.latency_ms) or not _finite(event.cost_usd):
                raise ValueError("non-finite number")
            # orjson: ~15x faster than json.dumps. It writes NaN/Infinity inside ``data`` as
            # null (strict JSON); through the pipeline the sanitizer has already marked them.
            fields = _plain_fields(event)
            if fields is not None:  # the handler's own events: no copy into a new dict
                return orjson.dumps(fields, option=_UTC_Z) + b"\n"
            return orjson.dumps(event_to_dict(event)) + b"\n"
        except (TypeError, ValueError, RecursionError, orjson.JSONEncodeError):
            record = event_to_dict(event)
            self.unserializable += 1
            if self.unserializable == 1:
                logger.warning("JsonlExporter: event %s had values JSON cannot represent; "
                               "they are written as strings (counted in .unserializable)",
                               event.event_id)
            text = json.dumps(json_safe(record), **_DUMPS) + "\n"
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: escaped, so the line is still JSON
                return (json.dumps(json_safe(record), **_ASCII_DUMPS) + "\n").encode("ascii")

    def _append(self, day: str, payload: bytes) -> None:
        path = self.directory / f"{self.prefix}{day}.jsonl"
        open_file = self._files.get(day)
        if open_file is not None and not open_file.still_at(path):
            open_file.close()  # deleted or rotated away: writing on would write into nothing
            del self._files[day]
            open_file = None
        if open_file is None:
            self._close_all()  # a new UTC day (or a new file): the old one is done
            self.directory.mkdir(parents=True, exist_ok=True)
            open_file = AppendFile.open(path)
            self._files[day] = open_file
        open_file.append_whole(payload, fsync=self.fsync)

    def _close_all(self) -> None:
        for open_file in self._files.values():
            open_file.close()
        self._files.clear()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been held at fork time)."""
        self._lock = threading.Lock()

    def force_flush(self, timeout: float | None = None) -> bool:
        with self._lock:
            for open_file in self._files.values():
                os.fsync(open_file.fd)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            self._close_all()


def writable_directory(directory: Path, who: str) -> Path:
    """``directory``, created if missing; ``ConfigError`` naming it if it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{who}: {str(directory)!r} exists and is not a directory "
                          f"(check AUDIT_LOG_DIR)") from None
    except OSError as exc:
        raise ConfigError(f"{who}: cannot create directory {str(directory)!r}: "
                          f"{exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"{who}: directory {str(directory)!r} is not writable")
    return directory


_DUMPS: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
_ASCII_DUMPS: dict[str, Any] = {**_DUMPS, "ensure_ascii": True}


_UTC_Z = orjson.OPT_UTC_Z
_EVENT_FIELDS = len(AuditEvent.model_fields)
_ERROR_FIELDS = len(ErrorDetail.model_fields)


def _plain_fields(event: AuditEvent) -> dict[str, Any] | None:
    """The event's own ``__dict__`` when serialising it as it is gives exactly
    ``event_to_dict``'s JSON: a plain ``AuditEvent`` holding its declared fields and nothing
    else (a subclass or ``model_copy(update=...)`` may add keys the sanitizer never saw), UTC
    times (orjson writes them as ``Z``, as ``event_to_dict`` does) and no error or a plain
    ``ErrorDetail``. Anything else: None, and the caller takes ``event_to_dict``."""
    fields = event.__dict__
    if type(event) is not AuditEvent or len(fields) != _EVENT_FIELDS:
        return None
    start = fields["start_time"]
    if fields["timestamp"].tzinfo is not UTC or (start is not None and start.tzinfo is not UTC):
        return None
    error = fields["error"]
    if error is None:
        return fields
    if type(error) is not ErrorDetail or len(error.__dict__) != _ERROR_FIELDS:
        return None
    return {**fields, "error": error.__dict__}


def _utc_day(when: datetime) -> str:
    """``YYYY-MM-DD`` of ``when`` in UTC (event timestamps are UTC: no conversion then)."""
    return (when if when.tzinfo is UTC else when.astimezone(UTC)).date().isoformat()


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _text(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def json_safe(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """A copy of ``value`` that strict JSON can hold: string keys, no NaN/Infinity, no cycles;
    anything else becomes its ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _text(value)
    if _depth > 64 or id(value) in _seen:
        return "<cycle>" if id(value) in _seen else "<too deep>"
    seen = _seen | {id(value)}
    if isinstance(value, dict):
        return {k if isinstance(k, str) else _text(k): json_safe(v, _depth + 1, seen)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, _depth + 1, seen) for v in value]
    return _text(value)
