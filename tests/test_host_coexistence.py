"""Attaching our handler changes nothing another observer of the same run sees.

LangChain's own streaming views (``astream_events`` v1 and v2, ``astream_log``) and a user's
handlers (async non-inline, sync non-inline) must see exactly the same callbacks with and without
an ``AuditCallbackHandler`` in the run, for chat models and completion LLMs, under ``invoke`` and
``ainvoke``. Completion LLMs matter most: ``AsyncCallbackManager.on_llm_start`` sends the start
only to inline handlers as soon as one handler is inline, so an inline handler of ours would hide
it from everyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import fast_config
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from llm_audit_langchain import AuditCallbackHandler, MemoryExporter

pytestmark = [pytest.mark.filterwarnings("ignore:astream_log is deprecated"),
              pytest.mark.filterwarnings("ignore:astream_events version=.v1. is deprecated")]

_CALLBACKS = ("on_chain_start", "on_chain_end", "on_llm_start", "on_chat_model_start",
              "on_llm_end", "on_llm_new_token", "on_llm_error", "on_chain_error")


def _completion_llm() -> Runnable[Any, Any]:
    return FakeListLLM(responses=["a short answer"])


def _chat_model() -> Runnable[Any, Any]:
    return FakeListChatModel(responses=["a short answer"])


def _prompt_chain(model: Callable[[], Runnable[Any, Any]]) -> Callable[[], Runnable[Any, Any]]:
    def build() -> Runnable[Any, Any]:
        prompt = PromptTemplate.from_template("Say something about {topic}")
        return prompt | model() | StrOutputParser()
    return build


def _batched(model: Callable[[], Runnable[Any, Any]]) -> Callable[[], Runnable[Any, Any]]:
    """A model called on two prompts at once from inside a lambda (a nested, parallel start)."""
    def build() -> Runnable[Any, Any]:
        inner = model()

        async def call(topic: Any) -> Any:
            return await inner.abatch([f"one {topic}", f"two {topic}"])

        def call_sync(topic: Any) -> Any:
            return inner.batch([f"one {topic}", f"two {topic}"])

        return RunnableLambda(call_sync, afunc=call, name="fan_out")
    return build


RUNNABLES = {
    "completion_llm": _completion_llm,
    "chat_model": _chat_model,
    "prompt_completion_llm": _prompt_chain(_completion_llm),
    "prompt_chat_model": _prompt_chain(_chat_model),
    "batched_completion_llm": _batched(_completion_llm),
    "batched_chat_model": _batched(_chat_model),
}


def _input(name: str) -> Any:
    return {"topic": "cats"} if name.startswith("prompt_") else "cats"


class _Recorder:
    """The callbacks a user's handler saw, as (callback, run name or ?) in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def record(self, callback: str, kwargs: dict[str, Any]) -> None:
        self.seen.append(callback)


def _async_recorder() -> tuple[AsyncCallbackHandler, _Recorder]:
    recorder = _Recorder()

    class UserAsyncHandler(AsyncCallbackHandler):
        pass

    for callback in _CALLBACKS:
        async def method(self: Any, *args: Any, _name: str = callback, **kwargs: Any) -> None:
            recorder.record(_name, kwargs)
        setattr(UserAsyncHandler, callback, method)
    return UserAsyncHandler(), recorder


def _sync_recorder() -> tuple[BaseCallbackHandler, _Recorder]:
    recorder = _Recorder()

    class UserSyncHandler(BaseCallbackHandler):  # run_inline False: the executor under ainvoke
        pass

    for callback in _CALLBACKS:
        def method(self: Any, *args: Any, _name: str = callback, **kwargs: Any) -> None:
            recorder.record(_name, kwargs)
        setattr(UserSyncHandler, callback, method)
    return UserSyncHandler(), recorder


def _audit_handlers(with_audit: bool) -> tuple[list[Any], AuditCallbackHandler | None]:
    if not with_audit:
        return [], None
    audit = AuditCallbackHandler(exporters=[MemoryExporter()], config=fast_config())
    return [audit], audit


