"""``replay_trace``: re-run a recorded trace offline with the recorded answers, and check that
the graph makes the same decisions and ends the same way.

Example (a recorded production failure as a regression test)::

    replay = replay_trace("logs", "4bf92f3577b34da6a3ce929d0e0e4736")
    graph = build_graph(model=replay.chat_model, tools=replay.tools([get_weather, get_time]))
    result = replay.run(graph)          # raises ReplayDivergence if anything differs
    assert type(result.error).__name__ == "ValueError"
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool

from ..events import AuditEvent, ErrorDetail
from .chat_model import ReplayChatModel
from .divergence import Difference, ReplayDivergence
from .fixture import PathLike, load_trace
from .plan import ReplayPlan, build_plan, inputs_from_record, is_run_root
from .reading import ScanStats
from .tools import ToolLedger, replay_tool


@dataclass
class ReplayResult:
    """What the re-run did: its output (or the exception it raised) and its recorded events."""

    output: Any
    error: BaseException | None
    events: list[AuditEvent] = field(default_factory=list)


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    recorded = getattr(cls, "recorded_type", None)  # a ReplayedToolError stand-in
    if isinstance(recorded, str):
        return recorded
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _outcome(error: ErrorDetail | None) -> str:
    return "success" if error is None else f"{error.type}: {error.message}"


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Replay:
    """One recorded trace, ready to be re-run. Build it with :func:`replay_trace`.

    - ``chat_model``: a :class:`ReplayChatModel` answering with the recorded messages;
    - ``tools(originals)``: replay stand-ins for the user's tools (``live`` names run for real);
    - ``inputs``: the recorded graph input, messages rebuilt;
    - ``config``: callbacks recording the re-run (an in-memory audit handler);
    - ``run(graph)``: invoke, then compare with the recording; raises :class:`ReplayDivergence`;
    - ``differences(events)`` / ``assert_same_decisions(events)``: the comparison alone.
    """

    def __init__(self, plan: ReplayPlan, *, check_prompts: bool = True,
                 raise_on_divergence: bool = True, scan_stats: ScanStats | None = None) -> None:
        self.plan = plan
        self.scan_stats = scan_stats
        self.live_divergences: list[Difference] = []
        self._raise = raise_on_divergence
        self._check_prompts = check_prompts
        self._chat_model: ReplayChatModel | None = None
        self._ledger = ToolLedger(plan.tool_runs, raise_on_divergence=raise_on_divergence,
                                  on_divergence=self.live_divergences.append)
        self._recorder: Any = None
        self._memory: Any = None

    @property
    def trace_id(self) -> str:
        """The recorded trace's id."""
        return self.plan.trace_id

    @property
    def expected_error(self) -> ErrorDetail | None:
        """The error the recorded run ended with, or None if it succeeded."""
        return self.plan.error

    @property
    def inputs(self) -> Any:
        """The recorded graph input (sanitized as recorded), messages rebuilt."""
        return inputs_from_record(self.plan.inputs)

    @property
    def chat_model(self) -> ReplayChatModel:
        """The replay chat model (one per replay: its position in the recording is shared)."""
        if self._chat_model is None:
            first = self.plan.llm_calls[0] if self.plan.llm_calls else None
            self._chat_model = ReplayChatModel(
                calls=self.plan.llm_calls,
                model_name=(first.model if first and first.model else "replay"),
                provider=(first.provider if first and first.provider else "replay"),
                check_prompts=self._check_prompts, raise_on_divergence=self._raise,
                on_divergence=self.live_divergences.append,
            )
        return self._chat_model

    def tools(self, originals: Sequence[BaseTool] | None = None, *,
              live: Collection[str] = ()) -> list[BaseTool]:
        """Stand-ins for ``originals`` (same name, description, schema) that return the recorded
        outputs and raise the recorded errors. Without ``originals``, one schemaless stand-in per
        recorded tool name. Tools named in ``live`` are returned as they are and run for real
        (to check a fix of that tool against the recorded run)."""
        if originals is None:
            names = list(dict.fromkeys(run.name for run in self.plan.tool_runs))
            return [replay_tool(name, self._ledger) for name in names]
        return [tool if tool.name in live else replay_tool(tool, self._ledger)
                for tool in originals]

    @property
    def config(self) -> RunnableConfig:
        """Run config recording the re-run with the real audit handler, in memory."""
        return {"callbacks": [self._handler()]}

    def _handler(self) -> Any:
        if self._recorder is None:
            from ..capture.handler import (
                AuditCallbackHandler,
                get_default_handler,
                set_default_handler,
            )
            from ..config import AuditConfig
            from ..exporters.memory import MemoryExporter
            from ..pipeline.sampling import SamplingPolicy

            previous = get_default_handler()
            self._memory = MemoryExporter()
            config = AuditConfig(enabled=True, debug=True, flush_interval_ms=20,
                                 capture="redacted", sampling=SamplingPolicy(debug=True))
            self._recorder = AuditCallbackHandler(exporters=[self._memory], config=config)
            set_default_handler(previous)  # the replay's recorder is nobody's default
        return self._recorder

    def recorded_events(self, timeout: float = 10.0) -> list[AuditEvent]:
        """The events the re-run produced so far (through :attr:`config`)."""
        if self._recorder is None:
            return []
        self._recorder.flush(timeout=timeout)
        return list(self._memory.events)

    def run(self, graph: Runnable[Any, Any], inputs: Any = None, *,
            config: RunnableConfig | None = None, check: bool = True) -> ReplayResult:
        """Invoke ``graph`` with the recorded input (or ``inputs``) and the recording handler,
        then compare with the recording. Returns the result with the exception the run raised,
        if any (it is not re-raised); raises :class:`ReplayDivergence` when ``check`` and
        anything differs, including how the run ended. With ``check=False`` a divergence the
        replay model or tools hit is returned as ``result.error`` instead."""
        merged: RunnableConfig = RunnableConfig(**(config or {}))
        callbacks = merged.get("callbacks")
        merged["callbacks"] = [*(callbacks if isinstance(callbacks, list) else []),
                               self._handler()]
        output: Any = None
        error: BaseException | None = None
        try:
            output = graph.invoke(self.inputs if inputs is None else inputs,
                                  config=merged)
        except ReplayDivergence:
            if check:
                raise
            error = sys.exc_info()[1]
        except Exception as exc:
            error = exc
        result = ReplayResult(output, error, self.recorded_events())
        if check:
            differences = self.differences(result.events, error=error)
            if differences:
                raise ReplayDivergence(differences) from error
        return result

    def differences(self, events: Sequence[AuditEvent] | None = None, *,
                    error: BaseException | None = None) -> list[Difference]:
        """Every way the re-run's ``events`` (default: those recorded through :attr:`config`)
        differ from the recording: routes, tool calls (name and args), LLM call count, outcome.
        Differences seen live (by the chat model and tools) come first."""
        events = list(events) if events is not None else self.recorded_events()
        trace_id = _latest_trace(events)
        new = build_plan(trace_id, [e for e in events if e.trace_id == trace_id])
        found = list(self.live_divergences)  # a decision that changed explains the counts after it
        found += _compare_routes(self.plan, new)
        found += _compare_tool_calls(self.plan, new)
        found += _compare_counts(self.plan, new)
        found += _compare_outcome(self.plan, new, error)
        return list({(d.kind, d.where, _key(d.expected), _key(d.actual)): d
                     for d in found}.values())

    def assert_same_decisions(self, events: Sequence[AuditEvent] | None = None, *,
                              error: BaseException | None = None) -> None:
        """Raise :class:`ReplayDivergence` unless the re-run matches the recording."""
        differences = self.differences(events, error=error)
        if differences:
            raise ReplayDivergence(differences)

    def close(self) -> None:
        """Stop the recording handler's worker."""
        if self._recorder is not None:
            self._recorder.shutdown(timeout=5.0)

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _latest_trace(events: Sequence[AuditEvent]) -> str:
    roots = [e for e in events if is_run_root(e)]
    if roots:
        return max(roots, key=lambda e: e.timestamp).trace_id
    return events[-1].trace_id if events else ""


