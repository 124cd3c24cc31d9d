"""Host conformance: the frameworks' own unit tests, plain and with our handler in every run.

    python conformance/run.py                       # both packages, every unit test
    python conformance/run.py --quick               # the subset ``make test`` runs
    python conformance/run.py --package langgraph -k pregel

For each host package (langchain-core, langgraph) at the version installed in this interpreter,
download its sdist from the package index (``pip download --no-binary :all:``), unpack it
under ``.conformance/``, and run its unit tests twice in this interpreter: once plain, once with
one ``AuditCallbackHandler`` injected into every LangChain run (a configure hook whose context
variable defaults to the handler; ``SUCCESS_SAMPLE_RATE=1`` so every trace goes the whole way
through the pipeline). A test that passes plain and fails injected is a behaviour change of ours.
Each one is run again alone, plain and injected, to tell it from a flaky test; what still passes
plain and fails injected fails the run, unless it is in ``ALLOWED`` (tests that inspect the
handler list itself, which any configure hook changes).

Prints, per package, the tests run (plain/injected), the outcomes, the injected-only failures
and the handler's own counters (internal errors, orphan ends), and writes the same as JSON to
``.conformance/report.json``. Exit status: 0 when no injected-only failure is left, 1 otherwise,
2 when the suite could not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = ROOT / ".conformance"


@dataclass(frozen=True)
class HostSuite:
    """Where a host package keeps its unit tests and how its CI runs them."""

    package: str
    tests: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    quick: tuple[str, ...] = ()  # the subset for ``make test`` (paths under ``tests``)


SUITES = {
    "langchain-core": HostSuite(
        "langchain-core", "tests/unit_tests",
        # as langchain-core's own Makefile: no network, unix sockets allowed
        args=("--disable-socket", "--allow-unix-socket"),
        quick=(  # where our handler once changed what the host saw, and the callback plumbing
            "tests/unit_tests/runnables/test_runnable_events_v1.py",
            "tests/unit_tests/runnables/test_runnable_events_v2.py",
            "tests/unit_tests/runnables/test_config.py",
            *(f"tests/unit_tests/runnables/test_runnable.py::{name}" for name in (
                "test_stream_log_retriever", "test_map_astream", "test_prompt_with_llm",
                "test_prompt_with_llm_parser", "test_higher_order_lambda_runnable_async")),
            "tests/unit_tests/language_models/llms/test_base.py",
            "tests/unit_tests/callbacks",
            "tests/unit_tests/fake/test_fake_chat_model.py",
        ),
    ),
    "langgraph": HostSuite(
        "langgraph", "tests",
        # as langgraph's Makefile without docker: in-memory and SQLite savers, no Redis/Postgres
        env={"NO_DOCKER": "true"},
        quick=("tests/test_pregel.py::test_pregel_loop_refcount",
               "tests/test_pregel_async.py::test_pregel_loop_refcount",
               "tests/test_graph_callbacks.py"),
    ),
}

# Tests that pass plain and fail injected by design. Node id -> why. Keep this list short: a
# behaviour change of ours is fixed, never listed here.
ALLOWED: dict[str, dict[str, str]] = {
    "langchain-core": {
        # asserts the exact handler list of a callback manager: any configure hook (LangSmith's
        # tracer too) adds one
        "tests/unit_tests/runnables/test_config.py::test_merge_config_callbacks":
            "asserts the exact handlers of a merged config; a configure hook adds one",
        # a wall-clock budget, not behaviour: 1,000 fake-model calls in under 1 s; with every
        # trace kept the worker shares the GIL (bench/ measures our cost, tests never do)
        "tests/unit_tests/language_models/chat_models/test_benchmark.py::test_benchmark_model":
            "a wall-clock budget (1,000 calls in under 1 s), not behaviour",
    },
    "langgraph": {},
}


def sdist_dir(package: str, version: str) -> Path:
    """The unpacked sdist of ``package==version``, downloaded once into ``.conformance/``."""
    dist = package.replace("-", "_")
    target = WORK / f"{dist}-{version}"
    if (target / "pyproject.toml").exists():
        return target
    WORK.mkdir(exist_ok=True)
    archive = WORK / f"{dist}-{version}.tar.gz"
    if not archive.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-binary", ":all:", f"{package}=={version}", "-d", str(WORK)],
                       check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(WORK, filter="data")
    return target


def run_pytest(suite: HostSuite, source: Path, selection: list[str], *, inject: bool,
               workers: int, extra: list[str], label: str) -> dict[str, Any]:
    """One pytest session over the host's tests; the outcome of each test and our counters."""
    outcomes_dir = WORK / f"outcomes-{os.getpid()}"  # one per runner: runs may overlap
    outcomes_dir.mkdir(parents=True, exist_ok=True)
    outcomes_file = outcomes_dir / f"{suite.package}-{label}.json"
    for stale in outcomes_dir.glob(f"{outcomes_file.name}*"):
        stale.unlink()
    env = {**os.environ, **suite.env,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
           "LLM_AUDIT_CONFORMANCE_OUTCOMES": str(outcomes_file),
           "LLM_AUDIT_CONFORMANCE_INJECT": "1" if inject else "0",
           "SUCCESS_SAMPLE_RATE": "1"}
    # The same flags for both runs; the hosts' addopts (durations, full traces) and deprecation
    # warnings only lengthen the output, the outcomes are read from the plugin's file.
    command = [sys.executable, "-m", "pytest", *selection, "-q", "-p", "no:cacheprovider",
               "-p", "audit_injection", "-o", "addopts=", "--timeout=120",
               "-W", "ignore::DeprecationWarning", *suite.args, *extra]
    if workers > 1:
        command += ["-n", str(workers)]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True,
                               check=False)
    elapsed = time.monotonic() - started
    if not outcomes_file.exists():
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
        raise RuntimeError(f"{suite.package} {label}: pytest exited {completed.returncode} "
                           "before any test ran")
    report = json.loads(outcomes_file.read_text())
    handler_stats = [report["handler"]] if report["handler"] else []
    for worker_file in outcomes_dir.glob(f"{outcomes_file.name}.*"):
        handler_stats.append(json.loads(worker_file.read_text())["handler"])
    return {"outcomes": report["outcomes"], "handler": handler_stats, "seconds": elapsed,
            "summary": completed.stdout.strip().splitlines()[-1:] if completed.stdout else []}


