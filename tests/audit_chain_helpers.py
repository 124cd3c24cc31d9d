"""Builders shared by the audit-chain tests: events, and the line surgery a tamperer would do."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from llm_audit_langchain.audit import AuditLogExporter
from llm_audit_langchain.events import AuditEvent, AuditEventType


def make_event(
    *,
    timestamp: datetime | None = None,
    event_type: AuditEventType = AuditEventType.TOOL_CALL,
    agent: str = "agent",
    action: str = "lookup",
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> AuditEvent:
    return AuditEvent(
        event_id=uuid4().hex,
        trace_id=uuid4().hex,
        span_id=uuid4().hex[:16],
        timestamp=timestamp or datetime.now(UTC),
        event_type=event_type,
        agent=agent,
        action=action,
        data={"n": 1} if data is None else data,
        **fields,
    )


def write_chain(directory: Path, count: int, *, key: bytes | None = None, batch: int = 4) -> Path:
    """``count`` events in batches; returns the (single) chain file."""
    log = AuditLogExporter(directory, key=key)
    events = [make_event(data={"i": i}) for i in range(count)]
    for start in range(0, count, batch):
        assert log.append(events[start : start + batch]) is not None
    log.shutdown()
    (path,) = sorted(directory.glob("audit-chain-*.jsonl"))
    return path


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def records(directory: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("audit-chain-*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
