"""The replay plan of a recorded trace: recorded answers, tool results, the error."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ...replay.reading import ScanStats
from .common import (
    EXIT_OK,
    call_text,
    chosen_dir,
    dir_option,
    json_flag,
    load_trace_events,
    print_json,
)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _replay(args: argparse.Namespace) -> int:
    from ...replay.plan import build_plan

    stats = ScanStats()
    events = load_trace_events(chosen_dir(args), args.trace_id, stats)
    plan = build_plan(events[0].trace_id, events)
    if args.json:
        print_json(plan.as_dict())
        return EXIT_OK
    out = [f"replay plan of trace {plan.trace_id}", f"input: {_short(plan.inputs)}", "",
           f"LLM answers ({len(plan.llm_calls)}):"]
    for call in plan.llm_calls:
        head = f"  #{call.index + 1} {call.node or '-'} step {call.step}, {len(call.prompt)} msgs"
        if call.error is not None:
            out.append(f"{head} → raises {call.error.type}: {call.error.message}")
            continue
        output = call.output or {}
        calls = ", ".join(call_text(c) for c in output.get("tool_calls") or [])
        out.append(f"{head} → " + (f"calls {calls}" if calls else _short(output.get("content"))))
    out += ["", f"tool results ({len(plan.tool_runs)}):"]
    for run in plan.tool_runs:
        head = f"  #{run.index + 1} {run.name}({_short(run.args, 80)})"
        if run.error is not None:
            out.append(f"{head} → raises {run.error.type}: {run.error.message}")
        else:
            output = run.output
            content = output.get("content") if isinstance(output, dict) else output
            out.append(f"{head} → {_short(content)}")
    out += ["", f"routes ({len(plan.routes)}):"]
    out += [f"  step {r.step}: {r.from_node} → {r.destination}" for r in plan.routes]
    error = plan.error
    out += ["", "outcome: " + ("success" if error is None else
                               f"raises {error.type}: {error.message}")]
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit replay``."""
    replay = commands.add_parser("replay", help="the replay plan of a recorded trace")
    replay.add_argument("trace_id", metavar="TRACE_ID", help="trace id (or a unique prefix)")
    dir_option(replay)
    json_flag(replay)
    replay.set_defaults(func=_replay)
