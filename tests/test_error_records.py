"""Every failure leaves an error record, whatever the exception or the input looks like: an
exception whose ``__str__`` or ``__repr__`` raises, inputs with unprintable keys, reprs that
raise, structures 10,000 levels deep."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import fast_config
from langchain_core.runnables import RunnableLambda

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("bad repr")

    __str__ = __repr__


class BadKey:
    def __hash__(self) -> int:
        return 1

    def __str__(self) -> str:
        raise ValueError("bad key")

    __repr__ = __str__


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"next": value}
    return value


def _run_failing(handler: AuditCallbackHandler, error: BaseException, payload: Any) -> None:
    def fail(_: Any) -> Any:
        raise error

    with pytest.raises(type(error)):
        RunnableLambda(fail, name="failing_step").invoke(payload,
                                                         config={"callbacks": [handler]})


@pytest.mark.parametrize(("error", "payload"), [
    (UnprintableError("x"), {"q": 1}),
    (ValueError(BadRepr()), {"q": 1}),
    (ValueError("plain"), {BadKey(): 1}),
    (ValueError("plain"), {"q": BadRepr()}),
    (ValueError("plain"), _deep(10_000)),
    (ValueError(_deep(3_000)), "x"),
], ids=["unprintable-exception", "bad-repr-arg", "bad-key", "bad-repr-input", "deep-input",
        "deep-exception-arg"])
def test_a_failure_always_leaves_an_error_record(error: BaseException, payload: Any) -> None:
    memory = MemoryExporter()
    handler = AuditCallbackHandler([memory], config=fast_config())
    try:
        _run_failing(handler, error, payload)
        assert handler.flush(10)
        stats = handler.stats()
    finally:
        handler.shutdown(5)
    errors = [e for e in memory.events if e.event_type == "chain.error"]
    assert len(errors) == 1, stats
    (event,) = errors
    assert event.error is not None and event.error.type.endswith(type(error).__name__)
    assert isinstance(event.error.message, str)
    assert stats["internal_errors"] == 0
    assert stats["exported"] == stats["enqueued"] and stats["dropped"] == {}
