"""Bedrock first: real ChatBedrockConverse and ChatBedrock over a real boto3 client.

Nothing leaves the process: a ``before-send`` hook on the client answers each signed HTTP request
with canned bytes, so botocore parses them exactly as it parses AWS's replies (JSON bodies, token
count headers, and the binary ``vnd.amazon.eventstream`` framing of streams). botocore's
``Stubber`` cannot do streams (it rejects a list for an event-stream member), hence the hook.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any
from uuid import UUID

import pytest

pytest.importorskip("langchain_aws")
boto3 = pytest.importorskip("boto3")

from botocore.awsrequest import AWSResponse  # noqa: E402
from langchain_aws import ChatBedrock, ChatBedrockConverse  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.outputs import ChatGeneration, Generation, LLMResult  # noqa: E402

from llm_audit_langchain.enrich.pricing import calculate_cost  # noqa: E402
from llm_audit_langchain.enrich.usage import extract_usage, model_id_from, provider_from  # noqa: E402

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
US_HAIKU = "us.anthropic.claude-3-haiku-20240307-v1:0"
US_HAIKU_35 = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
EVENT_STREAM = {"content-type": "application/vnd.amazon.eventstream"}


# --- a fake AWS at the HTTP layer -------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    string_type = b"\x07"
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + string_type
        + struct.pack("!H", len(raw_value))
        + raw_value
    )


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One message of the AWS event-stream binary format (prelude, headers, payload, CRCs)."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    prelude = struct.pack("!II", 12 + len(headers) + len(body) + 4, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack("!I", binascii.crc32(message))


def chunk(payload: dict[str, Any]) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` event carrying a model's JSON."""
    return event("chunk", {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()})


class _RawBody:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield self._data

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        data, self._data = self._data, b""
        return data

    def close(self) -> None:
        pass


def bedrock_client(*replies: tuple[dict[str, str], bytes]) -> Any:
    """A real bedrock-runtime client (dummy credentials) whose HTTP replies are ``replies``."""
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    queue = list(replies)
    sent: list[str] = []

    def send(request: Any, **kwargs: Any) -> AWSResponse:
        sent.append(request.url)
        headers, body = queue.pop(0)
        return AWSResponse(request.url, 200, headers, _RawBody(body))

    client.meta.events.register("before-send.bedrock-runtime", send)
    client.sent = sent
    return client