def _finish(audit: AuditCallbackHandler | None) -> None:
    if audit is not None:
        assert audit.flush(timeout=10)
        stats = audit.stats()
        assert stats["internal_errors"] == 0
        assert stats["orphan_ends"] == 0  # we saw every start too
        audit.shutdown(timeout=5)


async def _events_seen(name: str, version: str, with_audit: bool) -> list[tuple[str, str]]:
    extra, audit = _audit_handlers(with_audit)
    runnable = RUNNABLES[name]()
    seen = [(event["event"], event["name"])
            async for event in runnable.astream_events(_input(name), version=version,  # type: ignore[arg-type]
                                                       config={"callbacks": extra})]
    _finish(audit)
    return seen


async def _log_seen(name: str, with_audit: bool) -> list[tuple[str, bool]]:
    extra, audit = _audit_handlers(with_audit)
    runnable = RUNNABLES[name]()
    final = None
    async for patch in runnable.astream_log(_input(name), config={"callbacks": extra}):
        final = patch if final is None else final + patch
    _finish(audit)
    assert final is not None
    logs = final.state["logs"]
    return sorted((key, entry["end_time"] is not None) for key, entry in logs.items())


@pytest.mark.parametrize("name", sorted(RUNNABLES))
@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_astream_events_unchanged_by_our_handler(name: str, version: str) -> None:
    plain = await _events_seen(name, version, with_audit=False)
    audited = await _events_seen(name, version, with_audit=True)
    assert audited == plain
    assert any(kind in ("on_llm_start", "on_chat_model_start") for kind, _ in plain)


@pytest.mark.parametrize("name", sorted(RUNNABLES))
async def test_astream_log_unchanged_by_our_handler(name: str) -> None:
    plain = await _log_seen(name, with_audit=False)
    audited = await _log_seen(name, with_audit=True)
    assert audited == plain
    assert all(ended for _, ended in plain)


@pytest.mark.parametrize("name", sorted(RUNNABLES))
@pytest.mark.parametrize("user_handler", [_async_recorder, _sync_recorder])
async def test_user_handlers_see_the_same_callbacks_under_ainvoke(
    name: str, user_handler: Callable[[], tuple[BaseCallbackHandler, _Recorder]]
) -> None:
    seen = {}
    for with_audit in (False, True):
        user, recorder = user_handler()
        extra, audit = _audit_handlers(with_audit)
        await RUNNABLES[name]().ainvoke(_input(name), config={"callbacks": [user, *extra]})
        _finish(audit)
        seen[with_audit] = sorted(recorder.seen)
    assert seen[True] == seen[False]
    assert seen[False].count("on_llm_end") == (
        seen[False].count("on_llm_start") + seen[False].count("on_chat_model_start"))


@pytest.mark.parametrize("name", sorted(RUNNABLES))
@pytest.mark.parametrize("user_handler", [_async_recorder, _sync_recorder])
def test_user_handlers_see_the_same_callbacks_under_invoke(
    name: str, user_handler: Callable[[], tuple[BaseCallbackHandler, _Recorder]]
) -> None:
    seen = {}
    for with_audit in (False, True):
        user, recorder = user_handler()
        extra, audit = _audit_handlers(with_audit)
        RUNNABLES[name]().invoke(_input(name), config={"callbacks": [user, *extra]})
        _finish(audit)
        seen[with_audit] = sorted(recorder.seen)
    assert seen[True] == seen[False]


async def test_a_truly_inline_user_handler_still_leaves_us_every_start() -> None:
    """When another handler is inline, the upstream dispatch sends completion-LLM starts only to
    inline handlers: we stay among them, so our record keeps its start."""

    class InlineUserHandler(BaseCallbackHandler):
        run_inline = True

    audit = AuditCallbackHandler(exporters=[MemoryExporter()], config=fast_config())
    await _completion_llm().ainvoke("cats", config={"callbacks": [InlineUserHandler(), audit]})
    _finish(audit)
