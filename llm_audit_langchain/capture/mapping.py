"""What callback arguments mean: LangGraph routes and control flow, tool names, prompt sizes.

Small pure functions the handler applies to what LangChain and LangGraph pass to callbacks
(the facts they rely on were measured on langchain-core 1.7 and langgraph 1.2; the README's
"Where each signal comes from" lists them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.runnables.config import var_child_runnable_config

_GRAPH_STEP = "graph:step:"


def control_flow_kind(error: BaseException) -> str | None:
    """'interrupt' or 'bubble_up' for LangGraph control flow, which is never an error."""
    # Not imported here: a process that has not loaded langgraph.errors cannot raise its
    # exceptions, and importing it in a callback (the caller's thread) costs ~100 ms.
    errors = sys.modules.get("langgraph.errors")
    if errors is None:
        return None
    if isinstance(error, errors.GraphInterrupt):
        return "interrupt"
    return "bubble_up" if isinstance(error, errors.GraphBubbleUp) else None


def route_destination(output: Any) -> Any:
    """The destination a routing function chose, or None when ``output`` is not a route."""
    if isinstance(output, str):
        return output
    node = getattr(output, "node", None)  # langgraph Send
    if isinstance(node, str):
        return {"send": node}
    if isinstance(output, list | tuple) and output:
        parts = [route_destination(item) for item in output]
        return None if any(p is None for p in parts) else parts
    return None


def may_be_cached(message: Any) -> bool:
    """Cheap filter before ``is_cache_hit``: LangChain's cache marks what it returns."""
    usage = getattr(message, "usage_metadata", None)
    if isinstance(usage, dict) and "total_cost" in usage:
        return True
    message_id = getattr(message, "id", None)
    return isinstance(message_id, str) and message_id.startswith("lc_run--")


def has_graph_step(tags: Sequence[str]) -> bool:
    for tag in tags:  # noqa: SIM110 - a loop, not any(genexpr): runs on every chain start
        if tag.startswith(_GRAPH_STEP):
            return True
    return False


def serialized_name(serialized: dict[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    ids = serialized.get("id")
    return str(ids[-1]) if isinstance(ids, list) and ids else None


def tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and "name" in function:
            return str(function["name"])
        return str(tool.get("name") or tool.get("title") or "unknown")
    return str(getattr(tool, "name", None) or getattr(tool, "__name__", "unknown"))


def qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def context_parent_run_id() -> UUID | None:
    """The run LangChain says we are inside of, for runs started without a parent id (an upstream
    bug drops it for ``RunnableWithFallbacks`` children under ``invoke``)."""
    config = var_child_runnable_config.get()
    if not config:
        return None
    callbacks = config.get("callbacks")
    parent = getattr(callbacks, "parent_run_id", None)
    return parent if isinstance(parent, UUID) else None
