"""Decision records and overrides (an immutable decision log), and prompt versions.

A decision record ties one LLM decision to exactly what produced it, by hash: the input
messages, the system prompt (and its readable version), the model and its generation
parameters, the output, and the tools it chose. It is derived from an ``llm.invoke`` event, so
it can be rebuilt from the audit chain at any time; an override by a person is a new record in
the chain that names the original decision's ``event_id`` (records are never edited).

Example::

    >>> record = decision_record(event)            # event.event_type == "llm.invoke"
    >>> record["prompt_version"], record["tools_chosen"]
    ('sha256:3f1a9c0b7d2e', [{'name': 'lookup', 'id': 'call_1'}])
    >>> record_override(log, event, overridden_by="ana@bank", reason="limit exceeded",
    ...                 final_decision="refer to credit desk")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from ..events import AuditEvent, AuditEventType
from .hashing import sha256_hex

if TYPE_CHECKING:
    from .chain import AuditLogExporter

OVERRIDE_ACTION = "decision.override"
"""``action`` of an override record (``event_type`` is ``agent.decision``)."""

GENERATION_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "max_new_tokens",
    "stop",
    "stop_sequences",
    "seed",
    "n",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "logit_bias",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "thinking",
    # Bedrock Converse spells them in camelCase
    "maxTokens",
    "topP",
    "stopSequences",
)
"""Invocation parameters kept in ``generation_params``: what changes the model's answer."""

_MODEL_KEYS = ("model", "model_name", "model_id")


def prompt_version(text_or_template: Any) -> str:
    """A short, readable version id of a prompt: ``sha256:`` and 12 hex of its canonical hash.

    Accepts a string, a LangChain prompt template (``PromptTemplate``, ``ChatPromptTemplate``:
    the template text, not a rendering, so the id names the template), or message dicts. The
    same text gives the same id whether passed as a string or as a ``PromptTemplate``.
    """
    return "sha256:" + sha256_hex(_prompt_form(text_or_template))[:12]


def _prompt_form(prompt: Any) -> Any:
    """What of a prompt is hashed: its text, or the templates and roles of its messages."""
    template = getattr(prompt, "template", None)
    if isinstance(template, str):
        return template
    messages = getattr(prompt, "messages", None)
    if isinstance(messages, list) and not isinstance(prompt, Mapping):
        return [_message_form(message) for message in messages]
    return prompt


def _message_form(message: Any) -> Any:
    inner = getattr(message, "prompt", None)
    if inner is not None:  # SystemMessagePromptTemplate and friends
        return {"role": type(message).__name__, "template": _prompt_form(inner)}
    variable = getattr(message, "variable_name", None)
    if isinstance(variable, str):  # MessagesPlaceholder
        return {"placeholder": variable}
    content = getattr(message, "content", None)
    if content is not None:  # a fixed BaseMessage
        return {"type": getattr(message, "type", type(message).__name__), "content": content}
    return message


