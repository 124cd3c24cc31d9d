"""``ReplayChatModel``: a chat model that gives the recorded answers again, in order.

Each call returns the next recorded AI message with its tool calls, usage and model id (so the
re-run's events carry the same tokens and cost), or raises the recorded provider error. Before
answering it checks that it is asked what was recorded: the call exists in the recording, the
prompt has the same messages (count and roles), and the same tools are offered. A mismatch is a
:class:`~llm_audit_langchain.replay.ReplayDivergence`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from ..testing import OfflineChatModel
from .divergence import Difference, ReplayDivergence
from .plan import RecordedLLMCall, message_from_dict
from .recorded_errors import rebuild_exception

DivergenceSink = Callable[[Difference], None]


def _where(call: RecordedLLMCall | None, number: int) -> str:
    place = f"LLM call #{number}"
    if call is not None and call.node is not None:
        place += f" (node {call.node!r}, step {call.step})"
    return place


def _offered_names(tools: Any) -> list[str] | None:
    if not tools:
        return None
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        names.append(str(name or (tool.get("name") if isinstance(tool, dict) else tool)))
    return names


class ReplayChatModel(OfflineChatModel):
    """Answers with ``calls`` (from :func:`~llm_audit_langchain.replay.replay_trace`) in order.

    Args:
        calls: the recorded LLM calls of one trace.
        check_prompts: compare each prompt's message count and roles with the recording.
        raise_on_divergence: raise :class:`ReplayDivergence` at the first difference (else only
            report it to ``on_divergence`` and answer anyway, when there is an answer).
        on_divergence: called with every difference found.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    calls: list[RecordedLLMCall] = Field(default_factory=list)
    model_name: str = "replay"
    provider: str = "replay"
    check_prompts: bool = True
    raise_on_divergence: bool = True
    on_divergence: DivergenceSink | None = Field(default=None, exclude=True)
    _cursor: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "replay-chat-model"

    @property
    def calls_made(self) -> int:
        """How many calls the re-run has made so far."""
        return self._cursor

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            index = self._cursor
            self._cursor += 1
        call = self.calls[index] if index < len(self.calls) else None
        differences = self._differences(call, index, messages, kwargs.get("tools"))
        if differences:
            for difference in differences:
                if self.on_divergence is not None:
                    self.on_divergence(difference)
            if self.raise_on_divergence or call is None:
                raise ReplayDivergence(differences)
        assert call is not None
        if call.error is not None:
            raise rebuild_exception(call.error)
        return ChatResult(generations=[ChatGeneration(message=self._answer(call))])

    def _differences(self, call: RecordedLLMCall | None, index: int,
                     messages: list[BaseMessage], tools: Any) -> list[Difference]:
        where = _where(call, index + 1)
        if call is None:
            return [Difference("llm_call_count", where,
                               f"at most {len(self.calls)} LLM call(s), as recorded",
                               f"call #{index + 1}")]
        found: list[Difference] = []
        if self.check_prompts and call.prompt:
            recorded = [str(m.get("type")) for m in call.prompt]
            live = [m.type for m in messages]
            if recorded != live:
                found.append(Difference("prompt", where + " prompt messages", recorded, live))
        offered = _offered_names(tools)
        if call.tools_offered is not None and offered is not None and \
                sorted(call.tools_offered) != sorted(offered):
            found.append(Difference("tools_offered", where + " tools offered",
                                    sorted(call.tools_offered), sorted(offered)))
        return found

    def _answer(self, call: RecordedLLMCall) -> AIMessage:
        recorded = dict(call.output or {"type": "ai", "content": ""})
        recorded.pop("id", None)  # a fresh run id; a kept one would read as a cache hit
        message = message_from_dict({**recorded, "type": "ai"})
        assert isinstance(message, AIMessage)
        model = call.model or self.model_name
        message.response_metadata = {**message.response_metadata, "model_name": model}
        return message
