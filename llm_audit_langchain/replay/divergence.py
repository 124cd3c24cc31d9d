"""``ReplayDivergence``: the re-run did something the recording did not, and exactly what.

A difference names its kind, where it happened (the LLM call, tool run or route index, and the
LangGraph step when known), what was recorded and what the re-run did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import AuditError

DifferenceKind = Literal[
    "llm_call_count", "prompt", "tools_offered", "tool_call", "tool_call_count", "route",
    "route_count", "outcome",
]


@dataclass(frozen=True)
class Difference:
    """One way the re-run differs from the recording."""

    kind: DifferenceKind
    where: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.where}: expected {self.expected!r}, got {self.actual!r}"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"kind": self.kind, "where": self.where, "expected": self.expected,
                "actual": self.actual}


class ReplayDivergence(AuditError, AssertionError):  # noqa: N818 - the name users know
    """The replayed run diverged from the recorded one. ``differences`` lists every difference
    found (those seen live first, then routes, tool calls, counts, outcome); ``str(exc)`` spells
    them out."""

    def __init__(self, differences: Sequence[Difference]) -> None:
        self.differences = list(differences)
        lines = [f"replay diverged from the recording ({len(self.differences)} difference"
                 f"{'s' if len(self.differences) != 1 else ''}):"]
        lines += [f"  - [{d.kind}] {d}" for d in self.differences]
        super().__init__("\n".join(lines))
