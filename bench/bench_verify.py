"""How fast the audit chain is written and verified (a script, not a test).

    .venv/bin/python bench/bench_verify.py [--records 100000] [--batch 256] [--key] [--keep DIR]

Writes an intact chain of realistic LLM events (a prompt, an answer with a tool call, usage),
then times ``verify`` over it, and prints records/s, seconds and peak memory of the verify.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from llm_audit_langchain.audit import AuditLogExporter, verify
from llm_audit_langchain.events import AuditEvent, AuditEventType


def llm_event(i: int) -> AuditEvent:
    return AuditEvent(
        event_id=uuid4().hex,
        trace_id=uuid4().hex,
        span_id=uuid4().hex[:16],
        timestamp=datetime.now(UTC),
        event_type=AuditEventType.LLM_INVOKE,
        agent="planner",
        action="ChatBedrockConverse",
        latency_ms=812.5,
        tokens_input=412,
        tokens_output=57,
        cost_usd=0.0021,
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        data={
            "messages": [
                {"type": "system", "content": "You are a careful credit analyst. Cite policy."},
                {"type": "human", "content": f"Customer {i} asks for a limit increase to 5000."},
            ],
            "output": {
                "type": "ai",
                "content": "",
                "tool_calls": [{"name": "credit_score", "args": {"id": i}, "id": f"call_{i}"}],
            },
            "invocation_params": {"temperature": 0.0, "max_tokens": 1024},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--key", action="store_true", help="HMAC-SHA256 instead of SHA-256")
    parser.add_argument("--keep", type=Path, help="write here and keep it (default: a temp dir)")
    args = parser.parse_args()
    key = b"bench-key" if args.key else None
    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        log = AuditLogExporter(directory, key=key)
        events = [llm_event(i) for i in range(args.records)]
        start = time.perf_counter()
        for offset in range(0, len(events), args.batch):
            log.append(events[offset : offset + args.batch])
        written = time.perf_counter() - start
        size = sum(p.stat().st_size for p in directory.glob("audit-chain-*.jsonl"))
        print(
            f"write : {args.records} records in {written:.2f} s "
            f"({args.records / written:,.0f} records/s, batch {args.batch}), "
            f"{size / 1e6:.1f} MB, mode {log.hash_alg}"
        )
        del events

        start = time.perf_counter()
        report = verify(directory, key=key)
        seconds = time.perf_counter() - start
        assert report.ok and report.records == args.records, report.first_broken
        print(
            f"verify: {report.records} records in {seconds:.2f} s "
            f"({report.records / seconds:,.0f} records/s)"
        )
        tracemalloc.start()
        verify(directory, key=key)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"verify: peak Python memory {peak / 1e6:.2f} MB (streaming)")
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
