"""Decision records, prompt versions and overrides (seed 002 §4.3.1 and 4.3.2)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from audit_chain_helpers import make_event, records
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate

from llm_audit_langchain.audit import (
    OVERRIDE_ACTION,
    AuditLogExporter,
    apply_override,
    canonical_json,
    decision_record,
    prompt_version,
    record_override,
    verify,
)
from llm_audit_langchain.events import AuditEvent, AuditEventType

SYSTEM = "You are a careful credit analyst."


def llm_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messages": [
            {"type": "system", "content": SYSTEM},
            {"type": "human", "content": "Raise my limit to 5000"},
        ],
        "output": {
            "type": "ai",
            "content": "",
            "tool_calls": [{"name": "credit_score", "args": {"id": 7}, "id": "call_1"}],
            "response_metadata": {"model_name": "claude-3-5-sonnet-20240620"},
        },
        "invocation_params": {
            "model": "claude-3-5-sonnet",
            "temperature": 0.2,
            "max_tokens": 512,
            "top_p": 0.9,
            "api_key": "must-not-be-copied",
            "tools": [{"type": "function", "function": {"name": "credit_score"}}],
        },
        "tool_calls": [{"name": "credit_score", "args": {"id": 7}, "id": "call_1"}],
    }
    data.update(overrides)
    return data


def llm_event(**data: Any) -> AuditEvent:
    return make_event(
        event_type=AuditEventType.LLM_INVOKE,
        agent="analyst",
        action="ChatAnthropic",
        data=llm_data(**data),
    )


def sha(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def test_decision_record_ties_the_decision_to_its_inputs_by_hash() -> None:
    event = llm_event()
    record = decision_record(event)
    data = event.data
    assert record["decision_id"] == event.event_id
    assert record["decision_type"] == "llm.invoke"
    assert record["input_hash"] == sha(data["messages"])
    assert record["prompt_hash"] == sha(SYSTEM)
    assert record["prompt_version"] == prompt_version(SYSTEM) == "sha256:" + sha(SYSTEM)[:12]
    assert record["output_hash"] == sha(data["output"])
    assert record["model_id"] == "claude-3-5-sonnet"
    assert record["model_version"] == "claude-3-5-sonnet-20240620"
    assert record["generation_params"] == {"temperature": 0.2, "max_tokens": 512, "top_p": 0.9}
    assert record["tools_offered"] == ["credit_score"]
    assert record["tools_chosen"] == [{"name": "credit_score", "id": "call_1"}]
    assert (record["was_overridden"], record["overridden_by"], record["override_reason"]) == (
        False,
        None,
        None,
    )
    assert "must-not-be-copied" not in json.dumps(record)
    assert decision_record(event) == record  # pure


def test_the_event_model_field_wins_and_tool_calls_fall_back_to_the_output() -> None:
    event = llm_event(tool_calls=None)
    event = event.model_copy(update={"model": "anthropic.claude-v2"})
    record = decision_record(event)
    assert record["model_id"] == "anthropic.claude-v2"
    assert record["tools_chosen"] == [{"name": "credit_score", "id": "call_1"}]


def test_raw_payload_is_hashed_instead_of_the_sanitized_event() -> None:
    event = llm_event(messages=[{"type": "human", "content": "my card is [REDACTED]"}])
    raw = llm_data(messages=[{"type": "human", "content": "my card is 4111 1111 1111 1111"}])
    from_event, from_raw = decision_record(event), decision_record(event, raw)
    assert from_event["input_hash"] != from_raw["input_hash"] == sha(raw["messages"])
    assert (from_event["hashed_from"], from_raw["hashed_from"]) == ("event", "raw")
    assert "4111" not in json.dumps(from_raw)


def test_missing_parts_give_none_not_a_hash_of_nothing() -> None:
    event = make_event(event_type=AuditEventType.LLM_INVOKE, data={})
    record = decision_record(event)
    assert record["input_hash"] is None and record["output_hash"] is None
    assert record["prompt_version"] is None and record["tools_chosen"] == []


def test_batched_messages_and_several_system_messages() -> None:
    messages = [[{"type": "system", "content": "a"}, {"type": "system", "content": "b"}]]
    record = decision_record(llm_event(messages=messages))
    assert record["prompt_hash"] == sha(["a", "b"])


def test_prompt_version_is_the_same_for_a_text_and_its_template() -> None:
    text = "Summarise {document} for an auditor."
    assert prompt_version(PromptTemplate.from_template(text)) == prompt_version(text)
    assert prompt_version(text) != prompt_version(text + " ")
    assert prompt_version(text).startswith("sha256:") and len(prompt_version(text)) == 19


def test_chat_template_versions_follow_the_templates_not_the_renderings() -> None:
    def chat(system: str) -> ChatPromptTemplate:
        return ChatPromptTemplate.from_messages(
            [("system", system), MessagesPlaceholder("history"), ("human", "{question}")]
        )

    assert prompt_version(chat(SYSTEM)) == prompt_version(chat(SYSTEM))
    assert prompt_version(chat(SYSTEM)) != prompt_version(chat(SYSTEM + "!"))
    swapped = ChatPromptTemplate.from_messages([("human", SYSTEM), ("human", "{question}")])
    assert prompt_version(swapped) != prompt_version(
        ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "{question}")])
    )


def test_template_version_from_run_metadata_is_carried() -> None:
    version = prompt_version(PromptTemplate.from_template("Hello {name}"))
    record = decision_record(llm_event(metadata={"prompt_version": version}))
    assert record["template_version"] == version


def test_record_override_appends_a_linked_record_to_the_chain(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path, key=b"k")
    decision = llm_event()
    log.export([decision, make_event()])
    override = record_override(
        log,
        decision,
        overridden_by="ana@bank",
        reason="limit above policy",
        final_decision="refer to the credit desk",
    )
    chain = records(tmp_path)
    assert len(chain) == 3 and chain[-1]["event_id"] == override.event_id
    assert chain[-1]["action"] == OVERRIDE_ACTION
    assert chain[-1]["event_type"] == "agent.decision"
    assert chain[-1]["trace_id"] == decision.trace_id
    assert chain[-1]["parent_span_id"] == decision.span_id
    assert chain[-1]["data"]["override_of"] == decision.event_id
    assert verify(tmp_path, key=b"k").ok

    amended = apply_override(decision_record(decision), override)
    assert amended["was_overridden"] is True
    assert amended["overridden_by"] == "ana@bank"
    assert amended["override_reason"] == "limit above policy"
    assert amended["final_decision"] == "refer to the credit desk"
    assert decision_record(decision)["was_overridden"] is False  # the original is never edited


def test_override_by_event_id_alone_and_of_another_decision(tmp_path: Path) -> None:
    log = AuditLogExporter(tmp_path)
    override = record_override(log, "ab" * 16, overridden_by="ops", reason="manual")
    assert override.data["override_of"] == "ab" * 16
    with pytest.raises(ValueError, match="another decision"):
        apply_override(decision_record(llm_event()), override)
