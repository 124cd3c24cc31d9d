"""W3C Trace Context parsing and formatting, and the current-context variable."""

from __future__ import annotations

import asyncio
import re

import pytest

from llm_audit_langchain import TraceContext, current_traceparent
from llm_audit_langchain.context import malformed_traceparent_count, new_span_id, new_trace_id

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_valid_traceparent_round_trips() -> None:
    ctx = TraceContext.from_traceparent(VALID, tracestate="vendor=1")
    assert (ctx.trace_id, ctx.span_id, ctx.sampled) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)
    assert ctx.to_traceparent() == VALID
    assert ctx.tracestate == "vendor=1"


def test_unsampled_flag_is_kept() -> None:
    ctx = TraceContext.from_traceparent(VALID[:-2] + "00")
    assert ctx.sampled is False
    assert ctx.to_traceparent().endswith("-00")


def test_future_version_with_extra_fields_is_accepted() -> None:
    ctx = TraceContext.from_traceparent("cc-" + VALID[3:] + "-what-the-future-holds")
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize("header", [
    "garbage",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase is invalid
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extras
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
])
def test_malformed_header_gives_a_new_trace_and_is_counted(header: str) -> None:
    before = malformed_traceparent_count()
    ctx = TraceContext.from_traceparent(header)
    assert re.fullmatch(r"[0-9a-f]{32}", ctx.trace_id) and ctx.trace_id != "0" * 32
    assert ctx.span_id is None
    assert malformed_traceparent_count() == before + 1


def test_missing_header_is_a_new_trace_and_not_malformed() -> None:
    before = malformed_traceparent_count()
    assert TraceContext.from_traceparent(None).trace_id
    assert TraceContext.from_traceparent("").trace_id
    assert malformed_traceparent_count() == before


def test_ids_are_w3c_shaped_and_unique() -> None:
    traces = {new_trace_id() for _ in range(1000)}
    spans = {new_span_id() for _ in range(1000)}
    assert len(traces) == len(spans) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) for s in spans)


def test_context_manager_sets_and_restores_current() -> None:
    assert TraceContext.current() is None
    outer = TraceContext.from_traceparent(VALID)
    with outer:
        assert TraceContext.current() is outer
        inner = TraceContext.new()
        with inner:
            assert TraceContext.current() is inner
        assert TraceContext.current() is outer
        header = current_traceparent()
        assert header is not None and header.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert TraceContext.current() is None
    assert current_traceparent() is None


async def test_concurrent_tasks_see_their_own_context() -> None:
    async def run(header: str) -> str | None:
        with TraceContext.from_traceparent(header):
            await asyncio.sleep(0.01)
            current = TraceContext.current()
            return current.trace_id if current else None

    headers = [f"00-{i:032x}-{i:016x}-01" for i in range(1, 21)]
    results = await asyncio.gather(*(run(h) for h in headers))
    assert results == [f"{i:032x}" for i in range(1, 21)]
