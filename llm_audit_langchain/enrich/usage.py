"""Token usage: one extraction path for every provider shape.

A chat model's ``on_llm_end`` hands over an :class:`~langchain_core.outputs.LLMResult`. Where the
token counts sit inside it depends on the integration and on how it was called (invoke, stream,
cache hit). :func:`extract_usage` reads them in a fixed order and says where it found them; when
the provider reported nothing it estimates with tiktoken and marks the result ``estimated``; when
that is impossible the counts are ``None`` with a ``reason``, never 0.

Example::

    >>> from llm_audit_langchain.enrich.usage import extract_usage
    >>> usage = extract_usage(response, prompt_messages=messages)
    >>> usage.input_tokens, usage.cache_read_tokens, usage.source
    (1200, 1000, 'usage_metadata')

All functions here are pure or guarded by a lock: the pipeline calls them from its worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from .tokens import count_tokens, estimate_tokens

__all__ = [
    "ResponseView",
    "TokenUsage",
    "estimate_tokens",
    "extract_usage",
    "is_cache_hit",
    "model_id_from",
    "provider_from",
]

BEDROCK_METRICS_KEY = "amazon-bedrock-invocationMetrics"
_LC_RUN_PREFIX = "lc_run--"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one LLM call, with where they came from.

    Semantics follow LangChain's ``usage_metadata`` whatever the provider's own layout:

    - ``input_tokens`` is **inclusive** of ``cache_read_tokens`` and ``cache_write_tokens``
      (Bedrock Converse and InvokeModel report them apart; they are added back here).
    - ``output_tokens`` is inclusive of ``reasoning_tokens``.
    - ``total_tokens`` is what the provider reported, else input + output.

    A count is ``None`` when it is unknown, never 0. ``estimated`` is True when the counts were
    made with tiktoken because the provider reported nothing; ``source`` says where they came
    from (``usage_metadata``; ``llm_output.token_usage`` or ``.usage``, and the same under
    ``response_metadata.`` and ``generation_info.``; ``bedrock.invocation_metrics``;
    ``tiktoken``; ``none``); ``reason`` says why a count is missing or estimated.
    """

    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    estimated: bool = False
    source: str = "none"
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict, for ``event.data["usage"]``."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_tokens": self.total_tokens, "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens, "estimated": self.estimated,
                "source": self.source, "reason": self.reason}


# --- reading integers -------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    """A token count, or None for anything that is not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0 or value != int(value):
        return None
    return int(value)


def _first_count(data: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        if (found := _count(data.get(key))) is not None:
            return found
    return None


def _nested_count(data: Mapping[str, Any], outer: str, inner: str) -> int | None:
    details = data.get(outer)
    return _count(details.get(inner)) if isinstance(details, Mapping) else None


def _plus(*parts: int | None) -> int | None:
    """Sum of the known parts; None when none is known."""
    known = [part for part in parts if part is not None]
    return sum(known) if known else None


def _total(reported: int | None, input_tokens: int | None, output_tokens: int | None) -> int | None:
    if reported is not None:
        return reported
    if input_tokens is None or output_tokens is None:
        return None
    return input_tokens + output_tokens


# --- one small parser per provider layout -----------------------------------------------------


def _from_usage_metadata(usage: Mapping[str, Any]) -> TokenUsage | None:
    """LangChain's standard ``AIMessage.usage_metadata`` (already inclusive)."""
    input_tokens = _count(usage.get("input_tokens"))
    output_tokens = _count(usage.get("output_tokens"))
    if input_tokens is None and output_tokens is None:
        return None  # e.g. a cache hit of a call that had no usage: only {"total_cost": 0}
    details = usage.get("input_token_details")
    details = details if isinstance(details, Mapping) else {}
    # Anthropic and Bedrock Converse split cache writes by TTL and leave the rest in
    # cache_creation, so the three add up to all cache-write tokens.
    cache_write = _plus(
        _count(details.get("cache_creation")),
        _count(details.get("ephemeral_5m_input_tokens")),
        _count(details.get("ephemeral_1h_input_tokens")),
    )
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=_total(_count(usage.get("total_tokens")), input_tokens, output_tokens),
        cache_read_tokens=_count(details.get("cache_read")),
        cache_write_tokens=cache_write,
        reasoning_tokens=_nested_count(usage, "output_token_details", "reasoning"),
        source="usage_metadata",
    )


