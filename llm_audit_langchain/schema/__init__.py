"""The published JSON Schema of the event model (``audit-event-v3.schema.json``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ..events import EVENT_VERSION, AuditEvent

SCHEMA_FILE = "audit-event-v3.schema.json"
SCHEMA_ID = "https://llm-audit-langchain.dev/schema/audit-event-v3.schema.json"


def build_schema() -> dict[str, Any]:
    """The JSON Schema generated from ``AuditEvent`` (what the shipped file must equal)."""
    schema = AuditEvent.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "x-event-version": EVENT_VERSION, **schema}


def load_schema() -> dict[str, Any]:
    """The schema file shipped in the package."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
