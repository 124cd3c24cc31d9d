"""Read recorded events back from JSONL files: a file or a directory, corrupt lines counted.

Every reader in the package (``ReplayFixture``, ``replay_trace``, ``llm-audit``) goes through
:func:`scan`, so they agree on which files a directory holds and on what a corrupt line is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..events import AuditEvent

CHAIN_PREFIX = "audit-chain-"
_MAX_REPORTED = 20


@dataclass(frozen=True)
class CorruptLine:
    """A line that is not a valid audit event (1-based line number)."""

    file: str
    line: int
    reason: str


@dataclass
class ScanStats:
    """What a scan read: files, lines, events, and the corrupt lines it skipped."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    events: int = 0
    corrupt: int = 0
    corrupt_lines: list[CorruptLine] = field(default_factory=list)  # the first 20

    def add_corrupt(self, file: str, line: int, reason: str) -> None:
        """Count a corrupt line (and keep its place, for the first few)."""
        self.corrupt += 1
        if len(self.corrupt_lines) < _MAX_REPORTED:
            self.corrupt_lines.append(CorruptLine(file, line, reason))

    def as_dict(self) -> dict[str, Any]:
        """JSON form, for ``--json`` output."""
        return {"files": self.files, "lines": self.lines, "events": self.events,
                "corrupt": self.corrupt,
                "corrupt_lines": [vars(c) for c in self.corrupt_lines]}


def jsonl_files(path: str | os.PathLike[str]) -> list[Path]:
    """The event files at ``path``: the file itself, or a directory's ``*.jsonl`` files in name
    order (the daily names sort by date). A directory's hash-chained ``audit-chain-*`` files are
    read only when it holds nothing else, so a directory with both is not counted twice.

    Raises ``FileNotFoundError`` when ``path`` does not exist.
    """
    target = Path(path)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise FileNotFoundError(f"no such file or directory: {target}")
    files = sorted(p for p in target.glob("*.jsonl") if p.is_file())
    plain = [p for p in files if not p.name.startswith(CHAIN_PREFIX)]
    return plain or files


def scan_records(
    path: str | os.PathLike[str],
    stats: ScanStats | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each line's JSON object, in file order; skip and count what does not parse.

    ``keep`` is a cheap pre-filter on the raw line (e.g. ``lambda line: trace_id in line``):
    lines it rejects are not parsed, so corrupt lines among them are not counted.
    """
    stats = stats if stats is not None else ScanStats()
    for file in jsonl_files(path):
        stats.files.append(str(file))
        with open(file, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                stats.lines += 1
                text = raw.decode("utf-8", "replace").strip()
                if not text or (keep is not None and not keep(text)):
                    continue
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    stats.add_corrupt(str(file), number, f"not JSON: {getattr(exc, 'msg', exc)}")
                    continue
                if not isinstance(record, dict) or "event_type" not in record:
                    stats.add_corrupt(str(file), number, "not an audit event")
                    continue
                record["_where"] = (str(file), number)
                yield record


def scan(
    path: str | os.PathLike[str],
    stats: ScanStats | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
) -> Iterator[AuditEvent]:
    """Yield every valid :class:`AuditEvent` at ``path``, in file order; corrupt lines (not JSON,
    or not a valid event) are skipped and counted in ``stats``."""
    stats = stats if stats is not None else ScanStats()
    for record in scan_records(path, stats, keep=keep):
        where = record.pop("_where")
        try:
            event = AuditEvent.model_validate(record)
        except ValidationError as exc:
            stats.add_corrupt(where[0], where[1], f"invalid event: {_first_error(exc)}")
            continue
        stats.events += 1
        yield event


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    place = ".".join(str(p) for p in error.get("loc", ()))
    return f"{place}: {error.get('msg')}" if place else str(error.get("msg"))


def in_trace_order(events: list[AuditEvent]) -> list[AuditEvent]:
    """Events by the time they were recorded (end time for spans), file order among equals."""
    return sorted(events, key=lambda e: e.timestamp)