def _from_openai_token_usage(usage: Mapping[str, Any], source: str) -> TokenUsage | None:
    """OpenAI's ``token_usage``: ``prompt_tokens`` already includes ``cached_tokens``."""
    input_tokens = _count(usage.get("prompt_tokens"))
    output_tokens = _count(usage.get("completion_tokens"))
    if input_tokens is None and output_tokens is None:
        return None
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=_total(_count(usage.get("total_tokens")), input_tokens, output_tokens),
        cache_read_tokens=_nested_count(usage, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_nested_count(usage, "completion_tokens_details", "reasoning_tokens"),
        source=source,
    )


def _from_exclusive_usage(usage: Mapping[str, Any], source: str) -> TokenUsage | None:
    """Bedrock InvokeModel / Anthropic ``usage``: input excludes cache reads and writes."""
    uncached = _first_count(usage, "prompt_tokens", "input_tokens")
    output_tokens = _first_count(usage, "completion_tokens", "output_tokens")
    if uncached is None and output_tokens is None:
        return None
    cache_read = _first_count(usage, "cache_read_input_tokens")
    cache_write = _first_count(usage, "cache_write_input_tokens", "cache_creation_input_tokens")
    input_tokens = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=_total(_count(usage.get("total_tokens")), input_tokens, output_tokens),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        source=source,
    )


def _from_usage_dict(usage: Mapping[str, Any], source: str) -> TokenUsage | None:
    """A ``usage`` dict: OpenAI's raw layout if it has OpenAI's details, else the exclusive one."""
    if "prompt_tokens_details" in usage or "completion_tokens_details" in usage:
        return _from_openai_token_usage(usage, source)
    return _from_exclusive_usage(usage, source)


def _from_bedrock_metrics(metrics: Mapping[str, Any]) -> TokenUsage | None:
    """``amazon-bedrock-invocationMetrics``: ``inputTokenCount`` excludes cache tokens."""
    renamed = {
        "input_tokens": metrics.get("inputTokenCount"),
        "output_tokens": metrics.get("outputTokenCount"),
        "cache_read_input_tokens": metrics.get("cacheReadInputTokenCount"),
        "cache_write_input_tokens": metrics.get("cacheWriteInputTokenCount"),
    }
    return _from_exclusive_usage(renamed, "bedrock.invocation_metrics")


# --- where to look, in order ------------------------------------------------------------------


_Output = tuple[BaseMessage | None, Mapping[str, Any] | None, str | None]


class ResponseView:
    """What the readers here take from an ``LLMResult``: per generation its message, its
    ``generation_info`` and (completion models) its text; and ``llm_output``. The handler queues
    this instead of the response: the result, its generations, their field sets and text
    accessors (~18 collector-tracked objects per agent run) would live until the worker drains,
    and each object held per queued run makes the host's garbage collector run more often."""

    __slots__ = ("llm_output", "outputs")

    def __init__(self, response: LLMResult) -> None:
        self.llm_output = response.llm_output
        self.outputs: tuple[_Output, ...] = tuple(
            (g.message, g.generation_info, None) if isinstance(g, ChatGeneration)
            else (None, g.generation_info, g.text)
            for per_prompt in response.generations for g in per_prompt)


Response = LLMResult | ResponseView


def _generations(response: Response) -> tuple[_Output, ...]:
    return (response if isinstance(response, ResponseView) else ResponseView(response)).outputs


def _usage_metadata_of(response: Response) -> TokenUsage | None:
    # A stream's final aggregated message carries the whole call's usage: never sum chunks.
    for message, _, _ in _generations(response):
        usage = getattr(message, "usage_metadata", None)
        if isinstance(usage, Mapping) and (found := _from_usage_metadata(usage)):
            return found
    return None