def _compare_counts(recorded: ReplayPlan, new: ReplayPlan) -> list[Difference]:
    if len(recorded.llm_calls) != len(new.llm_calls):
        return [Difference("llm_call_count", "number of LLM calls", len(recorded.llm_calls),
                           len(new.llm_calls))]
    return []


def _tool_calls(plan: ReplayPlan) -> list[tuple[Any, str, Any]]:
    calls = [(run.step, run.name, run.args) for run in plan.tool_runs]
    return sorted(calls, key=lambda c: (c[0] if c[0] is not None else -1, c[1], _key(c[2])))


def _compare_tool_calls(recorded: ReplayPlan, new: ReplayPlan) -> list[Difference]:
    expected, actual = _tool_calls(recorded), _tool_calls(new)
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want[1:] != got[1:]:
            return [Difference("tool_call", f"tool call #{index + 1} (step {want[0]})",
                               {"name": want[1], "args": want[2]},
                               {"name": got[1], "args": got[2]})]
    if len(expected) != len(actual):
        return [Difference("tool_call_count", "number of tool calls",
                           [{"name": c[1], "args": c[2]} for c in expected],
                           [{"name": c[1], "args": c[2]} for c in actual])]
    return []


def _compare_routes(recorded: ReplayPlan, new: ReplayPlan) -> list[Difference]:
    expected, actual = recorded.routes, new.routes
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if (want.from_node, want.destination) != (got.from_node, got.destination):
            where = f"route #{index + 1} from node {want.from_node!r} (step {want.step})"
            if want.from_node != got.from_node:
                return [Difference("route", where, {"from": want.from_node,
                                                    "to": want.destination},
                                   {"from": got.from_node, "to": got.destination})]
            return [Difference("route", where, want.destination, got.destination)]
    if len(expected) != len(actual):
        return [Difference("route_count", "routing decisions",
                           [(r.from_node, r.destination) for r in expected],
                           [(r.from_node, r.destination) for r in actual])]
    return []


def _compare_outcome(recorded: ReplayPlan, new: ReplayPlan,
                     error: BaseException | None) -> list[Difference]:
    want = _outcome(recorded.error)
    if new.root is not None:
        got = _outcome(new.root.error)
    elif error is not None:
        got = f"{_qualified(error)}: {error}"
    else:
        return []  # nothing recorded about the re-run's end
    return [] if want == got else [Difference("outcome", "how the run ended", want, got)]


def replay_trace(path: PathLike, trace_id: str, *, check_prompts: bool = True,
                 raise_on_divergence: bool = True) -> Replay:
    """Load ``trace_id`` from the JSONL file or directory ``path`` and prepare its replay.

    Raises :class:`~llm_audit_langchain.TraceNotFoundError` for an unknown trace."""
    stats = ScanStats()
    events = load_trace(path, trace_id, stats)
    plan = build_plan(events[0].trace_id, events)
    return Replay(plan, check_prompts=check_prompts, raise_on_divergence=raise_on_divergence,
                  scan_stats=stats)
