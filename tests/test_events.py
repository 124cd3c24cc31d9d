"""The event model: its published schema, its JSON form, its id rules."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_audit_langchain import EVENT_VERSION, AuditEvent, AuditEventType, ErrorDetail
from llm_audit_langchain.events import event_to_dict
from llm_audit_langchain.schema import build_schema, load_schema


def sample(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event_id": "a" * 32, "trace_id": "b" * 32, "span_id": "c" * 16,
        "parent_span_id": "d" * 16, "timestamp": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        "start_time": datetime(2026, 11, 23, 11, 59, tzinfo=UTC),
        "event_type": AuditEventType.TOOL_ERROR, "agent": "tools", "action": "get_weather",
        "status": "error", "latency_ms": 12.5, "data": {"input": {"city": "Atlantis"}},
        "error": ErrorDetail(type="ValueError", message="unknown city", traceback="tb",
                             input_snapshot={"city": "Atlantis"}, environment={"python": "3.11"}),
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


def test_version_is_3_0() -> None:
    assert EVENT_VERSION == "3.0" and sample().event_version == "3.0"


def test_fast_dict_equals_pydantic_json_dump() -> None:
    event = sample()
    assert event_to_dict(event) == event.model_dump(mode="json")


def test_json_line_round_trips() -> None:
    event = sample()
    line = json.dumps(event_to_dict(event))
    assert AuditEvent.model_validate_json(line) == event


@pytest.mark.parametrize("field,value", [
    ("trace_id", "B" * 32), ("trace_id", "b" * 12), ("span_id", "c" * 8),
    ("parent_span_id", "xyz"), ("status", "fine"), ("event_type", "not.a.type"),
])
def test_non_w3c_ids_and_unknown_values_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        sample(**{field: value})


def test_shipped_schema_is_the_generated_one() -> None:
    assert load_schema() == build_schema(), "run: llm-audit schema > ... (regenerate the file)"


def test_schema_command_prints_the_schema_through_the_console_script() -> None:
    script = Path(sys.executable).with_name("llm-audit")
    out = subprocess.run([str(script), "schema"], capture_output=True, text=True, check=True)
    schema = json.loads(out.stdout)
    assert schema["x-event-version"] == "3.0"
    assert set(schema["properties"]) >= {"trace_id", "span_id", "event_type", "error", "data"}
    assert "tool.selection" in schema["$defs"]["AuditEventType"]["enum"]


def test_fast_event_refuses_a_missing_or_unknown_field() -> None:
    """The handler's unvalidated constructor must not write a line missing a required field
    (it would fail to read back) nor one with a key the sanitizer never saw."""
    from datetime import UTC, datetime

    from llm_audit_langchain.events import AuditEventType, fast_event

    fields = {"event_id": "e" * 32, "trace_id": "a" * 32, "span_id": "b" * 16,
              "timestamp": datetime.now(UTC), "event_type": AuditEventType.CUSTOM,
              "agent": "a", "action": "b"}
    assert fast_event(**fields).action == "b"
    with pytest.raises(TypeError, match="missing \\['agent'\\]"):
        fast_event(**{k: v for k, v in fields.items() if k != "agent"})
    with pytest.raises(TypeError, match="unknown \\['tokens_in'\\]"):
        fast_event(**fields, tokens_in=3)


def test_event_times_keep_every_microsecond_apart() -> None:
    """Moments a microsecond apart get distinct timestamps, truncated exactly (a float of
    nanoseconds / 1e9 is off by ~0.1 µs at today's dates and made some share one: stores then
    ordered a call and its measure by event id)."""
    from llm_audit_langchain.capture.pending import utc_from_ns

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(3)
    for _ in range(20_000):
        ns = rng.randrange(1_700_000_000 * 10**9, 4_000_000_000 * 10**9)
        assert utc_from_ns(ns) == epoch + timedelta(microseconds=ns // 1000)
        assert utc_from_ns(ns + 1000) > utc_from_ns(ns)
