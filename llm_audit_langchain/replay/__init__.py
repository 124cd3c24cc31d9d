"""Deterministic replay of recorded runs (seed 000 "Replay determinístico", seed 001 §7).

- :class:`ReplayFixture`: error snapshots, successful results (mocks) and whole traces from JSONL.
- :func:`replay_trace`: re-run a recorded trace offline with :class:`ReplayChatModel` and replay
  tools, and get a :class:`ReplayDivergence` naming exactly what the re-run did differently.

See ``docs/replay.md``.
"""

from __future__ import annotations

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