def _usage_in(container: Mapping[str, Any] | None, prefix: str) -> TokenUsage | None:
    """The legacy layouts, as found in ``llm_output`` or ``response_metadata``."""
    if not container:
        return None
    token_usage = container.get("token_usage")
    if isinstance(token_usage, Mapping) and (
        found := _from_openai_token_usage(token_usage, f"{prefix}.token_usage")
    ):
        return found
    usage = container.get("usage")
    if isinstance(usage, Mapping) and (found := _from_usage_dict(usage, f"{prefix}.usage")):
        return found
    metrics = container.get(BEDROCK_METRICS_KEY)
    return _from_bedrock_metrics(metrics) if isinstance(metrics, Mapping) else None


def _response_metadata_usage(response: Response) -> TokenUsage | None:
    for message, generation_info, _ in _generations(response):
        metadata = message.response_metadata if message is not None else None
        for container, prefix in (
            (metadata, "response_metadata"),
            (generation_info, "generation_info"),
        ):
            if found := _usage_in(container, prefix):
                return found
    return None


def _llm_output_usage(response: Response) -> TokenUsage | None:
    return _usage_in(response.llm_output, "llm_output")


_READERS: tuple[Callable[[Response], TokenUsage | None], ...] = (
    _usage_metadata_of,
    _llm_output_usage,
    _response_metadata_usage,
)


def extract_usage(
    response: LLMResult | ResponseView,
    *,
    prompt_messages: Sequence[BaseMessage] | Sequence[str] | None = None,
    model: str | None = None,
) -> TokenUsage:
    """Read the token usage of one LLM call from its ``on_llm_end`` response.

    Looks, in order, at ``AIMessage.usage_metadata`` (every modern chat model, streams included),
    ``llm_output["token_usage"]`` (OpenAI legacy), ``llm_output["usage"]`` (Bedrock InvokeModel),
    then the same keys and ``amazon-bedrock-invocationMetrics`` in ``response_metadata`` and
    ``generation_info``. If the provider reported nothing, counts the prompt (``prompt_messages``)
    and the generated text with tiktoken (``estimated=True``); if that is impossible the counts
    are ``None`` and ``reason`` says why.

    A cache hit returns the usage stored with the cached message; use :func:`is_cache_hit` so
    that it is not billed again.

    Example::

        >>> usage = extract_usage(response, prompt_messages=messages, model="gpt-4o")
        >>> event_data["usage"] = usage.as_dict()
    """
    for reader in _READERS:
        if found := reader(response):
            return found
    return _estimate_usage(response, prompt_messages, model)


# --- estimation -------------------------------------------------------------------------------


def _message_texts(message: BaseMessage) -> list[str]:
    texts = [str(message.text)]
    if isinstance(message, AIMessage):
        texts += [json.dumps(call["args"], ensure_ascii=False) for call in message.tool_calls]
    return texts


def _prompt_texts(prompt: Sequence[BaseMessage] | Sequence[str]) -> list[str]:
    texts: list[str] = []
    for item in prompt:
        texts += [item] if isinstance(item, str) else _message_texts(item)
    return texts


def _output_texts(response: Response) -> list[str]:
    texts: list[str] = []
    for message, _, text in _generations(response):
        texts += _message_texts(message) if message is not None else [text or ""]
    return texts


def _estimate_usage(
    response: Response,
    prompt: Sequence[BaseMessage] | Sequence[str] | None,
    model: str | None,
) -> TokenUsage:
    output_tokens, why = count_tokens(_output_texts(response), model)
    if output_tokens is None:
        return TokenUsage(None, None, None, reason=f"provider reported no usage; {why}")
    input_tokens: int | None = None
    note = "input not estimated: prompt not given"
    if prompt is not None:
        input_tokens, _ = count_tokens(_prompt_texts(prompt), model)
        note = "message text only, no chat-format overhead"
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=_total(None, input_tokens, output_tokens),
        estimated=True,
        source="tiktoken",
        reason=f"provider reported no usage; estimated with tiktoken ({why}); {note}",
    )


