"""The worker's share of the GIL under a CPU-bound host thread (a script, not a test).

    .venv/bin/python bench/bench_worker_gil.py [--seconds 8] [--rounds 3]

One host thread runs LLM calls through the handler's callbacks as fast as it can, with pure
Python work in between (it never releases the GIL on its own), while the worker enriches,
samples (keep all), sanitizes and writes JSONL. Each variant runs in a fresh interpreter, so
imports are as cold as in a new process:

- ``cold``: the handler built without ``warm_up`` (price data imported by the worker on its
  first LLM event, as before);
- ``warm``: as shipped (loaded when the handler is built).

Prints, per variant (median of the rounds): the handler's construction time, the time until the
first event reached the file, events produced and exported per second over the run, and how
many were dropped from the full queue (all counted: enqueued == exported + dropped + pending).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap

_CHILD = textwrap.dedent("""
    import json, sys, tempfile, threading, time
    from uuid import uuid4

    variant, seconds = sys.argv[1], float(sys.argv[2])
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, LLMResult
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, JsonlExporter
    from llm_audit_langchain.pipeline import processors

    if variant == "cold":
        processors.warm_up = lambda: None
    started = time.perf_counter()
    handler = AuditCallbackHandler([JsonlExporter(tempfile.mkdtemp())],
                                   config=AuditConfig(debug=True, flush_interval_ms=50))
    construct_s = time.perf_counter() - started
    message = AIMessage("It is sunny.", usage_metadata={"input_tokens": 12, "output_tokens": 4,
                                                        "total_tokens": 16})
    result = LLMResult(generations=[[ChatGeneration(message=message)]],
                       llm_output={"model_name": "gpt-4o-mini"})
    prompt = [[HumanMessage("What is the weather in Paris?")]]
    stop = threading.Event()

    def host() -> None:
        while not stop.is_set():
            run_id = uuid4()
            handler.on_chat_model_start(
                {"name": "ChatOpenAI"}, prompt, run_id=run_id,
                invocation_params={"model": "gpt-4o-mini"},
                metadata={"ls_provider": "openai", "ls_model_name": "gpt-4o-mini"})
            handler.on_llm_end(result, run_id=run_id)
            sum(i * i for i in range(300))  # the host's own pure-Python work

    thread = threading.Thread(target=host)
    begin = time.perf_counter()
    thread.start()
    first_export = None
    while time.perf_counter() - begin < seconds:
        time.sleep(0.05)
        if first_export is None and handler.stats()["exported"] > 0:
            first_export = time.perf_counter() - begin
    stats = handler.stats()
    elapsed = time.perf_counter() - begin
    stop.set()
    thread.join()
    handler.shutdown(10)
    print(json.dumps({
        "construct_ms": construct_s * 1000,
        "first_export_s": first_export,
        "produced_per_s": stats["enqueued"] / elapsed,
        "exported_per_s": stats["exported"] / elapsed,
        "dropped": sum(stats["dropped"].values()),
    }))
""")


def run(variant: str, seconds: float) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _CHILD, variant, str(seconds)],
                          capture_output=True, text=True, check=True,
                          cwd=tempfile.gettempdir())
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both
        for variant, rounds in results.items():
            rounds.append(run(variant, args.seconds))
    keys = ("construct_ms", "first_export_s", "produced_per_s", "exported_per_s", "dropped")
    print(f"{'variant':<8}" + "".join(f"{key:>16}" for key in keys))
    for variant, rounds in results.items():
        cells = []
        for key in keys:
            values = [r[key] if r[key] is not None else float("inf") for r in rounds]
            cells.append(f"{statistics.median(values):>16.2f}")
        print(f"{variant:<8}" + "".join(cells))


if __name__ == "__main__":
    main()
