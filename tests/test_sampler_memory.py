"""The tail sampler remembers recently decided traces (so their late events follow the decision)
in little memory: ints in two generations, not 32-character strings in an ordered dict."""

from __future__ import annotations

import tracemalloc
from uuid import uuid4

from llm_audit_langchain import SamplingPolicy


def test_remembering_100k_decided_traces_takes_little_memory() -> None:
    sampler = SamplingPolicy(success_rate=1.0).sampler()
    assert sampler is not None
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):
            sampler._remember(uuid4().hex, i % 2 == 0)  # type: ignore[attr-defined]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used < 10 * 2**20, f"{used / 2**20:.1f} MiB"


def test_recent_decisions_are_followed_and_old_ones_forgotten() -> None:
    sampler = SamplingPolicy(success_rate=1.0).sampler()
    assert sampler is not None
    decided = sampler._decided  # type: ignore[attr-defined]
    first = uuid4().hex
    sampler._remember(first, False)  # type: ignore[attr-defined]
    assert decided.get(first) is False
    recent = [uuid4().hex for _ in range(200_000)]
    for trace_id in recent:
        sampler._remember(trace_id, True)  # type: ignore[attr-defined]
    assert decided.get(first) is None  # bounded: the oldest are forgotten
    assert all(decided.get(t) is True for t in recent[-50_000:])
    assert len(decided) <= 100_000
