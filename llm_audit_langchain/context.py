"""W3C Trace Context: ``traceparent`` in and out, and the current trace in a contextvar.

A root LangChain run started while a :class:`TraceContext` is active joins that trace::

    with TraceContext.from_traceparent(request.headers.get("traceparent")):
        graph.invoke(inputs, config={"callbacks": [handler]})

A missing or malformed header starts a new trace; a malformed one is counted
(:func:`malformed_traceparent_count`) and logged once, never raised.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType

from .forksafe import renew_after_fork

logger = logging.getLogger("llm_audit_langchain")

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
_SAMPLED = 0x01

_current: ContextVar[TraceContext | None] = ContextVar("llm_audit_trace_context", default=None)
_rng = random.Random()  # seeded from os.urandom; reseeded in forked children below
os.register_at_fork(after_in_child=_rng.seed)


class _MalformedCounter:
    """Counts malformed headers; logs the first one only."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def add(self, header: str) -> None:
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            logger.warning(
                "malformed traceparent %r: starting a new trace (further ones are only counted)",
                header[:80],
            )


_malformed = _MalformedCounter()


_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


# ``randbytes(n).hex()`` is about twice as fast as formatting ``getrandbits``: ids are made for
# every run and every event.
def new_trace_id() -> str:
    """A random, valid (non-zero) 32-hex W3C trace id."""
    trace_id = _rng.randbytes(16).hex()
    return trace_id if trace_id != _ZERO_TRACE else new_trace_id()


def new_event_id() -> str:
    """A random 32-hex event id (not a W3C id; only unique)."""
    return _rng.randbytes(16).hex()


def new_span_id() -> str:
    """A random, valid (non-zero) 16-hex W3C span id."""
    span_id = _rng.randbytes(8).hex()
    return span_id if span_id != _ZERO_SPAN else new_span_id()


def malformed_traceparent_count() -> int:
    """How many malformed ``traceparent`` headers were seen by this process."""
    return _malformed.count


@dataclass(frozen=True, slots=True)
class TraceContext:
    """An immutable W3C trace context: the trace, the caller's span, the sampled flag.

    Use it as a context manager to make it current for the code inside.
    """

    trace_id: str
    span_id: str | None = None
    sampled: bool | None = None
    tracestate: str | None = None
    local_root: bool = False
    """True when this process opened the trace's root span itself (e.g. the ASGI middleware's
    request span): runs inside are then not the trace's root, and the trace is decided when
    that span ends, not when the first graph run ends."""
    _tokens: list[Token[TraceContext | None]] = field(
        default_factory=list, repr=False, compare=False
    )

    @classmethod
    def new(cls) -> TraceContext:
        """A fresh trace with no parent span and no sampling decision."""
        return cls(trace_id=new_trace_id())

    @classmethod
    def from_traceparent(
        cls, header: str | None, tracestate: str | None = None
    ) -> TraceContext:
        """Parse a ``traceparent`` header; a missing or invalid one gives a new trace.

        Versions other than ``00`` are parsed by the version-00 rules, as the spec asks.
        """
        parsed = _parse(header) if header else None
        if parsed is None:
            if header:
                _malformed.add(header)
            return cls.new()
        trace_id, span_id, flags = parsed
        return cls(trace_id, span_id, bool(flags & _SAMPLED), tracestate)

    @staticmethod
    def current() -> TraceContext | None:
        """The context active in this thread or task, if any (ours first, then OpenTelemetry's)."""
        ctx = _current.get()
        return ctx if ctx is not None else _from_opentelemetry()

    def to_traceparent(self) -> str:
        """Format as a version-00 ``traceparent`` header."""
        span = self.span_id or new_span_id()
        flags = _SAMPLED if self.sampled is not False else 0
        return f"00-{self.trace_id}-{span}-{flags:02x}"

    def child(self, span_id: str) -> TraceContext:
        """The same trace with ``span_id`` as the current span."""
        return TraceContext(self.trace_id, span_id, self.sampled, self.tracestate, self.local_root)

    def attach(self) -> Token[TraceContext | None]:
        """Make this context current; pass the token to :meth:`detach`."""
        return _current.set(self)

    @staticmethod
    def detach(token: Token[TraceContext | None]) -> None:
        """Restore the context that was current before :meth:`attach`."""
        _current.reset(token)

    def __enter__(self) -> TraceContext:
        self._tokens.append(self.attach())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach(self._tokens.pop())


def _parse(header: str) -> tuple[str, str, int] | None:
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return trace_id, span_id, int(flags, 16)


def _from_opentelemetry() -> TraceContext | None:
    """The active OpenTelemetry span's context, when OpenTelemetry is imported and a span is on."""
    otel_trace = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return None
    try:
        span_context = otel_trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return None
        state = span_context.trace_state.to_header() if span_context.trace_state else None
        return TraceContext(
            f"{span_context.trace_id:032x}",
            f"{span_context.span_id:016x}",
            bool(span_context.trace_flags & _SAMPLED),
            state or None,
        )
    except Exception:  # a broken OpenTelemetry setup must not break the host
        return None


_run_context_lookup: list[Callable[[], TraceContext | None]] = []


def set_run_context_lookup(lookup: Callable[[], TraceContext | None]) -> None:
    """Register how to find the LangChain run the caller is inside (the handler does this), so
    outbound calls made from a tool carry that tool's span as their parent."""
    _run_context_lookup[:] = [lookup]


def current_traceparent() -> str | None:
    """The ``traceparent`` to send on an outbound call from here: the innermost audited run's
    span when called inside one (a tool calling another service), else the current context."""
    for lookup in _run_context_lookup:
        try:
            ctx = lookup()
        except Exception:  # looking up context must never break an outbound call
            ctx = None
        if ctx is not None:
            return ctx.to_traceparent()
    current = TraceContext.current()
    return current.to_traceparent() if current is not None else None
