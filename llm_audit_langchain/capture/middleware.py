"""``AuditMiddleware``: one trace per HTTP request, joined from the caller's ``traceparent``.

Pure ASGI (Starlette, FastAPI, any ASGI server)::

    from llm_audit_langchain.capture.middleware import AuditMiddleware

    app.add_middleware(AuditMiddleware, handler=handler)   # or the default handler

For each request it reads ``traceparent``/``tracestate`` (a missing or malformed header starts a
new trace), opens the request's span, makes it the current :class:`TraceContext` for the code
inside (a LangGraph run in the endpoint joins the trace as a child of the request span), emits
``request.start`` and ``request.end`` (method, path without the query string, status code,
latency) and answers with ``traceparent`` and ``X-Trace-ID`` headers.
``request.end`` is the trace's root: the tail sampler decides the request's whole trace on it.

When an OpenTelemetry server span is already active (an OpenTelemetry ASGI instrumentation
outside this middleware), that span *is* the request span: our request events take its ids and
are marked ``external_span`` so ``OtlpExporter`` does not send a duplicate of it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..context import TraceContext, _from_opentelemetry, new_event_id, new_span_id
from ..events import AuditEvent, AuditEventType, ErrorDetail, Status
from .error_text import error_message, error_traceback
from .handler import AuditCallbackHandler, get_default_handler
from .pending import utc_from_ns

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def request_context(scope: Scope) -> tuple[TraceContext, str | None, bool]:
    """The request's trace context (its span id is the request span), the parent span id, and
    whether the request span belongs to an active OpenTelemetry span (``external``)."""
    otel = _from_opentelemetry()
    if otel is not None and otel.span_id is not None:
        return _local(otel.trace_id, otel.span_id, otel.sampled, otel.tracestate), None, True
    incoming = TraceContext.from_traceparent(_header(scope, b"traceparent"),
                                             _header(scope, b"tracestate"))
    ctx = _local(incoming.trace_id, new_span_id(), incoming.sampled, incoming.tracestate)
    return ctx, incoming.span_id, False


def _local(trace_id: str, span_id: str, sampled: bool | None, state: str | None) -> TraceContext:
    """The request span's context: runs inside are not the trace's root, request.end is."""
    return TraceContext(trace_id, span_id, sampled, state, local_root=True)


class AuditMiddleware:
    """Trace every HTTP request and emit ``request.start``/``request.end`` audit events.

    Args:
        app: the ASGI application to wrap.
        handler: where events go; by default :func:`get_default_handler` at request time.
        capture_query: record the query string too (off: it often holds PII or tokens; it is
            sanitized like any payload when on).
        agent: the ``agent`` field of request events.
    """

    def __init__(
        self,
        app: ASGIApp,
        handler: AuditCallbackHandler | None = None,
        *,
        capture_query: bool = False,
        agent: str = "http",
    ) -> None:
        self.app = app
        self.handler = handler
        self.capture_query = capture_query
        self.agent = agent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        ctx, parent, external = request_context(scope)
        request = _Request(self, scope, ctx, parent, external)
        request.emit_start()
        token = ctx.attach()
        try:
            await self.app(scope, receive, request.send_wrapper(send))
        except BaseException as exc:
            request.failed(exc)
            raise
        finally:
            TraceContext.detach(token)
            request.emit_end()


class _Request:
    """The state of one request while it runs."""

    def __init__(self, middleware: AuditMiddleware, scope: Scope, ctx: TraceContext,
                 parent: str | None, external: bool) -> None:
        self.handler = middleware.handler or get_default_handler()
        self.scope = scope
        self.ctx = ctx
        self.parent = parent
        self.external = external
        self.agent = middleware.agent
        self.capture_query = middleware.capture_query
        self.status_code: int | None = None
        self.error: ErrorDetail | None = None
        self.start_ns, self.start_perf = time.time_ns(), time.perf_counter_ns()

    def send_wrapper(self, send: Send) -> Send:
        trace_headers = [(b"traceparent", self.ctx.to_traceparent().encode()),
                         (b"x-trace-id", self.ctx.trace_id.encode())]

        async def send_with_trace(message: Message) -> None:
            if message.get("type") == "http.response.start":
                self.status_code = int(message.get("status", 0))
                message["headers"] = [*(message.get("headers") or ()), *trace_headers]
            await send(message)

        return send_with_trace

    def failed(self, exc: BaseException) -> None:
        self.error = ErrorDetail(type=_qualified_name(type(exc)), message=error_message(exc),
                                 traceback=error_traceback(exc))

    def _data(self) -> dict[str, Any]:
        scope = self.scope
        data: dict[str, Any] = {"method": scope.get("method"), "path": scope.get("path"),
                                "scheme": scope.get("scheme")}
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            data["route"] = route
        if self.capture_query and scope.get("query_string"):
            data["query"] = bytes(scope["query_string"]).decode("latin-1")
        if self.external:
            data["external_span"] = True
        return data

    def _event(self, kind: AuditEventType, status: Status, data: dict[str, Any],
               end_ns: int | None = None) -> AuditEvent:
        return AuditEvent(
            event_id=new_event_id(), trace_id=self.ctx.trace_id,
            span_id=self.ctx.span_id or new_span_id(), parent_span_id=self.parent,
            timestamp=utc_from_ns(end_ns if end_ns is not None else self.start_ns),
            start_time=utc_from_ns(self.start_ns) if end_ns is not None else None,
            event_type=kind, agent=self.agent,
            action=f"{data.get('method')} {data.get('route') or data.get('path')}",
            status=status, data=data, error=self.error if end_ns is not None else None,
            latency_ms=(time.perf_counter_ns() - self.start_perf) / 1e6 if end_ns else None,
        )

    def emit_start(self) -> None:
        if self.handler is not None:
            self.handler.emit_event(self._event(AuditEventType.REQUEST_START, "ok", self._data()))

    def emit_end(self) -> None:
        if self.handler is None:
            return
        status_code = self.status_code if self.status_code is not None else 500
        data = {**self._data(), "status_code": status_code, "trace_root": True}
        if self.parent is not None and self.ctx.sampled is not None:
            data["upstream_sampled"] = self.ctx.sampled
        failed = self.error is not None or status_code >= 500
        self.handler.emit_event(self._event(AuditEventType.REQUEST_END,
                                            "error" if failed else "ok", data, time.time_ns()))


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
