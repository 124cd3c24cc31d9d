"""``AuditCallbackHandler``: where a LangChain callback turns into audit events.

This is the hot path. Each callback does O(1) work on the caller's thread: it records what
happened and when, snapshots what could change later (exceptions and their tracebacks), builds
the event and hands it to the pipeline's bounded queue. Everything slower (token usage, cost,
sanitizing, sampling, serialising, I/O) happens on the pipeline's worker thread. No callback
raises: failures are counted in ``stats()["internal_errors"]`` and logged once per cause.

Example::

    handler = AuditCallbackHandler(exporters=[JsonlExporter("logs")])
    graph.invoke(inputs, config={"callbacks": [handler]})
    handler.flush(timeout=5.0)

Longer than our other modules because it is one class: LangChain's callback interface (start, end
and error of chains, chat models, LLMs, tools and retrievers, tokens, retries, custom events) is
implemented on one object that shares one run map; the argument mapping, run records, pending
events and decision tracking it uses live in the sibling modules.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from ..config import AuditConfig
from ..context import (
    TraceContext,
    malformed_traceparent_count,
    new_span_id,
    set_run_context_lookup,
)
from ..context import new_trace_id as _new_trace_id
from ..enrich.rollup import CostRollup
from ..enrich.usage import ResponseView, is_cache_hit
from ..errors import ConfigError
from ..events import AuditEvent, AuditEventType, ErrorDetail, Status
from ..exporters.base import Exporter, checked_exporters
from ..forksafe import renew_after_fork
from ..pipeline.base import Processor
from ..pipeline.worker import Pipeline
from .decisions import DecisionTracker
from .error_text import error_message, error_traceback
from .mapping import (
    context_parent_run_id,
    control_flow_kind,
    has_graph_step,
    may_be_cached,
    qualified_name,
    route_destination,
    serialized_name,
    tool_name,
)
from .pending import (
    DerivedEvent,
    PendingEvent,
    WriteAheadEvent,
    agent_decision,
    prompt_efficiency,
    tool_selection,
)
from .reviews import ReviewTracker
from .runs import Run, RunTracker, ThreadTraces, run_key, tag_number

if TYPE_CHECKING:
    from ..alerts.engine import AlertEngine

logger = logging.getLogger("llm_audit_langchain")

P = ParamSpec("P")
R = TypeVar("R")

E = AuditEventType
_MAX_TOOL_CALLS = 10_000
_SEQ_STEP = "seq:step:"
_WRITE_AHEAD_TAG = "audit:write_ahead"
_END_KIND = {"chain": E.CHAIN_END, "llm": E.LLM_INVOKE, "tool": E.TOOL_RESULT,
             "retriever": E.RETRIEVER_END}
_ERROR_KIND = {"chain": E.CHAIN_ERROR, "llm": E.LLM_ERROR, "tool": E.TOOL_ERROR,
               "retriever": E.RETRIEVER_ERROR}


def _code_ids(function: Any) -> frozenset[int]:
    """Ids of a function's code object and of the comprehensions nested in it (their own frames
    before Python 3.12): the frames that may read ``run_inline`` on its behalf."""
    code = getattr(function, "__code__", None)
    if code is None:
        return frozenset()
    nested = (const for const in code.co_consts if isinstance(const, CodeType))
    return frozenset(id(c) for c in (code, *nested))


# AsyncCallbackManager.on_llm_start (completion LLMs) sends the start to the inline handlers only
# as soon as one handler is inline, hiding it from every other handler (astream_events,
# astream_log, a user's async handler). We answer "not inline" to that one dispatch decision.
_LLM_START_DISPATCH = _code_ids(AsyncCallbackManager.on_llm_start)


def _another_handler_is_inline(frame: FrameType | None) -> bool:
    """Whether a handler of the dispatching manager, not one of ours, is inline (then the
    upstream dispatch already skips the non-inline ones, and we had better be among the
    inline handlers that do get the start)."""
    while frame is not None and frame.f_code.co_name.startswith("<"):
        frame = frame.f_back  # from a comprehension's frame to on_llm_start's
    manager = frame.f_locals.get("self") if frame is not None else None
    handlers = getattr(manager, "handlers", None) or ()
    return any(not isinstance(h, AuditCallbackHandler) and h.run_inline for h in handlers)


_default_handler: weakref.ref[AuditCallbackHandler] | None = None
_live_handlers: weakref.WeakSet[AuditCallbackHandler] = weakref.WeakSet()


def current_run_context() -> TraceContext | None:
    """The trace context of the innermost audited LangChain run the caller is in, if any."""
    run_id = context_parent_run_id()
    if run_id is None:
        return None
    for handler in list(_live_handlers):
        run = handler._runs.get(run_id)
        if run is not None:
            return TraceContext(run.trace_id, run.span_id, run.sampled)
    return None


def get_default_handler() -> AuditCallbackHandler | None:
    """The handler that ``emit`` and the decorators use outside a LangChain run: the one set
    with :func:`set_default_handler`, else the most recently created one that is still alive."""
    return _default_handler() if _default_handler is not None else None


def set_default_handler(handler: AuditCallbackHandler | None) -> None:
    """Choose the handler used outside LangChain runs (``None`` forgets it)."""
    global _default_handler  # noqa: PLW0603 - one process-wide choice, set rarely
    _default_handler = weakref.ref(handler) if handler is not None else None


def _weakly(method: Callable[[], None]) -> Callable[[], None]:
    """``method`` called through a weak reference to its object (a no-op once it is gone)."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return call