def counts(outcomes: dict[str, str]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for outcome in outcomes.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    return tally


def check_package(suite: HostSuite, args: argparse.Namespace) -> dict[str, Any]:
    """Run one host package's suite plain and injected; confirm the injected-only failures."""
    version = importlib.metadata.version(suite.package)
    source = sdist_dir(suite.package, version)
    selection = list(suite.quick) if args.quick else [suite.tests]
    extra = ["-k", args.k] if args.k else []
    print(f"== {suite.package} {version}: {' '.join(selection)}", flush=True)
    plain = run_pytest(suite, source, selection, inject=False, workers=args.workers,
                       extra=extra, label="plain")
    injected = run_pytest(suite, source, selection, inject=True, workers=args.workers,
                          extra=extra, label="injected")
    suspects = sorted(node for node, outcome in injected["outcomes"].items()
                      if outcome == "failed" and plain["outcomes"].get(node) == "passed")
    confirmed: list[str] = []
    if suspects:  # alone, once more each way: a flaky test is not a behaviour change
        again_plain = run_pytest(suite, source, suspects, inject=False, workers=1, extra=[],
                                 label="recheck-plain")
        again_injected = run_pytest(suite, source, suspects, inject=True, workers=1, extra=[],
                                    label="recheck-injected")
        confirmed = [node for node in suspects
                     if again_plain["outcomes"].get(node) == "passed"
                     and again_injected["outcomes"].get(node) == "failed"]
    allowed = ALLOWED.get(suite.package, {})
    failures = [node for node in confirmed if node not in allowed]
    result = {
        "package": suite.package, "version": version, "selection": selection,
        "plain": {"run": len(plain["outcomes"]), **counts(plain["outcomes"]),
                  "seconds": round(plain["seconds"], 1)},
        "injected": {"run": len(injected["outcomes"]), **counts(injected["outcomes"]),
                     "seconds": round(injected["seconds"], 1)},
        "flaky": sorted(set(suspects) - set(confirmed)),
        "allowed": sorted(set(confirmed) & set(allowed)),
        "injected_only_failures": failures,
        "handler": injected["handler"],
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", choices=sorted(SUITES), action="append",
                        help="host package to check (default: all)")
    parser.add_argument("--quick", action="store_true", help="the subset make test runs")
    parser.add_argument("-k", help="pytest -k expression, to narrow the selection")
    parser.add_argument("--workers", type=int, default=1, help="pytest-xdist workers")
    args = parser.parse_args(argv)
    results = []
    try:
        for package in args.package or sorted(SUITES):
            results.append(check_package(SUITES[package], args))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"conformance could not run: {exc}", file=sys.stderr)
        return 2
    (WORK / "report.json").write_text(json.dumps(results, indent=2))
    failed = [node for result in results for node in result["injected_only_failures"]]
    for result in results:
        print(f"{result['package']} {result['version']}: {result['plain']['run']} tests plain, "
              f"{result['injected']['run']} injected, "
              f"{len(result['injected_only_failures'])} injected-only failures "
              f"(allowed: {len(result['allowed'])}, flaky: {len(result['flaky'])})")
    for node in failed:
        print(f"  passes plain, fails with the handler: {node}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