class Recorder(BaseCallbackHandler):
    """Keeps what the audit handler would see: start metadata, params, the end response."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.responses: list[LLMResult] = []
        self.errors: list[tuple[BaseException, dict[str, Any]]] = []

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.metadata = kwargs.get("metadata") or {}
        self.params = kwargs.get("invocation_params") or {}

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.responses.append(response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors.append((error, kwargs))


def converse_reply(usage: dict[str, int], text: str = "hi there") -> tuple[dict[str, str], bytes]:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": usage,
        "metrics": {"latencyMs": 12},
    }
    return {"content-type": "application/json"}, json.dumps(body).encode()


def converse_stream_reply(usage: dict[str, int]) -> tuple[dict[str, str], bytes]:
    events = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"delta": {"text": "hi "}, "contentBlockIndex": 0}),
        event("contentBlockDelta", {"delta": {"text": "there"}, "contentBlockIndex": 0}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}),
    ]
    return EVENT_STREAM, b"".join(events)


def invoke_model_reply(
    input_tokens: int, output_tokens: int, **body_extra: Any
) -> tuple[dict[str, str], bytes]:
    """An Anthropic-on-Bedrock InvokeModel reply: tokens in the body and in the headers."""
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "hi there"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        **body_extra,
    }
    headers = {
        "content-type": "application/json",
        "x-amzn-bedrock-input-token-count": str(input_tokens),
        "x-amzn-bedrock-output-token-count": str(output_tokens),
    }
    return headers, json.dumps(body).encode()


def invoke_model_stream_reply(
    input_tokens: int, output_tokens: int
) -> tuple[dict[str, str], bytes]:
    metrics = {"inputTokenCount": input_tokens, "outputTokenCount": output_tokens}
    events = [
        chunk(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "claude-3-haiku-20240307",
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            }
        ),
        chunk(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        ),
        chunk(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi there"},
            }
        ),
        chunk({"type": "content_block_stop", "index": 0}),
        chunk(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": output_tokens},
            }
        ),
        chunk({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}),
    ]
    return EVENT_STREAM, b"".join(events)


def only_response(recorder: Recorder) -> LLMResult:
    assert len(recorder.responses) == 1
    return recorder.responses[0]


# --- ChatBedrockConverse ----------------------------------------------------------------------


def test_converse_invoke_usage_model_and_cost() -> None:
    client = bedrock_client(converse_reply({"inputTokens": 1000, "outputTokens": 500}))
    model = ChatBedrockConverse(model=US_HAIKU, client=client, region_name="us-east-1")
    recorder = Recorder()

    model.invoke("hello", config={"callbacks": [recorder]})

    response = only_response(recorder)
    assert "/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/converse" in client.sent[0]
    assert response.llm_output is None  # DESIGN.md §5: Converse never fills llm_output
    usage = extract_usage(response)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1000, 500, 1500)
    assert usage.source == "usage_metadata"
    assert not usage.estimated
    model_id = model_id_from(response, recorder.metadata, recorder.params)
    provider = provider_from(recorder.metadata, recorder.params)
    assert (model_id, provider) == (US_HAIKU, "amazon_bedrock")
    cost = calculate_cost(model_id, usage.input_tokens, usage.output_tokens, provider=provider)
    assert cost == pytest.approx(0.000875, abs=1e-12)


def test_converse_counts_cache_tokens_inside_input_and_prices_them() -> None:
    usage_reply = {
        "inputTokens": 700,
        "outputTokens": 500,
        "totalTokens": 1500,
        "cacheReadInputTokens": 200,
        "cacheWriteInputTokens": 100,
    }
    model = ChatBedrockConverse(
        model=US_HAIKU_35, client=bedrock_client(converse_reply(usage_reply)), region_name="x"
    )
    recorder = Recorder()

    model.invoke("hello", config={"callbacks": [recorder]})

    usage = extract_usage(only_response(recorder))
    assert usage.input_tokens == 1000  # 700 uncached + 200 read + 100 written
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (200, 100)
    cost = calculate_cost(
        US_HAIKU_35,
        usage.input_tokens,
        usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        provider="amazon_bedrock",
    )
    # claude-3.5-haiku on Bedrock: $0.80 in, $0.08 cache read, $1.00 cache write, $4 out per 1M
    expected = (700 * 0.80 + 200 * 0.08 + 100 * 1.00 + 500 * 4.00) / 1e6
    assert cost == pytest.approx(expected, abs=1e-12)


def test_converse_stream_usage_is_the_final_aggregate() -> None:
    usage_reply = {"inputTokens": 1000, "outputTokens": 500, "totalTokens": 1500}
    model = ChatBedrockConverse(
        model=US_HAIKU, client=bedrock_client(converse_stream_reply(usage_reply)), region_name="x"
    )
    recorder = Recorder()

    text = "".join(
        str(part.text) for part in model.stream("hello", config={"callbacks": [recorder]})
    )

    assert text == "hi there"
    response = only_response(recorder)
    assert response.llm_output is None
    usage = extract_usage(response)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1000, 500, 1500)
    assert model_id_from(response, recorder.metadata, recorder.params) == US_HAIKU


# --- ChatBedrock (InvokeModel) ----------------------------------------------------------------


def test_chat_bedrock_invoke_puts_usage_in_llm_output_too() -> None:
    model = ChatBedrock(
        model_id=US_HAIKU, client=bedrock_client(invoke_model_reply(1000, 500)), region_name="x"
    )
    recorder = Recorder()

    model.invoke("hello", config={"callbacks": [recorder]})

    response = only_response(recorder)
    assert response.llm_output is not None
    assert response.llm_output["usage"]["prompt_tokens"] == 1000
    usage = extract_usage(response)
    assert (usage.input_tokens, usage.output_tokens, usage.source) == (1000, 500, "usage_metadata")
    # Without usage_metadata, the llm_output layout alone gives the same numbers.
    generation = response.generations[0][0]
    assert isinstance(generation, ChatGeneration)
    bare = generation.message.model_copy(update={"usage_metadata": None, "response_metadata": {}})
    legacy = LLMResult(generations=[[ChatGeneration(message=bare)]], llm_output=response.llm_output)
    assert extract_usage(legacy) == usage.__class__(
        1000, 500, 1500, cache_read_tokens=0, cache_write_tokens=0, source="llm_output.usage"
    )
    model_id = model_id_from(response, recorder.metadata, recorder.params)
    assert model_id == US_HAIKU
    assert calculate_cost(model_id, 1000, 500) == pytest.approx(0.000875, abs=1e-12)


def test_chat_bedrock_stream_takes_the_invocation_metrics_once() -> None:
    model = ChatBedrock(
        model_id=HAIKU, client=bedrock_client(invoke_model_stream_reply(1000, 500)), region_name="x"
    )
    recorder = Recorder()

    text = "".join(
        str(part.text) for part in model.stream("hello", config={"callbacks": [recorder]})
    )

    assert text == "hi there"
    response = only_response(recorder)
    usage = extract_usage(response)
    # message_start also carries input_tokens: they must not be counted a second time.
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1000, 500, 1500)
    assert model_id_from(response, recorder.metadata, recorder.params) == HAIKU


def test_chat_bedrock_guardrail_intervention_still_ends_with_usage() -> None:
    reply = invoke_model_reply(
        30,
        4,
        **{"amazon-bedrock-guardrailAction": "INTERVENED", "amazon-bedrock-trace": {}},
    )
    guardrails = {"guardrailIdentifier": "gid", "guardrailVersion": "1", "trace": True}
    model = ChatBedrock(
        model_id=HAIKU, client=bedrock_client(reply), region_name="x", guardrails=guardrails
    )
    recorder = Recorder()

    model.invoke("hello", config={"callbacks": [recorder]})

    assert [kwargs.get("reason") for _, kwargs in recorder.errors] == ["GUARDRAIL_INTERVENED"]
    usage = extract_usage(only_response(recorder))
    assert (usage.input_tokens, usage.output_tokens) == (30, 4)
    assert calculate_cost(HAIKU, 30, 4) == pytest.approx((30 * 0.25 + 4 * 1.25) / 1e6, abs=1e-15)


def test_bedrock_metrics_in_a_completion_generation() -> None:
    """BedrockLLM-style completion output: only ``amazon-bedrock-invocationMetrics``."""
    metrics = {
        "inputTokenCount": 12,
        "outputTokenCount": 3,
        "cacheReadInputTokenCount": 5,
        "cacheWriteInputTokenCount": 0,
    }
    info = {"amazon-bedrock-invocationMetrics": metrics}
    response = LLMResult(generations=[[Generation(text="ok", generation_info=info)]])

    usage = extract_usage(response)

    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (17, 3, 20)
    assert usage.cache_read_tokens == 5
    assert usage.source == "bedrock.invocation_metrics"


# ---- through the audit handler: what lands in the exported events -------------------------


def audited_events(run: Any) -> list[Any]:
    from llm_audit_langchain import AuditCallbackHandler, AuditConfig, MemoryExporter

    memory = MemoryExporter()
    handler = AuditCallbackHandler(exporters=[memory],
                                   config=AuditConfig(debug=True, flush_interval_ms=20))
    run({"callbacks": [handler]})
    assert handler.flush(10)
    handler.shutdown(5)
    return memory.events


@pytest.mark.parametrize("streamed", [False, True])
def test_handler_records_converse_tokens_model_and_cost(streamed: bool) -> None:
    usage = {"inputTokens": 1000, "outputTokens": 500}
    reply = converse_stream_reply(usage) if streamed else converse_reply(usage)
    model = ChatBedrockConverse(model=US_HAIKU, client=bedrock_client(reply),
                                region_name="us-east-1")
    events = audited_events(lambda config: list(model.stream("hello", config=config))
                            if streamed else model.invoke("hello", config=config))
    [call] = [e for e in events if e.event_type == "llm.invoke"]
    assert (call.tokens_input, call.tokens_output, call.model) == (1000, 500, US_HAIKU)
    assert call.cost_usd == pytest.approx(0.000875, abs=1e-12)
    assert call.data["provider"] == "amazon_bedrock"
    assert call.data["streamed"] is streamed
    [efficiency] = [e for e in events if e.event_type == "prompt.efficiency"]
    assert efficiency.data["context_window"] == 200_000
    assert efficiency.data["context_window_use"] == pytest.approx(1000 / 200_000)


def test_handler_records_chat_bedrock_guardrail_and_usage() -> None:
    reply = invoke_model_reply(
        30, 4, **{"amazon-bedrock-guardrailAction": "INTERVENED", "amazon-bedrock-trace": {}})
    guardrails = {"guardrailIdentifier": "gid", "guardrailVersion": "1", "trace": True}
    model = ChatBedrock(model_id=HAIKU, client=bedrock_client(reply), region_name="x",
                        guardrails=guardrails)
    events = audited_events(lambda config: model.invoke("hello", config=config))
    [guardrail] = [e for e in events if e.event_type == "llm.guardrail"]
    [call] = [e for e in events if e.event_type == "llm.invoke"]
    assert guardrail.span_id == call.span_id and guardrail.data["reason"] == "GUARDRAIL_INTERVENED"
    assert (call.tokens_input, call.tokens_output) == (30, 4)
    assert call.cost_usd == pytest.approx((30 * 0.25 + 4 * 1.25) / 1e6, abs=1e-15)
    assert not [e for e in events if e.status == "error"]