def _never_raises(method: Callable[P, R]) -> Callable[P, R | None]:
    """Run a callback; on any failure count it, log once per cause, and return None."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            handler = args[0]
            assert isinstance(handler, AuditCallbackHandler)
            handler._internal_error(method.__name__, exc)
            return None

    return guarded


class AuditCallbackHandler(BaseCallbackHandler):
    """Audit every LangChain/LangGraph run this handler is attached to.

    Args:
        exporters: where events go; by default from ``config.exporter`` (JSONL in ``./logs``).
        config: settings; by default ``AuditConfig.from_env()``.
        processors: extra worker-side steps run on every event, sampled out or not, before
            sanitizing. Without any, the events of sampled-out traces are never built at all
            (the default's biggest saving); with them, all are.
        observers: called on the worker with every event, sampled out or not (metrics); an
            observer with an ``event_types`` attribute (as ``AuditMetrics.observe``) gets LLM
            calls, errors, root-run ends and those types only, and keeps the saving above. They
            see events before sanitizing: read counts, names and timings, never export payloads.
        alerts: an ``AlertEngine`` to feed and evaluate on the worker (``handler.alerts``); by
            default one is attached when ``AUDIT_ALERTS=true``.

    Create one handler per process and reuse it: each handler owns one worker thread.
    """

    raise_error = False

    @property
    def run_inline(self) -> bool:  # type: ignore[override]
        """True: called on the caller's thread/loop, no executor hop under ``ainvoke``. Except
        where that would change what other handlers see: the completion-LLM start dispatch
        (see ``_LLM_START_DISPATCH``), where we are inline only if another handler is."""
        frame = sys._getframe(1)
        if id(frame.f_code) not in _LLM_START_DISPATCH:
            return True
        try:
            return _another_handler_is_inline(frame)
        except Exception:  # read inside LangChain's dispatch: never raise into the run
            return True

    def __init__(
        self,
        exporters: Sequence[Exporter] | None = None,
        *,
        config: AuditConfig | None = None,
        processors: Sequence[Processor] = (),
        observers: Sequence[Callable[[AuditEvent], None]] = (),
        alerts: AlertEngine | None = None,
    ) -> None:
        if config is not None and not isinstance(config, AuditConfig):
            raise ConfigError(f"AuditCallbackHandler(config=...) must be an AuditConfig, not "
                              f"{type(config).__name__}: e.g. config=AuditConfig(debug=True)")
        if exporters is not None:
            exporters = checked_exporters(exporters)
        for kind, steps in (("processors", processors), ("observers", observers)):
            if not all(callable(step) for step in steps):
                raise ConfigError(f"AuditCallbackHandler({kind}=...) must be callables")
        self.config = config if config is not None else AuditConfig.from_env()
        self._enabled = self.config.enabled
        if not self._enabled:  # a no-op handler: LangChain skips every callback
            self.ignore_chain = self.ignore_llm = self.ignore_chat_model = True
            self.ignore_retriever = self.ignore_retry = self.ignore_custom_event = True
            self.ignore_agent = True
        self._runs = RunTracker(self.config.run_ttl_s, self.config.max_runs)
        self._tool_calls: dict[str, str] = {}  # tool_call_id -> span id of the LLM that chose it
        self._decisions = DecisionTracker()
        self._closed: OrderedDict[Any, None] = OrderedDict()  # run_key of recent ends: duplicates
        self._duplicates = 0
        self._counts_lock = threading.Lock()
        renew_after_fork(self, "_counts_lock")
        self._internal_errors = 0
        self._evicted = 0
        self._orphan_ends = 0
        self._thread_traces = ThreadTraces()
        self._reviews = ReviewTracker()
        self._write_ahead_tools = self.config.write_ahead_names()
        self._write_ahead_timeouts = 0
        self._warned: set[str] = set()
        # The last traceback formatted, for the same exception bubbling up through the parent
        # runs: keyed by the exception's id, type and message, never by the exception itself
        # (its traceback would keep every frame of the failed run alive until the next error).
        self._last_error: tuple[int, type[BaseException], str, str] | None = None
        self.costs = CostRollup()
        """Cost and tokens per trace (in each root event's ``data.cost_rollup``) and live per
        thread id and user: ``handler.costs.live()``."""
        if alerts is None and any(name.startswith("AUDIT_ALERT") for name in os.environ):
            from ..alerts.env import alerts_from_env

            alerts = alerts_from_env()
        self.alerts = alerts
        """The alert engine this handler feeds, if any."""
        if alerts is not None:
            observers = [*observers, alerts.observe]
        sweep_every = max(0.05, min(self.config.run_ttl_s / 4, 5.0))
        # A trace waits in the sampler until its root's end, or its root's timeout (at most a
        # TTL and a sweep after the root started); then it is decided on what it showed.
        self._pipeline = Pipeline.from_config(self.config, exporters, [self.costs, *processors],
                                              observers, defer_sampled_out=not processors,
                                              hold_limit_s=self.config.run_ttl_s + 2 * sweep_every)
        if alerts is not None:
            alerts.bind(self, self._pipeline.exporters)
            self._pipeline.add_periodic(alerts.evaluate, alerts.interval_s)
        set_default_handler(self)
        _live_handlers.add(self)
        # The worker must not keep the handler alive: a handler the program drops is collected,
        # and then its pipeline exports what it holds and stops its thread.
        self._pipeline.add_periodic(_weakly(self._evict_expired), sweep_every)
        weakref.finalize(self, self._pipeline.close_soon).atexit = False  # exit: shutdown()

    # ---- public API -------------------------------------------------------------------------

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Export everything enqueued so far; True when done within ``timeout`` seconds."""
        return self._pipeline.flush(timeout)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the worker and shut the exporters down, within ``timeout`` seconds; with
        an alert engine, its queued notifications are delivered within the same deadline."""
        started = time.monotonic()
        done = self._pipeline.shutdown(timeout)
        if self.alerts is not None:
            left = 5.0 if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            done = self.alerts.flush_notifications(left) and done
        return done

    def stats(self) -> dict[str, Any]:
        """Counters: enqueued, exported, dropped (by reason), failed, retried, pending, queue size,
        plus the handler's own (active runs, evicted runs, internal errors...) and, with an
        alert engine, its counts under ``alerts`` (notifier failures included)."""
        stats = self._pipeline.stats()
        stats.update(
            active_runs=len(self._runs),
            active_traces=self._runs.open_roots(),
            evicted_runs=self._evicted,
            orphan_ends=self._orphan_ends,
            duplicate_callbacks=self._duplicates,
            internal_errors=self._internal_errors,
            write_ahead_timeouts=self._write_ahead_timeouts,
            malformed_traceparent=malformed_traceparent_count(),
        )
        if self.alerts is not None:
            stats["alerts"] = self.alerts.stats()
        return stats

    def trace_of_thread(self, thread_id: Any) -> TraceContext | None:
        """The trace of the latest root run seen for a LangGraph ``thread_id`` (its root span),
        which that thread's checkpoint and review records join."""
        context: TraceContext | None = self._thread_traces.get(thread_id)
        return context

    def emit_event(self, event: AuditEvent) -> None:
        """Send a ready-made event through the pipeline (sanitized and sampled like the rest)."""
        self._pipeline.enqueue(event)

    # LangChain reads these flags before every callback: plain attributes (set in __init__)
    # instead of BaseCallbackHandler's properties save a Python call each time.
    ignore_chain = ignore_llm = ignore_chat_model = ignore_retriever = False
    ignore_retry = ignore_custom_event = False
    ignore_agent = False  # LangChain routes tool callbacks through this flag too

    # ---- start callbacks ----------------------------------------------------------------------

    @_never_raises
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._open("chain", serialized, kwargs, run_id, parent_run_id, tags, metadata,
                         inputs)
        resume = getattr(inputs, "resume", None)  # graph.invoke(Command(resume=...))
        if resume is not None and run.extra.get("root"):
            data = {"phase": "resume", "resume": resume}
            self._emit(self._point_event(run, E.AGENT_INTERRUPT, "ok", run.name, data))
            review = self._reviews.on_resume(run.metadata.get("thread_id"), resume, run.metadata)
            self._emit(self._point_event(run, E.HUMAN_REVIEW, "ok", "human.review", review))

    @_never_raises
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = messages[0] if len(messages) == 1 else messages
        run = self._open("llm", serialized, kwargs, run_id, parent_run_id, tags, metadata,
                         list(prompt))
        run.extra["invocation_params"] = kwargs.get("invocation_params") or {}

    @_never_raises
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._open("llm", serialized, kwargs, run_id, parent_run_id, tags, metadata,
                         list(prompts))
        run.extra["invocation_params"] = kwargs.get("invocation_params") or {}

    @_never_raises
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._open("tool", serialized, kwargs, run_id, parent_run_id, tags, metadata,
                         inputs if inputs is not None else input_str)
        data = {"input": run.inputs}  # the intent, recorded before the tool can have any effect
        call_id = kwargs.get("tool_call_id")
        if call_id:
            selected_by = self._tool_calls.pop(call_id, None)
            run.extra["tool_call_id"] = data["tool_call_id"] = call_id
            run.extra["selected_by_span_id"] = data["selected_by_span_id"] = selected_by
        if (run.name in self._write_ahead_tools or run.metadata.get("audit") == "write_ahead"
                or _WRITE_AHEAD_TAG in run.tags):
            self._write_ahead(run, data)
        else:
            self._emit(self._point_event(run, E.TOOL_CALL, "ok", run.name, data))

    @_never_raises
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._open("retriever", serialized, kwargs, run_id, parent_run_id, tags, metadata, query)

    @_never_raises
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None:
            if run.first_token_perf_ns is None:
                run.first_token_perf_ns = time.perf_counter_ns()
            run.chunks += 1

    # ---- end callbacks ------------------------------------------------------------------------

    @_never_raises
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._close(run_id, "chain", kwargs, keep_tags=True)
        if run is None:
            return
        if run.is_node:
            self._decisions.on_success(run)
            goto = getattr(outputs, "goto", None)  # a node returning Command(goto=...)
            if goto:
                data = {"from_node": run.agent, "destination": route_destination(goto),
                        "via": "command"}
                self._emit(self._point_event(run, E.AGENT_ROUTE, "ok", run.name, data))
        destination = self._route_of(run, outputs)
        run.tags = ()
        if destination is not None:
            data = {"from_node": run.agent, "destination": destination}
            self._emit(self._span_event(run, E.AGENT_ROUTE, "ok", data))
            return
        data = {}
        if run.metadata.get("audit_capture_result") is not False:
            data["outputs"] = outputs
        if run.extra.get("root"):
            data["inputs"] = run.inputs
            self._add_user_metadata(run, data)
        self._emit(self._span_event(run, E.CHAIN_END, "ok", data))

    @_never_raises
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._close(run_id, "llm", kwargs)
        if run is None:
            return
        first = response.generations[0] if response.generations else None
        generation = first[0] if first else None
        message = getattr(generation, "message", None)
        params = dict(run.extra.get("invocation_params") or {})
        offered = [tool_name(t) for t in params.pop("tools", None) or ()]
        data: dict[str, Any] = {
            "messages": run.inputs,
            "output": message if message is not None else getattr(generation, "text", None),
            "invocation_params": params,
            "provider": run.metadata.get("ls_provider"),
            "streamed": run.chunks > 0,
            # what the worker reads the usage and model from: not the response itself
            "_raw": {"response": ResponseView(response), "metadata": run.metadata},
        }
        if offered:
            data["tools_offered"] = offered
        if run.first_token_perf_ns is not None:
            data["chunks"] = run.chunks
            data["time_to_first_token_ms"] = (run.first_token_perf_ns - run.start_perf_ns) / 1e6
        llm_event = PendingEvent(run, E.LLM_INVOKE, "ok", run.name, data, None, 0, span=True)
        # Point events first, so they reach exporters no later than the span they belong to;
        # their data is derived from the LLM event on the worker.
        if may_be_cached(message) and is_cache_hit(message, run.run_id):  # type: ignore[arg-type]
            data["cache_hit"] = True
            self._emit(self._point_event(run, E.CACHE_HIT, "ok", run.name,
                                         {"message_id": getattr(message, "id", None)}))
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            self._note_tool_calls(run, tool_calls)
            self._emit(DerivedEvent(run, E.TOOL_SELECTION, llm_event, tool_selection,
                                    time.perf_counter_ns()))
        if "langgraph_node" in run.metadata:  # the model decides whether the agent loop goes on
            self._emit(DerivedEvent(run, E.AGENT_DECISION, llm_event, agent_decision,
                                    time.perf_counter_ns()))
        llm_event.perf_ns = time.perf_counter_ns()
        self._emit(llm_event)
        # after its LLM event: the worker fills it from that event's usage (FIFO order). Timed
        # a microsecond after it at least: it is queued within the same microsecond, and the
        # stores (which keep microseconds) order equal times by event id, not by queue order.
        self._emit(DerivedEvent(run, E.PROMPT_EFFICIENCY, llm_event, prompt_efficiency,
                                max(time.perf_counter_ns(), llm_event.perf_ns + 1_000)))

    @_never_raises
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._close(run_id, "tool", kwargs)
        if run is None:
            return
        failed = getattr(output, "status", None) == "error"  # a ToolMessage reporting failure
        data = {"input": run.inputs, "output": output, **self._tool_info(run)}
        kind = E.TOOL_ERROR if failed else E.TOOL_RESULT
        self._emit(self._span_event(run, kind, "error" if failed else "ok", data))

    @_never_raises
    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._close(run_id, "retriever", kwargs)
        if run is None:
            return
        data = {"query": run.inputs, "documents": documents, "count": len(documents or ())}
        self._emit(self._span_event(run, E.RETRIEVER_END, "ok", data))

    # ---- error callbacks ----------------------------------------------------------------------

    @_never_raises
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, "chain", error, kwargs)

    @_never_raises
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, "llm", error, kwargs)

    @_never_raises
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, "tool", error, kwargs)

    @_never_raises
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, "retriever", error, kwargs)

    # ---- point events -------------------------------------------------------------------------

    @_never_raises
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id) or self._orphan(run_id, "llm", kwargs)
        outcome = getattr(retry_state, "outcome", None)
        error = outcome.exception() if outcome is not None and outcome.failed else None
        data = {"attempt": getattr(retry_state, "attempt_number", None), "source": "on_retry"}
        self._emit(self._point_event(run, E.AGENT_RETRY, "retry", run.name, data,
                                     self._error_detail(error, run) if error else None))

    @_never_raises
    def on_custom_event(
        self, name: str, data: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        run = self._runs.get(run_id) or self._orphan(run_id, "chain", kwargs)
        try:
            kind = AuditEventType(name)
        except ValueError:
            kind = E.CUSTOM
        self._emit(self._point_event(run, kind, "ok", name, {"payload": data}))

    # ---- internals ----------------------------------------------------------------------------

    def _open(
        self,
        kind: str,
        serialized: dict[str, Any] | None,
        kwargs: dict[str, Any],
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        inputs: Any,
    ) -> Run:
        name = kwargs.get("name") or serialized_name(serialized) or kind
        metadata = metadata or {}
        run_tags: Sequence[str] = tags or ()
        if parent_run_id is None:
            parent_run_id = context_parent_run_id()
        parent = self._runs.get(parent_run_id)
        node: str | None = metadata.get("audit_agent") or metadata.get("langgraph_node")
        is_node = (kind == "chain" and metadata.get("langgraph_node") == name
                   and has_graph_step(run_tags))
        now_perf = time.perf_counter_ns()
        parent_span: str | None
        ctx: TraceContext | None = None
        if parent is not None:
            trace_id, parent_span, sampled = parent.trace_id, parent.span_id, parent.sampled
            agent = node or parent.agent
            # the parent's wall-clock start plus monotonic time since: one clock read, and a
            # trace's times stay consistent if the system clock is stepped meanwhile
            start_ns = parent.start_ns + now_perf - parent.start_perf_ns
        else:
            start_ns = time.time_ns()
            ctx = TraceContext.current()
            if ctx is not None:
                trace_id, parent_span, sampled = ctx.trace_id, ctx.span_id, ctx.sampled
            else:
                trace_id, parent_span, sampled = _new_trace_id(), None, None
            agent = node or name
        if isinstance(inputs, dict):
            inputs = dict(inputs)  # the caller may mutate its dict after we return
        run = Run(run_id, kind, name, agent, trace_id, new_span_id(), parent_span, parent_run_id,
                  start_ns, now_perf, inputs, run_tags, metadata,
                  is_node=is_node, sampled=sampled)
        if parent is None:
            run.extra["root"] = True
            thread_id = metadata.get("thread_id")
            if thread_id is not None:  # checkpoints of this thread join this trace
                self._thread_traces.note(thread_id, TraceContext(trace_id, run.span_id, sampled))
            if ctx is None or not ctx.local_root:  # the sampler decides when this run ends
                run.extra["trace_root"] = True
                if sampled is not None:
                    run.extra["upstream_sampled"] = sampled
        evicted = self._runs.open(run)
        if evicted is not None:
            self._emit_timeout(evicted, "evicted: too many open runs")
        decision = self._decisions.on_start(run, parent)
        if decision is not None:
            status: Status = "retry" if decision.event_type is E.AGENT_RETRY else "ok"
            self._emit(self._point_event(run, decision.event_type, status, run.name,
                                         decision.data,
                                         decision.error()))
        return run

    def _close(self, run_id: UUID, kind: str, kwargs: dict[str, Any],
               keep_tags: bool = False) -> Run | None:
        """The run's start record; a stand-in if its start was never seen; None when this is a
        second end/error callback for a run already closed (ChatBedrock sends errors twice).

        Its tags are let go (unless ``keep_tags``: the caller does that once it has read them):
        nothing reads them after the end, and the queued events keep the run until the worker
        drains; each host object held that long makes the host's collector run more often."""
        run = self._runs.close(run_id)
        key = run_key(run_id)
        if run is None:
            if key in self._closed:
                with self._counts_lock:
                    self._duplicates += 1
                return None
            run = self._orphan(run_id, kind, kwargs)
        closed = self._closed
        closed[key] = None
        if len(closed) > 4096:
            try:  # noqa: SIM105 - suppress() would cost a context manager on every close
                closed.popitem(last=False)
            except KeyError:  # another thread trimmed it first
                pass
        self._decisions.on_parent_end(run_id)
        if not keep_tags:
            run.tags = ()
        return run

    def _orphan(self, run_id: UUID, kind: str, kwargs: dict[str, Any]) -> Run:
        """A stand-in for a run whose start we never saw: the end still becomes an event."""
        with self._counts_lock:
            self._orphan_ends += 1
        parent = self._runs.get(kwargs.get("parent_run_id"))
        now_ns, now_perf = time.time_ns(), time.perf_counter_ns()
        run = Run(run_id, kind, kwargs.get("name") or kind, parent.agent if parent else kind,
                  parent.trace_id if parent else _new_trace_id(), new_span_id(),
                  parent.span_id if parent else None, kwargs.get("parent_run_id"),
                  now_ns, now_perf, tags=list(kwargs.get("tags") or []))
        run.extra["start_unknown"] = True
        if parent is None:
            run.extra["root"] = run.extra["trace_root"] = True
        return run

    def _fail(self, run_id: UUID, kind: str, error: BaseException, kwargs: dict[str, Any]) -> None:
        if kind == "llm" and kwargs.get("reason") == "GUARDRAIL_INTERVENED":
            self._guardrail(run_id, error, kwargs)  # the run goes on to on_llm_end
            return
        run = self._close(run_id, kind, kwargs)
        if run is None:
            return
        flow = control_flow_kind(error)
        if flow == "interrupt":
            data = {"phase": "interrupt", "interrupts": error.args[0] if error.args else None}
            self._reviews.on_interrupt(run.metadata.get("thread_id"), run.trace_id, run.span_id,
                                       data["interrupts"], self._tool_calls)
            self._emit(self._span_event(run, E.AGENT_INTERRUPT, "ok", data))
            return
        if flow == "bubble_up":
            data = {"control_flow": type(error).__name__}
            self._emit(self._span_event(run, _END_KIND[kind], "ok", data))
            return
        data = {}
        if run.extra.get("root"):
            data["inputs"] = run.inputs
            self._add_user_metadata(run, data)
        if kind == "tool":
            data["input"] = run.inputs
            data.update(self._tool_info(run))
        if kind == "llm":
            data["messages"] = run.inputs
            data["_raw"] = {"metadata": run.metadata}
        detail = self._error_detail(error, run)
        self._decisions.on_failure(run, error, detail.type)
        self._emit(self._span_event(run, _ERROR_KIND[kind], "error", data, detail))

    def _guardrail(self, run_id: UUID, error: BaseException, kwargs: dict[str, Any]) -> None:
        run = self._runs.get(run_id) or self._orphan(run_id, "llm", kwargs)
        data = {"reason": kwargs.get("reason")}
        self._emit(self._point_event(run, E.LLM_GUARDRAIL, "ok", run.name, data,
                                     ErrorDetail(type=qualified_name(type(error)),
                                                 message=error_message(error))))

    def _error_detail(self, error: BaseException, run: Run) -> ErrorDetail:
        message = error_message(error)  # str(), else repr(), else a placeholder: never raises
        last = self._last_error
        if (last is not None and last[0] == id(error) and last[1] is type(error)
                and last[2] == message):
            formatted = last[3]  # the same exception bubbling up through parent runs
        else:
            formatted = error_traceback(error)
            self._last_error = (id(error), type(error), message, formatted)
        snapshot = run.inputs if self.config.include_snapshots else None
        return ErrorDetail(type=qualified_name(type(error)), message=message,
                           traceback=formatted, input_snapshot=snapshot)

    def _route_of(self, run: Run, outputs: Any) -> Any:
        """A conditional edge's routing function runs as a direct child of the node, after the
        node's own function (``seq:step:N`` with N >= 2); its output is the destination."""
        if run.is_node or run.kind != "chain":
            return None
        parent = self._runs.get(run.parent_run_id)
        if parent is None or not parent.is_node:
            return None
        step = tag_number(run.tags, _SEQ_STEP)
        return route_destination(outputs) if step is not None and step >= 2 else None

    def _note_tool_calls(self, run: Run, calls: list[Any]) -> None:
        """Remember which LLM span chose each tool call: its ``tool.call`` links back to it."""
        for call in calls:
            call_id = call.get("id")
            if call_id:
                if len(self._tool_calls) >= _MAX_TOOL_CALLS:
                    self._tool_calls.pop(next(iter(self._tool_calls)), None)
                self._tool_calls[call_id] = run.span_id

    def _write_ahead(self, run: Run, data: dict[str, Any]) -> None:
        """Queue a side-effecting tool's ``tool.call`` and, when configured, wait (bounded) until
        the audit chain has it on disk: a crash inside the tool then still leaves its call."""
        event = WriteAheadEvent(run, data, time.perf_counter_ns())
        self._emit(event)
        timeout = self.config.write_ahead_timeout_s
        if timeout > 0 and event.written is not None:
            self._pipeline.wake()
            if not event.written.wait(timeout):
                with self._counts_lock:
                    self._write_ahead_timeouts += 1

    def _evict_expired(self) -> None:
        for run in self._runs.expired():
            self._emit_timeout(run, f"no end callback after {self.config.run_ttl_s:g}s")

    def _emit_timeout(self, run: Run, reason: str) -> None:
        with self._counts_lock:
            self._evicted += 1
        data = {"reason": reason}
        self._emit(self._span_event(run, _ERROR_KIND[run.kind], "timeout", data))

    def _span_event(
        self,
        run: Run,
        event_type: AuditEventType,
        status: Status,
        data: dict[str, Any],
        error: ErrorDetail | None = None,
    ) -> PendingEvent:
        return PendingEvent(run, event_type, status, run.name, data, error,
                            time.perf_counter_ns(), span=True)

    def _point_event(
        self,
        run: Run,
        event_type: AuditEventType,
        status: Status,
        action: str,
        data: dict[str, Any],
        error: ErrorDetail | None = None,
    ) -> PendingEvent:
        return PendingEvent(run, event_type, status, action, data, error, time.perf_counter_ns())

    @staticmethod
    def _add_user_metadata(run: Run, data: dict[str, Any]) -> None:
        """The caller's own ``config["metadata"]`` (user_id, tenant...) on the root event, without
        LangChain's and LangGraph's bookkeeping keys. Sanitized like any user data."""
        user = {k: v for k, v in run.metadata.items()
                if not k.startswith(("langgraph_", "ls_", "checkpoint_", "audit_"))
                and k not in ("thread_id", "__pregel_task_id")}
        if user:
            data["metadata"] = user

    @staticmethod
    def _tool_info(run: Run) -> dict[str, Any]:
        return {k: run.extra[k] for k in ("tool_call_id", "selected_by_span_id") if k in run.extra}

    def _emit(self, event: PendingEvent) -> None:
        self._pipeline.enqueue(event)

    def _internal_error(self, where: str, exc: BaseException) -> None:
        with self._counts_lock:
            self._internal_errors += 1
            cause = f"{where}:{type(exc).__name__}"
            first = cause not in self._warned
            self._warned.add(cause)
        if first:
            logger.warning("audit handler error in %s (the run is unaffected; further ones "
                           "are only counted)", where, exc_info=exc)



set_run_context_lookup(current_run_context)
