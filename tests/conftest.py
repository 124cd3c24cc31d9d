"""Shared fixtures: an audit handler wired to a MemoryExporter, torn down after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter


def fast_config(**overrides: object) -> AuditConfig:
    """A config that exports quickly and keeps every trace (tests assert on whole traces)."""
    settings: dict[str, object] = {"flush_interval_ms": 20, "debug": True}
    settings.update(overrides)
    return AuditConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def memory() -> MemoryExporter:
    return MemoryExporter()


@pytest.fixture
def handler(memory: MemoryExporter) -> Iterator[AuditCallbackHandler]:
    audit = AuditCallbackHandler(exporters=[memory], config=fast_config())
    yield audit
    audit.shutdown(timeout=5)