def decision_record(
    event: AuditEvent,
    raw: Mapping[str, Any] | None = None,
    *,
    checkpoints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The decision record of an LLM event (pure: no I/O, same event → same record).

    Hashes are taken over ``event.data``, which is sanitized; pass the unsanitized payload as
    ``raw`` (same keys: ``messages``, ``output``, ``invocation_params``, ``tool_calls``) to hash
    what the model really saw, so the hashes can be matched against the original data kept
    elsewhere. ``hashed_from`` says which was used.

    ``checkpoints`` maps LangGraph task ids to the checkpoint each task ran from (recorded by
    ``AuditedCheckpointSaver``; ``ContextHistory.task_checkpoints``): the record then names the
    context version (``checkpoint_id``) the decision was made from.
    """
    source: Mapping[str, Any] = event.data if raw is None else raw
    messages = source.get("messages")
    output = source.get("output")
    params = source.get("invocation_params") or {}
    system = _system_prompt(messages)
    metadata = event.data.get("metadata")
    template = event.data.get("prompt_version") or (
        metadata.get("prompt_version") if isinstance(metadata, Mapping) else None)
    task_id = graph_task_id(event)
    offered = _tool_names(params.get("tools")) or [
        str(name) for name in event.data.get("tools_offered") or ()]  # the handler moves them
    return {
        "decision_id": event.event_id,
        "decision_type": str(event.event_type),
        "timestamp": event.timestamp.isoformat(),
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "parent_span_id": event.parent_span_id,
        "agent": event.agent,
        "action": event.action,
        "status": event.status,
        "input_hash": None if messages is None else sha256_hex(messages),
        "prompt_hash": None if system is None else sha256_hex(system),
        "prompt_version": None if system is None else prompt_version(system),
        "template_version": template,
        "model_id": event.model or _first(params, _MODEL_KEYS),
        "model_version": _model_version(output),
        "generation_params": {name: params[name] for name in GENERATION_PARAMS if name in params},
        "tools_offered": offered,
        "output_hash": None if output is None else sha256_hex(output),
        "tools_chosen": _tools_chosen(source, output),
        "hashed_from": "event" if raw is None else "raw",
        "thread_id": event.data.get("thread_id"),
        "task_id": task_id,
        "checkpoint_id": event.data.get("checkpoint_id") or (
            checkpoints.get(task_id) if checkpoints is not None and task_id else None),
        "was_overridden": False,
        "overridden_by": None,
        "override_reason": None,
        "final_decision": None,
    }


def graph_task_id(event: AuditEvent) -> str | None:
    """The LangGraph task an event happened in (the last id of its checkpoint namespace)."""
    graph = event.data.get("langgraph")
    namespace = graph.get("checkpoint_ns") if isinstance(graph, Mapping) else None
    if not isinstance(namespace, str) or ":" not in namespace:
        return None
    return namespace.rsplit("|", 1)[-1].split(":", 1)[1] or None


def _flat_messages(messages: Any) -> list[Mapping[str, Any]]:
    """Message dicts, also from the list-of-lists form a batched chat model start gives."""
    if not isinstance(messages, list):
        return []
    flat: list[Mapping[str, Any]] = []
    for item in messages:
        if isinstance(item, list):
            flat.extend(m for m in item if isinstance(m, Mapping))
        elif isinstance(item, Mapping):
            flat.append(item)
    return flat


def _system_prompt(messages: Any) -> Any:
    """The system prompt's content (a list when there are several), or None."""
    contents = [
        m.get("content")
        for m in _flat_messages(messages)
        if m.get("type") == "system" or m.get("role") == "system"
    ]
    if not contents:
        return None
    return contents[0] if len(contents) == 1 else contents


def _first(mapping: Mapping[str, Any], keys: Iterable[str]) -> Any:
    return next((mapping[key] for key in keys if mapping.get(key)), None)


def _model_version(output: Any) -> Any:
    """The model as the provider reported it (a dated version, a fingerprint), if it did."""
    if not isinstance(output, Mapping):
        return None
    meta = output.get("response_metadata") or {}
    if not isinstance(meta, Mapping):
        return None
    return _first(meta, ("model_version", "model_name", "model_id", "model", "system_fingerprint"))


def _tool_names(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        return []
    names: list[str] = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        spec = tool.get("toolSpec")
        name = (
            tool.get("name")
            or (function.get("name") if isinstance(function, Mapping) else None)
            or (spec.get("name") if isinstance(spec, Mapping) else None)
        )
        if isinstance(name, str):
            names.append(name)
    return names


def _tools_chosen(source: Mapping[str, Any], output: Any) -> list[dict[str, Any]]:
    calls = source.get("tool_calls")
    if calls is None and isinstance(output, Mapping):
        calls = output.get("tool_calls")
    if not isinstance(calls, list):
        return []
    return [
        {"name": call.get("name"), "id": call.get("id")}
        for call in calls
        if isinstance(call, Mapping)
    ]


def override_event(
    original: AuditEvent | str,
    *,
    overridden_by: str,
    reason: str,
    final_decision: Any = None,
    at: datetime | None = None,
) -> AuditEvent:
    """The record of a person overriding a decision (pure; :func:`record_override` appends it).

    It joins the original's trace, as a child of its span, when ``original`` is the event; with
    only an event id it starts a trace of its own.
    """
    if isinstance(original, AuditEvent):
        original_id, trace_id, parent, agent = (
            original.event_id,
            original.trace_id,
            original.span_id,
            original.agent,
        )
    else:
        original_id, trace_id, parent, agent = original, uuid4().hex, None, "human"
    return AuditEvent(
        event_id=uuid4().hex,
        trace_id=trace_id,
        span_id=uuid4().hex[:16],
        parent_span_id=parent,
        timestamp=at or datetime.now(UTC),
        event_type=AuditEventType.AGENT_DECISION,
        agent=agent,
        action=OVERRIDE_ACTION,
        data={
            "override_of": original_id,
            "was_overridden": True,
            "overridden_by": overridden_by,
            "override_reason": reason,
            "final_decision": final_decision,
        },
    )


def record_override(
    log: AuditLogExporter,
    original: AuditEvent | str,
    *,
    overridden_by: str,
    reason: str,
    final_decision: Any = None,
) -> AuditEvent:
    """Append an override of ``original`` (an event or its ``event_id``) to the chain.

    Synchronous, unlike the pipeline: it returns once the record is on disk in the chain, and
    raises :class:`~.chain.AuditChainError` when it could not be written.
    """
    event = override_event(
        original, overridden_by=overridden_by, reason=reason, final_decision=final_decision
    )
    log.append([event])
    return event


def apply_override(decision: Mapping[str, Any], override: AuditEvent) -> dict[str, Any]:
    """``decision`` as amended by ``override`` (both as they are in the chain)."""
    data = override.data
    if data.get("override_of") != decision.get("decision_id"):
        raise ValueError("the override names another decision")
    return {
        **decision,
        "was_overridden": True,
        "overridden_by": data.get("overridden_by"),
        "override_reason": data.get("override_reason"),
        "final_decision": data.get("final_decision"),
        "override_id": override.event_id,
    }


__all__ = [
    "GENERATION_PARAMS",
    "OVERRIDE_ACTION",
    "apply_override",
    "decision_record",
    "graph_task_id",
    "override_event",
    "prompt_version",
    "record_override",
]
