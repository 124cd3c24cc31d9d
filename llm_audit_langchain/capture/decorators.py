"""Audit plain functions and emit custom events.

``audit_span(agent, action)`` turns a sync or async function into a span of the current trace:
inside a LangChain/LangGraph run it becomes a child run (so it lands in the same trace and its
own LangChain calls nest under it); outside any run it reports to the default handler. Errors
are recorded with the call's arguments as the input snapshot and re-raised unchanged.

    @audit_span("benefits", "search")
    async def search_benefits(query: str) -> list[dict]: ...

    @audit_node
    def classify(state: State) -> dict: ...     # a LangGraph node function

``emit(event_type, data)`` records a point event (``llm.hallucination_detected``, ``cache.miss``,
anything) in the current run, or in a new trace of the default handler outside any run.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast, overload

from langchain_core.callbacks import dispatch_custom_event
from langchain_core.runnables import RunnableConfig, RunnableLambda

from ..context import TraceContext, new_event_id, new_span_id, new_trace_id
from ..events import AuditEvent, AuditEventType, Status
from .handler import AuditCallbackHandler, get_default_handler
from .mapping import context_parent_run_id
from .pending import utc_from_ns

logger = logging.getLogger("llm_audit_langchain")

F = TypeVar("F", bound=Callable[..., Any])
_warned_no_handler = False


def _config(agent: str | None, action: str, capture_result: bool) -> RunnableConfig:
    metadata: dict[str, Any] = {"audit_capture_result": capture_result}
    if agent is not None:
        metadata["audit_agent"] = agent
    config: RunnableConfig = {"run_name": action, "metadata": metadata}
    if not context_parent_run_id() is not None:
        handler = get_default_handler()
        if handler is not None:
            config["callbacks"] = [handler]
    return config


def audit_span(agent: str | None, action: str | None = None, *,
               capture_result: bool = True) -> Callable[[F], F]:
    """Record each call of the decorated function as a span named ``action`` (default: the
    function's name) under ``agent``. Works on sync and async functions; the function's
    result and exceptions reach the caller unchanged."""

    def decorate(fn: F) -> F:
        name = action or fn.__name__

        def call(inputs: dict[str, Any]) -> Any:
            return fn(*inputs["args"], **inputs["kwargs"])

        async def acall(inputs: dict[str, Any]) -> Any:
            return await fn(*inputs["args"], **inputs["kwargs"])

        if inspect.iscoroutinefunction(fn):
            runnable = RunnableLambda(call, afunc=acall, name=name)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                config = _config(agent, name, capture_result)
                return await runnable.ainvoke({"args": list(args), "kwargs": kwargs}, config)

            return cast(F, async_wrapper)
        runnable = RunnableLambda(call, name=name)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            config = _config(agent, name, capture_result)
            return runnable.invoke({"args": list(args), "kwargs": kwargs}, config)

        return cast(F, wrapper)

    return decorate


@overload
def audit_node(fn: F, /) -> F: ...


@overload
def audit_node(*, agent: str | None = None, capture_result: bool = True) -> Callable[[F], F]: ...


def audit_node(fn: F | None = None, /, *, agent: str | None = None,
               capture_result: bool = True) -> F | Callable[[F], F]:
    """``audit_span`` for LangGraph node functions: the span is named after the function and
    its agent is the graph node running it (or ``agent``). Keeps the signature, so LangGraph
    still passes ``config`` to nodes that ask for it."""
    decorate = audit_span(agent, None, capture_result=capture_result)
    return decorate(fn) if fn is not None else decorate


def emit(
    event_type: AuditEventType | str,
    data: Mapping[str, Any] | None = None,
    *,
    agent: str | None = None,
    action: str | None = None,
    status: Status = "ok",
    handler: AuditCallbackHandler | None = None,
) -> None:
    """Record a point event. Inside a LangChain run it is dispatched as a LangChain custom event
    and lands in that run's span; outside, it goes to ``handler`` (default: the default
    handler) in the current trace context or a new trace. Never raises."""
    name = str(event_type)
    payload = dict(data or {})
    try:
        if handler is None and context_parent_run_id() is not None:
            dispatch_custom_event(name, payload)
            return
        target = handler or get_default_handler()
        if target is None:
            _warn_no_handler()
            return
        ctx = TraceContext.current()
        kind = AuditEventType(name) if name in AuditEventType._value2member_map_ else None
        target.emit_event(AuditEvent(
            event_id=new_event_id(), trace_id=ctx.trace_id if ctx else new_trace_id(),
            span_id=new_span_id(), parent_span_id=ctx.span_id if ctx else None,
            timestamp=utc_from_ns(time.time_ns()),
            event_type=kind or AuditEventType.CUSTOM, agent=agent or "app",
            action=action or name, status=status,
            data={"payload": payload, "trace_root": ctx is None},
        ))
    except Exception as exc:  # emitting an audit event must never break the caller
        logger.warning("llm-audit emit(%r) failed: %r", name, exc)


def _warn_no_handler() -> None:
    global _warned_no_handler  # noqa: PLW0603 - a once-per-process warning
    if not _warned_no_handler:
        _warned_no_handler = True
        logger.warning("llm-audit emit() outside any run and no AuditCallbackHandler exists: "
                       "the event is dropped (create a handler first)")
