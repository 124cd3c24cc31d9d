"""Context versions read back: what the agent knew at a given time, and how it came to be.

``AuditedCheckpointSaver`` records every LangGraph checkpoint as a ``context.version`` event.
:class:`ContextHistory` answers the two questions of context versioning from those records
alone (JSONL directories or hash-chained audit directories, one or several):

* :meth:`ContextHistory.context_at` — the version of a thread's context in force at a time;
* :meth:`ContextHistory.lineage` — a version's ancestry, from the thread's first checkpoint.

It also maps each LangGraph task to the checkpoint it ran from (``task_checkpoints``), which is
how a decision made inside a task is tied to its exact context version. Example::

    history = ContextHistory.load("logs")
    version = history.context_at("thread-42", "2026-12-02T10:15:00Z")
    [v.checkpoint_id for v in history.lineage(version.checkpoint_id)]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..events import AuditEvent, AuditEventType
from ..replay.reading import scan

PathLike = str | os.PathLike[str]
When = datetime | str | float | int


def load_events(*sources: PathLike) -> list[AuditEvent]:
    """Every event in ``sources`` (files or directories, JSONL or audit chain), each event once
    (the same event in a JSONL log and in the chain is read once), in time order."""
    seen: set[str] = set()
    events: list[AuditEvent] = []
    for source in sources:
        for event in scan(source):
            if event.event_id not in seen:
                seen.add(event.event_id)
                events.append(event)
    events.sort(key=lambda e: e.timestamp)
    return events


def as_datetime(when: When) -> datetime:
    """A UTC datetime from a datetime, an ISO 8601 string or seconds since the epoch."""
    if isinstance(when, datetime):
        value = when
    elif isinstance(when, int | float):
        value = datetime.fromtimestamp(when, UTC)
    else:
        value = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ContextVersion:
    """One recorded checkpoint: a version of a thread's context."""

    checkpoint_id: str
    thread_id: str
    checkpoint_ns: str
    parent_checkpoint_id: str | None
    timestamp: datetime
    step: int | None
    source: str | None
    changed_channels: list[str]
    changed_by: list[str]
    state_hash: str | None
    change_description: Any
    trace_id: str
    event_id: str

    @classmethod
    def from_event(cls, event: AuditEvent) -> ContextVersion:
        """The version an ``context.version`` (``kind == "checkpoint"``) event records."""
        data = event.data
        return cls(
            checkpoint_id=str(data.get("checkpoint_id")), thread_id=str(data.get("thread_id")),
            checkpoint_ns=str(data.get("checkpoint_ns") or ""),
            parent_checkpoint_id=data.get("parent_checkpoint_id"), timestamp=event.timestamp,
            step=data.get("step"), source=data.get("source"),
            changed_channels=list(data.get("changed_channels") or ()),
            changed_by=list(data.get("changed_by") or ()), state_hash=data.get("state_hash"),
            change_description=data.get("change_description"), trace_id=event.trace_id,
            event_id=event.event_id,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        values = dict(vars(self))
        values["timestamp"] = self.timestamp.isoformat()
        return values


class ContextHistory:
    """The context versions and task writes recorded in a set of events."""

    def __init__(self, events: Iterable[AuditEvent]) -> None:
        self.versions: dict[str, ContextVersion] = {}
        self.task_checkpoints: dict[str, str] = {}
        """LangGraph task id -> the checkpoint it ran from (its decisions' context version)."""
        self.writes: list[AuditEvent] = []
        for event in events:
            if event.event_type != AuditEventType.CONTEXT_VERSION:
                continue
            kind = event.data.get("kind")
            if kind == "checkpoint":
                version = ContextVersion.from_event(event)
                self.versions.setdefault(version.checkpoint_id, version)
            elif kind == "writes":
                self.writes.append(event)
                task, checkpoint = event.data.get("task_id"), event.data.get("checkpoint_id")
                if isinstance(task, str) and isinstance(checkpoint, str):
                    self.task_checkpoints.setdefault(task, checkpoint)

    @classmethod
    def load(cls, *sources: PathLike) -> ContextHistory:
        """The history recorded in JSONL or audit-chain files/directories."""
        return cls(load_events(*sources))

    def thread(self, thread_id: str, checkpoint_ns: str = "") -> list[ContextVersion]:
        """A thread's versions, oldest first."""
        found = [v for v in self.versions.values()
                 if v.thread_id == str(thread_id) and v.checkpoint_ns == checkpoint_ns]
        return sorted(found, key=lambda v: (v.timestamp, v.step if v.step is not None else 0))

    def context_at(self, thread_id: str, when: When, checkpoint_ns: str = ""
                   ) -> ContextVersion | None:
        """The version of ``thread_id``'s context in force at ``when``: the last one made at or
        before it (None when the thread had no checkpoint yet)."""
        moment = as_datetime(when)
        earlier = [v for v in self.thread(thread_id, checkpoint_ns) if v.timestamp <= moment]
        return earlier[-1] if earlier else None

    def lineage(self, checkpoint_id: str) -> list[ContextVersion]:
        """``checkpoint_id`` and its ancestors, oldest first (the thread's first checkpoint
        first). Stops where a parent was not recorded; empty for an unknown id."""
        chain: list[ContextVersion] = []
        seen: set[str] = set()
        current = self.versions.get(checkpoint_id)
        while current is not None and current.checkpoint_id not in seen:
            seen.add(current.checkpoint_id)
            chain.append(current)
            parent = current.parent_checkpoint_id
            current = self.versions.get(parent) if parent else None
        return list(reversed(chain))

    def version_of_task(self, task_id: str | None) -> ContextVersion | None:
        """The version a LangGraph task ran from (None when it was not recorded)."""
        checkpoint = self.task_checkpoints.get(task_id) if task_id else None
        return self.versions.get(checkpoint) if checkpoint else None


def context_at(thread_id: str, when: When, *sources: PathLike) -> ContextVersion | None:
    """The version of ``thread_id``'s context in force at ``when``, from recorded files."""
    return ContextHistory.load(*sources).context_at(thread_id, when)


def lineage(checkpoint_id: str, *sources: PathLike) -> list[ContextVersion]:
    """A recorded checkpoint and its ancestors, oldest first, from recorded files."""
    return ContextHistory.load(*sources).lineage(checkpoint_id)
