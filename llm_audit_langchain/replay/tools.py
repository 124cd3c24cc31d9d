"""Replay tools: the user's tools, by name and schema, answering with the recorded results.

A tool call is matched to a recorded run of the same tool with the same arguments (compared as
recorded, i.e. after redaction when the live arguments differ only by what the sanitizer
removes); among equal candidates the earliest unused one wins, so parallel calls may arrive in
any order. A run that failed raises the recorded error again (see ``recorded_errors``). A call
with other arguments, or one more call than recorded, is a ``ReplayDivergence``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from .divergence import Difference, ReplayDivergence
from .plan import RecordedToolRun
from .recorded_errors import rebuild_exception

DivergenceSink = Callable[[Difference], None]


def _redacted(value: Any) -> Any:
    from ..privacy.sanitizer import Sanitizer

    return Sanitizer("redacted")(value)


class ToolLedger:
    """The recorded tool runs of one trace, and which ones the re-run has used."""

    def __init__(self, runs: list[RecordedToolRun], *, raise_on_divergence: bool = True,
                 on_divergence: DivergenceSink | None = None) -> None:
        self.runs = runs
        self.raise_on_divergence = raise_on_divergence
        self.on_divergence = on_divergence
        self._used: set[int] = set()
        self._lock = threading.Lock()

    @property
    def unused(self) -> list[RecordedToolRun]:
        """Recorded runs the re-run has not asked for (yet)."""
        return [run for run in self.runs if run.index not in self._used]

    def take(self, name: str, args: Any) -> RecordedToolRun:
        """The recorded run answering a call of ``name`` with ``args``; a divergence if none."""
        with self._lock:
            candidates = [r for r in self.runs if r.name == name and r.index not in self._used]
            match = next((r for r in candidates if r.args == args), None)
            if match is None and candidates:
                redacted = _redacted(args)
                match = next((r for r in candidates if r.args == redacted), None)
            if match is not None:
                self._used.add(match.index)
                return match
            number = sum(1 for r in self.runs if r.name == name and r.index in self._used) + 1
            where = f"tool call #{number} of {name!r}"
            if candidates:
                difference = Difference("tool_call", where + " args", candidates[0].args, args)
            else:
                recorded = sum(1 for r in self.runs if r.name == name)
                difference = Difference("tool_call_count", where,
                                        f"{recorded} recorded call(s) of {name!r}",
                                        f"call #{number} with args {args!r}")
        if self.on_divergence is not None:
            self.on_divergence(difference)
        if self.raise_on_divergence or not candidates:
            raise ReplayDivergence([difference])
        with self._lock:
            self._used.add(candidates[0].index)
        return candidates[0]


def recorded_output(run: RecordedToolRun, response_format: str) -> Any:
    """What the tool function returned, rebuilt from the recorded output."""
    output = run.output
    if not (isinstance(output, dict) and output.get("type") == "tool"):
        return output
    content = output.get("content", "")
    if output.get("status") == "error":  # the tool itself answered with an error message
        return ToolMessage(content=content, status="error", name=output.get("name"),
                           tool_call_id=output.get("tool_call_id") or run.tool_call_id or "")
    if response_format == "content_and_artifact":
        return content, output.get("artifact")
    return content


class ReplayTool(BaseTool):
    """A tool with the original's name, description and schema that replays recorded runs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ledger: ToolLedger = Field(exclude=True)

    def _run(self, *args: Any, run_manager: CallbackManagerForToolRun | None = None,
             **kwargs: Any) -> Any:
        tool_input: Any = kwargs if not args else (args[0] if len(args) == 1 else list(args))
        run = self.ledger.take(self.name, tool_input)
        if run.error is not None:
            raise rebuild_exception(run.error)
        return recorded_output(run, self.response_format)


def replay_tool(original: BaseTool | str, ledger: ToolLedger) -> ReplayTool:
    """A :class:`ReplayTool` standing in for ``original`` (a tool, or just a recorded name)."""
    if isinstance(original, str):
        return ReplayTool(name=original, description=f"replay of {original}", ledger=ledger)
    return ReplayTool(name=original.name, description=original.description,
                      args_schema=original.args_schema, return_direct=original.return_direct,
                      response_format=original.response_format, ledger=ledger)
