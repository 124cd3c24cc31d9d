"""Deterministic fakes for tests, notebooks and the demo: no network, same output every run.

``ScriptedChatModel`` replays a list of ``AIMessage`` responses in order (tool calls included),
reports exact ``usage_metadata``, supports ``bind_tools`` and streaming (usage on the final chunk,
as real providers do)::

    model = ScriptedChatModel(responses=[
        AIMessage("", tool_calls=[
            {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}]),
        AIMessage("It is sunny in Paris."),
    ])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field, PrivateAttr


def count_words(messages: Sequence[BaseMessage]) -> int:
    """The fake tokenizer: one token per whitespace-separated word (at least one per message)."""
    return sum(max(1, len(str(m.content).split())) for m in messages)


class OfflineChatModel(BaseChatModel):
    """What every offline chat model here shares: a model id and provider reported to LangChain
    like a real integration's (``ls_model_name``, ``ls_provider``), and ``bind_tools``."""

    model_name: str = "offline-model"
    provider: str = "fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept tools like a real provider; the script or recording decides the calls."""
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


class ScriptedChatModel(OfflineChatModel):
    """A chat model that answers with ``responses`` in order (cycling), or with ``responder``.

    Token usage is exact and predictable: input tokens = words in the prompt (at least one per
    message), output tokens = words in the answer + 5 per tool call. ``fail_on`` maps a call index
    (0-based) to an exception raised instead of answering, to script provider errors.
    """

    responses: list[AIMessage] = Field(default_factory=list)
    responder: Callable[[list[BaseMessage]], AIMessage] | None = None
    """When set, answers are a function of the prompt instead of the script (safe under
    concurrency: the answer does not depend on call order)."""
    model_name: str = "scripted-model"
    fail_on: dict[int, BaseException] = Field(default_factory=dict)
    report_usage: bool = True
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    def _next(self) -> tuple[int, AIMessage]:
        with self._lock:
            index = self._calls
            self._calls += 1
        if index in self.fail_on:
            raise self.fail_on[index]
        if not self.responses:
            return index, AIMessage("")
        return index, self.responses[index % len(self.responses)]

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        _, scripted = self._next()
        if self.responder is not None:
            scripted = self.responder(messages)
        message = scripted.model_copy(deep=True)
        message.response_metadata = {**message.response_metadata, "model_name": self.model_name}
        if self.report_usage:
            message.usage_metadata = self._usage(messages, message)
        return message

    def _usage(self, messages: list[BaseMessage], answer: AIMessage) -> UsageMetadata:
        prompt = count_words(messages)
        completion = len(str(answer.content).split()) + 5 * len(answer.tool_calls)
        return UsageMetadata(
            input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer = self._answer(messages)
        words = str(answer.content).split(" ") if answer.content else []
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager is not None:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(answer.tool_calls)
                ],
                usage_metadata=answer.usage_metadata,
                response_metadata=answer.response_metadata,
                chunk_position="last",
            )
        )


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
