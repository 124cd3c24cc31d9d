"""Deterministic synthetic traces for the store tests and ``bench/bench_stores.py``.

Each trace is a root graph run (user and department in its metadata, ``data.trace_root``)
with two LLM calls (model and provider rotating, costs, tokens, latencies), a tool call,
and now and then an LLM error, a retry, a guardrail intervention or a sanitizer hit. The
same seed gives the same events, so three stores loaded with them must answer alike
(:func:`assert_same` compares two reports).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from llm_audit_langchain.events import AuditEvent, AuditEventType, ErrorDetail, fast_event

MODELS = (("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic"),
          ("amazon.nova-lite-v1:0", "amazon_bedrock"))
USERS = ("u-1", "u-2", "u-3", "u-4", "u-5")
DEPARTMENTS = ("research", "sales", "support")
START = datetime(2026, 11, 20, tzinfo=UTC)


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def synthetic_trace(rng: random.Random, when: datetime) -> list[AuditEvent]:
    """One agent run's events, deterministic given ``rng``'s state."""
    trace_id, root_span = _hex(rng, 32), _hex(rng, 16)
    user = rng.choice(USERS)
    department = DEPARTMENTS[USERS.index(user) % len(DEPARTMENTS)]
    events: list[AuditEvent] = []
    clock = when
    failed = rng.random() < 0.05

    def event(kind: AuditEventType, action: str, **fields: object) -> AuditEvent:
        nonlocal clock
        clock += timedelta(milliseconds=rng.randint(1, 40))
        base: dict[str, object] = {"event_id": _hex(rng, 32), "trace_id": trace_id,
                                   "span_id": _hex(rng, 16), "parent_span_id": root_span,
                                   "timestamp": clock, "event_type": kind, "agent": "agent",
                                   "action": action}
        base.update(fields)
        made = fast_event(**base)
        events.append(made)
        return made

    for call in range(2):
        model, provider = MODELS[rng.randrange(len(MODELS))]
        latency = round(rng.lognormvariate(6.0, 0.6), 3)
        tokens_in, tokens_out = rng.randint(50, 3000), rng.randint(10, 800)
        error = failed and call == 1
        kind = AuditEventType.LLM_ERROR if error else AuditEventType.LLM_INVOKE
        event(kind, model, status="error" if error else "ok", latency_ms=latency,
              start_time=clock, model=model, tokens_input=None if error else tokens_in,
              tokens_output=None if error else tokens_out,
              cost_usd=None if error else round((tokens_in * 3 + tokens_out * 12) / 1e6, 8),
              data={"provider": provider, "langgraph": {"node": "agent", "step": call + 1}},
              error=ErrorDetail(type="RateLimitError", message="429 too many requests")
              if error else None)
        if call == 0 and rng.random() < 0.1:
            event(AuditEventType.AGENT_RETRY, "agent", status="retry",
                  data={"attempt": 2, "provider": provider})
    if rng.random() < 0.05:
        event(AuditEventType.LLM_GUARDRAIL, "guardrail", status="error",
              data={"reason": "GUARDRAIL_INTERVENED"})
    if rng.random() < 0.2:  # what the sanitizer leaves in place of personal data
        kind = rng.choice(("EMAIL", "CREDIT_CARD", "PHONE"))
        markers = [f"[REDACTED_{kind}:{_hex(rng, 12)}]" for _ in range(rng.randint(1, 3))]
        event(AuditEventType.CUSTOM, "user_message", data={"text": " and ".join(markers),
                                                            "plain": "[REDACTED_SECRET]"})
    event(AuditEventType.TOOL_RESULT, "get_weather", latency_ms=rng.uniform(1, 20),
          start_time=clock, data={"langgraph": {"node": "tools", "step": 2}})
    total = sum(e.latency_ms or 0.0 for e in events) + rng.uniform(1, 30)
    root = fast_event(
        event_id=_hex(rng, 32), trace_id=trace_id, span_id=root_span, timestamp=clock,
        start_time=when, event_type=AuditEventType.CHAIN_ERROR if failed
        else AuditEventType.CHAIN_END, agent="graph", action="LangGraph",
        status="error" if failed else "ok", latency_ms=round(total, 3),
        data={"run_root": True, "trace_root": True,
              "metadata": {"user_id": user, "department": department}})
    events.append(root)
    return events


def synthetic_events(traces: int, *, seed: int = 7, days: int = 3) -> Iterator[AuditEvent]:
    """``traces`` traces spread over ``days`` days from ``START``."""
    rng = random.Random(seed)
    span = timedelta(days=days) / max(1, traces)
    for number in range(traces):
        yield from synthetic_trace(rng, START + span * number)


def assert_same(left: Any, right: Any, where: str = "report") -> None:
    """Equal, with floats equal to 1e-9 relative (sums run in different orders)."""
    if isinstance(left, float) or isinstance(right, float):
        assert isinstance(left, int | float) and isinstance(right, int | float), where
        assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {left} {right}"
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), where
        for key in left:
            assert_same(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list):
        assert isinstance(right, list) and len(left) == len(right), f"{where}: length"
        for number, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{where}[{number}]")
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"
