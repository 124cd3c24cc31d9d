"""A recorded trace turned into what a replay needs: the LLM answers, the tool results and
errors, the routing decisions and the final outcome, each in the order they happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from ..events import AuditEvent, AuditEventType, ErrorDetail
from .reading import in_trace_order

E = AuditEventType
_LLM_KINDS = (E.LLM_INVOKE, E.LLM_ERROR)
_TOOL_KINDS = (E.TOOL_RESULT, E.TOOL_ERROR)


@dataclass(frozen=True)
class RecordedLLMCall:
    """One recorded chat model call: what it was asked, what it answered (or how it failed)."""

    index: int
    span_id: str
    prompt: list[dict[str, Any]]
    output: dict[str, Any] | None
    tools_offered: list[str] | None
    error: ErrorDetail | None
    model: str | None
    provider: str | None
    node: str | None
    step: int | None


@dataclass(frozen=True)
class RecordedToolRun:
    """One recorded tool run: its name and arguments, and its output or error."""

    index: int
    span_id: str
    name: str
    args: Any
    output: Any
    error: ErrorDetail | None
    status: str
    tool_call_id: str | None
    node: str | None
    step: int | None


@dataclass(frozen=True)
class RecordedRoute:
    """One decision of a conditional edge: from which node, to where, at which step."""

    from_node: str | None
    destination: Any
    step: int | None


@dataclass
class ReplayPlan:
    """Everything of one trace a replay replays, in recorded order."""

    trace_id: str
    events: list[AuditEvent]
    root: AuditEvent | None
    inputs: Any
    llm_calls: list[RecordedLLMCall] = field(default_factory=list)
    tool_runs: list[RecordedToolRun] = field(default_factory=list)
    routes: list[RecordedRoute] = field(default_factory=list)

    @property
    def error(self) -> ErrorDetail | None:
        """The error the whole run ended with (the root span's), or None if it succeeded."""
        return self.root.error if self.root is not None else None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``llm-audit replay --json``)."""
        return {
            "trace_id": self.trace_id,
            "inputs": self.inputs,
            "llm_calls": [
                {"index": c.index, "node": c.node, "step": c.step, "model": c.model,
                 "prompt_messages": len(c.prompt), "tools_offered": c.tools_offered,
                 "output": c.output, "error": _error_dict(c.error)}
                for c in self.llm_calls
            ],
            "tool_runs": [
                {"index": t.index, "node": t.node, "step": t.step, "name": t.name,
                 "args": t.args, "tool_call_id": t.tool_call_id, "status": t.status,
                 "output": t.output, "error": _error_dict(t.error)}
                for t in self.tool_runs
            ],
            "routes": [vars(r) for r in self.routes],
            "error": _error_dict(self.error),
        }


def _error_dict(error: ErrorDetail | None) -> dict[str, Any] | None:
    return None if error is None else {"type": error.type, "message": error.message}


def _graph(event: AuditEvent) -> tuple[str | None, int | None]:
    info = event.data.get("langgraph")
    if not isinstance(info, dict):
        return None, None
    step = info.get("step")
    return info.get("node"), step if isinstance(step, int) else None


def is_run_root(event: AuditEvent) -> bool:
    """True for the span of the outermost LangChain run (the graph invoke): ``data.run_root``,
    or ``data.trace_root`` as written before the handler recorded ``run_root``."""
    return event.is_span and bool(event.data.get("run_root") or event.data.get("trace_root"))


def build_plan(trace_id: str, events: list[AuditEvent]) -> ReplayPlan:
    """The replay plan of one trace's events (any order; they are sorted here)."""
    ordered = in_trace_order(events)
    root = next((e for e in ordered if is_run_root(e)), None)
    plan = ReplayPlan(trace_id, ordered, root, _root_inputs(root))
    for event in ordered:
        node, step = _graph(event)
        if event.event_type in _LLM_KINDS and event.is_span:
            plan.llm_calls.append(_llm_call(len(plan.llm_calls), event, node, step))
        elif event.event_type in _TOOL_KINDS and event.is_span:
            plan.tool_runs.append(_tool_run(len(plan.tool_runs), event, node, step))
        elif event.event_type == E.AGENT_ROUTE:
            plan.routes.append(RecordedRoute(event.data.get("from_node"),
                                             event.data.get("destination"), step))
    return plan


def _root_inputs(root: AuditEvent | None) -> Any:
    if root is None:
        return None
    if "inputs" in root.data:
        return root.data["inputs"]
    # A failed root records its input only as the error's snapshot.
    return root.error.input_snapshot if root.error is not None else None


def _llm_call(index: int, event: AuditEvent, node: str | None, step: int | None
              ) -> RecordedLLMCall:
    prompt = event.data.get("messages")
    output = event.data.get("output")
    offered = event.data.get("tools_offered")
    return RecordedLLMCall(
        index=index, span_id=event.span_id,
        prompt=[m for m in prompt if isinstance(m, dict)] if isinstance(prompt, list) else [],
        output=output if isinstance(output, dict) else (
            {"type": "ai", "content": output} if isinstance(output, str) else None),
        tools_offered=list(offered) if isinstance(offered, list) else None,
        error=event.error, model=event.model, provider=event.data.get("provider"),
        node=node, step=step,
    )


def _tool_run(index: int, event: AuditEvent, node: str | None, step: int | None
              ) -> RecordedToolRun:
    args = event.data.get("input")
    if args is None and event.error is not None:
        args = event.error.input_snapshot  # tool.error events keep the input only here
    return RecordedToolRun(
        index=index, span_id=event.span_id, name=event.action, args=args,
        output=event.data.get("output"), error=event.error, status=event.status,
        tool_call_id=event.data.get("tool_call_id"), node=node, step=step,
    )


_MESSAGE_TYPES: dict[str, type[BaseMessage]] = {
    "human": HumanMessage, "user": HumanMessage, "ai": AIMessage, "assistant": AIMessage,
    "system": SystemMessage, "tool": ToolMessage, "function": FunctionMessage,
    "chat": ChatMessage,
}
_MESSAGE_FIELDS = ("content", "name", "id", "tool_calls", "tool_call_id", "status", "role",
                   "usage_metadata", "response_metadata", "additional_kwargs", "artifact")


def message_from_dict(record: dict[str, Any]) -> BaseMessage:
    """A LangChain message from its recorded form (``{"type": "human", "content": ...}``)."""
    cls = _MESSAGE_TYPES.get(str(record.get("type")), HumanMessage)
    fields = {k: record[k] for k in _MESSAGE_FIELDS if record.get(k) is not None}
    content = fields.get("content", "")
    fields["content"] = content if isinstance(content, str | list) else str(content)
    if cls is ToolMessage:
        fields.setdefault("tool_call_id", "")
    if cls is ChatMessage:
        fields.setdefault("role", "user")
    if cls is AIMessage and "tool_calls" in fields:
        fields["tool_calls"] = [
            {"name": c.get("name"), "args": c.get("args") or {}, "id": c.get("id"),
             "type": "tool_call"}
            for c in fields["tool_calls"] if isinstance(c, dict)
        ]
    return cls(**fields)


def inputs_from_record(inputs: Any) -> Any:
    """Recorded graph inputs with every message dict turned back into a LangChain message."""
    if isinstance(inputs, dict):
        if isinstance(inputs.get("type"), str) and "content" in inputs:
            return message_from_dict(inputs)
        return {k: inputs_from_record(v) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return [inputs_from_record(v) for v in inputs]
    return inputs