# --- model, provider, cache hits --------------------------------------------------------------

_RESPONSE_MODEL_KEYS = ("model_name", "model_id", "model")
_LLM_OUTPUT_MODEL_KEYS = ("model_id", "model_name", "model")
_PARAM_MODEL_KEYS = ("model", "model_id", "model_name")


def _first_str(data: Mapping[str, Any] | None, keys: Sequence[str]) -> str | None:
    for key in keys:
        value = (data or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _response_model(response: Response | None) -> str | None:
    if response is None:
        return None
    for message, _, _ in _generations(response):
        if message is not None and (
            found := _first_str(message.response_metadata, _RESPONSE_MODEL_KEYS)
        ):
            return found
    return _first_str(response.llm_output, _LLM_OUTPUT_MODEL_KEYS)


def model_id_from(
    response: LLMResult | ResponseView | None,
    metadata: Mapping[str, Any] | None,
    invocation_params: Mapping[str, Any] | None,
) -> str | None:
    """The model id of a call, as precise as the callbacks give it.

    Order: the response's ``response_metadata`` (``model_name``, ``model_id``, ``model``: what the
    provider answered with), ``llm_output`` (``model_id``, ``model_name``, ``model``), the start
    metadata's ``ls_model_name``, then ``invocation_params`` (``model``, ``model_id``,
    ``model_name``). ``None`` when none has it.
    """
    return (
        _response_model(response)
        or _first_str(metadata, ("ls_model_name",))
        or _first_str(invocation_params, _PARAM_MODEL_KEYS)
    )


# LangChain's ``_type`` of the integrations whose start metadata may lack ``ls_provider``.
_TYPE_TO_PROVIDER = (
    ("bedrock", "amazon_bedrock"),
    ("anthropic", "anthropic"),
    ("azure", "azure"),
    ("openai", "openai"),
)


def provider_from(
    metadata: Mapping[str, Any] | None, invocation_params: Mapping[str, Any] | None
) -> str | None:
    """The provider of a call: the start metadata's ``ls_provider`` (e.g. ``"amazon_bedrock"``).

    Falls back to ``ls_provider`` in ``invocation_params``, then to the integration's ``_type``
    (``"amazon_bedrock_converse_chat"`` -> ``"amazon_bedrock"``). ``None`` when unknown.
    """
    for source in (metadata, invocation_params):
        if found := _first_str(source, ("ls_provider",)):
            return found
    llm_type = _first_str(invocation_params, ("_type",)) or ""
    return next((provider for part, provider in _TYPE_TO_PROVIDER if part in llm_type), None)


def _run_id_in(message_id: str) -> str | None:
    """The run id inside a LangChain message id ``lc_run--<uuid>[-<index>]``."""
    if not message_id.startswith(_LC_RUN_PREFIX):
        return None
    return message_id[len(_LC_RUN_PREFIX) :][:36]


def is_cache_hit(message: BaseMessage, run_id: UUID | None = None) -> bool:
    """True when ``message`` came from LangChain's LLM cache rather than from the provider.

    LangChain sets no flag. What it does (langchain-core 1.7, ``_convert_cached_generations``):
    every cached ``AIMessage`` it returns gets ``usage_metadata["total_cost"] = 0``, even one
    that had no usage, and keeps the id of the run that first produced it
    (``lc_run--<old run id>-0``). So a message is a hit when its usage has ``total_cost == 0``,
    or, given the current ``run_id``, when its id names another run. Without ``run_id`` only the
    first signal is used. A hit's tokens were billed by the original call: do not bill it again.
    """
    usage = getattr(message, "usage_metadata", None)
    if isinstance(usage, Mapping) and "total_cost" in usage and usage["total_cost"] == 0:
        return True
    if run_id is None or not isinstance(message.id, str):
        return False
    embedded = _run_id_in(message.id)
    return embedded is not None and embedded != str(run_id)
