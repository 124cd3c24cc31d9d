"""Instructions per agent run, counted by valgrind: the yardstick that machine noise cannot move.

    python bench/bench_instructions.py [--modes bare,default,keep-all] [--runs 100]

Timings on a shared 2-core machine move by ±20-60 % from one minute to the next; instruction
counts move by about 1 %. For each mode this runs the same script twice under
``valgrind --tool=cachegrind --cache-sim=no`` (once with ``--runs`` agent runs, once with none)
and prints the difference divided by ``--runs``: the instructions one agent run costs,
start-up and warm-up excluded, the worker's work included (each script ends with a flush).
They under-count what cache misses cost, so confirm a change with ``bench_overhead.py``.
Needs ``valgrind`` (``apt-get install valgrind``). Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODES = ("bare", "noop", "default", "keep-all")


def child(mode: str, runs: int) -> None:
    """The measured script: warm up, then ``runs`` agent runs in ``mode``, then flush."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    sys.path.insert(0, str(HERE))
    from bench_overhead import INPUT, NoopHandler, ours
    from graphs import weather_agent

    graph = weather_agent()
    with tempfile.TemporaryDirectory() as log_dir:
        callbacks = ([] if mode == "bare" else [NoopHandler()] if mode == "noop"
                     else [ours(mode, log_dir)])
        config = {"callbacks": callbacks}
        for _ in range(30):
            graph.invoke(INPUT, config=config)
        for handler in callbacks:
            getattr(handler, "flush", lambda timeout: None)(timeout=60)
        for _ in range(runs):
            graph.invoke(INPUT, config=config)
        for handler in callbacks:
            getattr(handler, "flush", lambda timeout: None)(timeout=60)
            getattr(handler, "shutdown", lambda timeout: None)(timeout=10)


def instructions(mode: str, runs: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cachegrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
             sys.executable, __file__, "--child", mode, "--runs", str(runs)],
            capture_output=True, text=True, check=False)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"valgrind failed for {mode}:\n{done.stderr[-2000:]}")
        return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="bare,default,keep-all",
                        help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--runs", type=int, default=100, help="agent runs counted per mode")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    print("| mode | M instructions per agent run |")
    print("|---|---:|")
    for mode in args.modes.split(","):
        if mode not in MODES:
            raise SystemExit(f"--modes: unknown mode {mode!r}; known: {', '.join(MODES)}")
        per_run = (instructions(mode, args.runs) - instructions(mode, 0)) / args.runs
        print(f"| {mode} | {per_run / 1e6:.2f} |", flush=True)


if __name__ == "__main__":
    main()
