"""Deterministic replay of recorded runs: what cannot be reproduced cannot be fixed.

- :class:`ReplayFixture`: error snapshots, successful results (mocks) and whole traces from JSONL.
- :func:`replay_trace`: re-run a recorded trace offline with :class:`ReplayChatModel` and replay
  tools, and get a :class:`ReplayDivergence` naming exactly what the re-run did differently.

See ``docs/replay.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chat_model import ReplayChatModel
    from .divergence import Difference, ReplayDivergence
    from .fixture import ReplayFixture, load_trace
    from .plan import (
        RecordedLLMCall,
        RecordedRoute,
        RecordedToolRun,
        ReplayPlan,
        build_plan,
        message_from_dict,
    )
    from .reading import CorruptLine, ScanStats, jsonl_files, scan
    from .recorded_errors import ReplayedToolError, rebuild_exception
    from .session import Replay, ReplayResult, replay_trace
    from .tools import ReplayTool, ToolLedger

# Imported on first use: ``llm-audit`` reads files without loading LangChain's model stack.
_WHERE = {
    "ReplayChatModel": "chat_model", "Difference": "divergence", "ReplayDivergence": "divergence",
    "ReplayFixture": "fixture", "load_trace": "fixture", "RecordedLLMCall": "plan",
    "RecordedRoute": "plan", "RecordedToolRun": "plan", "ReplayPlan": "plan", "build_plan": "plan",
    "message_from_dict": "plan", "CorruptLine": "reading", "ScanStats": "reading",
    "jsonl_files": "reading", "scan": "reading", "ReplayedToolError": "recorded_errors",
    "rebuild_exception": "recorded_errors", "Replay": "session", "ReplayResult": "session",
    "replay_trace": "session", "ReplayTool": "tools", "ToolLedger": "tools",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CorruptLine",
    "Difference",
    "RecordedLLMCall",
    "RecordedRoute",
    "RecordedToolRun",
    "Replay",
    "ReplayChatModel",
    "ReplayDivergence",
    "ReplayFixture",
    "ReplayPlan",
    "ReplayResult",
    "ReplayTool",
    "ReplayedToolError",
    "ScanStats",
    "ToolLedger",
    "build_plan",
    "jsonl_files",
    "load_trace",
    "message_from_dict",
    "rebuild_exception",
    "replay_trace",
    "scan",
]
