"""Context versions from LangGraph checkpoints: :class:`AuditedCheckpointSaver`.

LangGraph already versions an agent's context: every checkpoint has an id, a parent, the
channels that changed and the writes of the tasks that changed them. The wrapper records each of
them as a ``context.version`` event, so an audit can answer "what did the agent know when it
decided" from the audit trail alone, without access to the checkpoint store:

* one event per ``put`` (``data.kind == "checkpoint"``): thread id, checkpoint id, parent id,
  step, the state channels that changed, the nodes that changed them (``changed_by``), a hash of
  the sanitized state (``state_hash``; the state itself is not exported), and the
  ``change_description`` when the run's metadata gives one;
* one event per ``put_writes`` (``data.kind == "writes"``): the task, its node, the checkpoint
  it ran from (the context version its decisions were made from) and what it wrote, sanitized.

The wrapper changes nothing the saver stores or returns: every call goes to the wrapped saver
first, and recording never raises into the graph. Example::

    graph = builder.compile(checkpointer=AuditedCheckpointSaver(InMemorySaver()))
    graph.invoke(inputs, {"configurable": {"thread_id": "t1"}, "callbacks": [handler]})
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from ..context import new_event_id, new_span_id, new_trace_id
from ..events import AuditEventType, fast_event

if TYPE_CHECKING:
    from .handler import AuditCallbackHandler

logger = logging.getLogger("llm_audit_langchain")

_MAX_PENDING_WRITERS = 10_000
_INTERNAL_PREFIXES = ("branch:", "__")


_descriptions: dict[str, Any] = {}  # task id -> what its node said it changed (bounded)


def describe_change(description: str) -> None:
    """Called inside a LangGraph node: a human description of the change this node makes to
    the state, recorded as ``change_description`` with its writes and the next checkpoint.
    Outside a graph run it does nothing."""
    try:
        from langgraph.config import get_config

        namespace = str(get_config()["configurable"].get("checkpoint_ns", ""))
    except (RuntimeError, KeyError):  # not inside a node
        return
    task_id = namespace.rsplit("|", 1)[-1].partition(":")[2]
    if task_id:
        _descriptions[task_id] = description
        if len(_descriptions) > _MAX_PENDING_WRITERS:
            _descriptions.pop(next(iter(_descriptions)), None)


def user_channels(channels: Collection[str]) -> list[str]:
    """State channels, without LangGraph's bookkeeping ones (``branch:to:...``, ``__start__``)."""
    return sorted(c for c in channels if not c.startswith(_INTERNAL_PREFIXES))


def task_node(task_path: str) -> str | None:
    """The node of a task from its path (``"~__pregel_pull, agent"`` → ``agent``)."""
    last = task_path.rsplit(",", 1)[-1].strip() if task_path else ""
    return last or None


class AuditedCheckpointSaver(BaseCheckpointSaver[Any]):
    """Wrap any LangGraph checkpoint saver (in-memory, SQLite, Postgres, your own) so that each
    checkpoint and each task's writes are recorded as ``context.version`` events.

    Args:
        saver: the saver that really stores checkpoints; it is used unchanged.
        handler: where the events go; by default the process's default audit handler at the
            time of each write (the last one created, or the one set with
            ``set_default_handler``). Without any handler nothing is recorded.

    Events join the trace of the graph run that wrote the checkpoint (matched by thread id).
    """

    def __init__(self, saver: BaseCheckpointSaver[Any], *,
                 handler: AuditCallbackHandler | None = None) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver
        self._handler = handler
        # (thread, namespace, checkpoint id) -> nodes whose writes on it the next checkpoint
        # holds, and what they said they changed
        self._writers: dict[tuple[str, str, str], tuple[set[str], list[Any]]] = {}
        # (thread, namespace) -> (latest checkpoint id, its versions_seen)
        self._versions_seen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.recording_errors = 0
        self._warned = False

    def __getattr__(self, name: str) -> Any:  # the wrapped saver's own extras (setup, conn...)
        if name == "saver":
            raise AttributeError(name)
        return getattr(self.saver, name)

    @property
    def config_specs(self) -> list[Any]:
        return list(self.saver.config_specs)

    # ---- writes: delegated first, then recorded --------------------------------------------

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        stored = self.saver.put(config, checkpoint, metadata, new_versions)
        self._record_checkpoint(config, checkpoint, metadata, new_versions)
        return stored

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        stored = await self.saver.aput(config, checkpoint, metadata, new_versions)
        self._record_checkpoint(config, checkpoint, metadata, new_versions)
        return stored

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        self.saver.put_writes(config, writes, task_id, task_path)
        self._record_writes(config, writes, task_id, task_path)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await self.saver.aput_writes(config, writes, task_id, task_path)
        self._record_writes(config, writes, task_id, task_path)

    # ---- everything else: the wrapped saver, unchanged ---------------------------------------

    def get(self, config: RunnableConfig) -> Checkpoint | None:
        return self.saver.get(config)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.saver.get_tuple(config)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None,
             ) -> Iterator[CheckpointTuple]:
        return self.saver.list(config, filter=filter, before=before, limit=limit)

    def delete_thread(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.saver.delete_for_runs(run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.saver.copy_thread(source_thread_id, target_thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.saver.prune(thread_ids, strategy=strategy)

    async def aget(self, config: RunnableConfig) -> Checkpoint | None:
        return await self.saver.aget(config)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self.saver.aget_tuple(config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None,
                    ) -> AsyncIterator[CheckpointTuple]:
        async for item in self.saver.alist(config, filter=filter, before=before, limit=limit):
            yield item

    async def adelete_thread(self, thread_id: str) -> None:
        await self.saver.adelete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self.saver.adelete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self.saver.acopy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self.saver.aprune(thread_ids, strategy=strategy)

    def get_delta_channel_history(self, *, config: RunnableConfig,
                                  channels: Sequence[str]) -> Mapping[str, Any]:
        return self.saver.get_delta_channel_history(config=config, channels=channels)

    async def aget_delta_channel_history(self, *, config: RunnableConfig,
                                         channels: Sequence[str]) -> Mapping[str, Any]:
        return await self.saver.aget_delta_channel_history(config=config, channels=channels)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    # ---- recording ---------------------------------------------------------------------------

    def _record_checkpoint(self, config: RunnableConfig, checkpoint: Checkpoint,
                           metadata: CheckpointMetadata, new_versions: ChannelVersions) -> None:
        try:
            thread_id, namespace, parent = _where(config)
            source = metadata.get("source")
            nodes, descriptions = self._writers.pop((thread_id, namespace, str(parent)),
                                                    (set(), []))
            ran = self._nodes_that_ran((thread_id, namespace), parent, checkpoint)
            changed_by = [*ran] or sorted(nodes) or ([str(source)] if source else [])
            values = checkpoint.get("channel_values") or {}
            data: dict[str, Any] = {
                "kind": "checkpoint", "thread_id": thread_id, "checkpoint_ns": namespace,
                "checkpoint_id": checkpoint["id"], "parent_checkpoint_id": parent,
                "step": metadata.get("step"), "source": source,
                "changed_channels": user_channels(new_versions), "changed_by": changed_by,
                # hashed after sanitizing, on the worker; the state itself is not exported
                "state": {k: v for k, v in values.items() if not k.startswith(_INTERNAL_PREFIXES)},
            }
            if descriptions:
                data["change_description"] = (descriptions[0] if len(descriptions) == 1
                                              else descriptions)
            self._emit(thread_id, _checkpoint_time(checkpoint), data)
        except Exception as exc:
            self._failed(exc)

    def _nodes_that_ran(self, thread: tuple[str, str], parent: Any,
                        checkpoint: Checkpoint) -> Sequence[str]:
        """The nodes whose step produced ``checkpoint``: those whose ``versions_seen`` moved
        since the parent checkpoint. LangGraph puts a thread's checkpoints one after another,
        so the parent's is the one remembered here (unless this process never saw it)."""
        seen = {node: dict(versions) for node, versions in
                (checkpoint.get("versions_seen") or {}).items()}
        previous = self._versions_seen.pop(thread, None)
        self._versions_seen[thread] = (checkpoint["id"], seen)
        if len(self._versions_seen) > _MAX_PENDING_WRITERS:
            self._versions_seen.pop(next(iter(self._versions_seen)), None)
        if previous is None or previous[0] != parent:
            return []
        before = previous[1]
        return sorted(node for node, versions in seen.items()
                      if before.get(node) != versions and not node.startswith("__input"))

    def _record_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                       task_id: str, task_path: str) -> None:
        try:
            thread_id, namespace, checkpoint_id = _where(config)
            node = task_node(task_path)
            channels = sorted({channel for channel, _ in writes})
            written = {c: v for c, v in writes if not c.startswith(_INTERNAL_PREFIXES)}
            run_metadata = config.get("metadata") or {}
            description = _descriptions.pop(task_id, None) or run_metadata.get(
                "change_description")
            if node is not None and written:
                key = (thread_id, namespace, str(checkpoint_id))
                nodes, descriptions = self._writers.setdefault(key, (set(), []))
                nodes.add(node)
                if description is not None and description not in descriptions:
                    descriptions.append(description)
                if len(self._writers) > _MAX_PENDING_WRITERS:
                    self._writers.pop(next(iter(self._writers)), None)
            data: dict[str, Any] = {
                "kind": "writes", "thread_id": thread_id, "checkpoint_ns": namespace,
                "checkpoint_id": checkpoint_id, "task_id": task_id,
                "changed_by": [node] if node else [], "channels": channels, "writes": written,
            }
            if description is not None:
                data["change_description"] = description
            self._emit(thread_id, datetime.now(UTC), data)
        except Exception as exc:
            self._failed(exc)

    def _emit(self, thread_id: str, when: datetime, data: dict[str, Any]) -> None:
        handler = self._handler
        if handler is None:
            from .handler import get_default_handler

            handler = get_default_handler()
        if handler is None:
            return
        context = handler.trace_of_thread(thread_id)
        if context is not None:  # a point event in the run's root span
            trace_id, span_id = context.trace_id, context.span_id
        else:  # no run of this thread seen: a trace of its own, decided at once by the sampler
            trace_id, span_id = new_trace_id(), new_span_id()
            data["trace_root"] = True
        handler.emit_event(fast_event(
            event_id=new_event_id(), trace_id=trace_id, span_id=span_id, timestamp=when,
            event_type=AuditEventType.CONTEXT_VERSION, agent="checkpointer",
            action=f"context.{data['kind']}", data=data,
        ))

    def _failed(self, exc: BaseException) -> None:
        self.recording_errors += 1
        if not self._warned:
            self._warned = True
            logger.warning("could not record a context version (the checkpoint itself was "
                           "saved; further failures are only counted)", exc_info=exc)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]
                       ) -> AuditedCheckpointSaver:
        return AuditedCheckpointSaver(self.saver.with_allowlist(extra_allowlist),
                                      handler=self._handler)


def _checkpoint_time(checkpoint: Checkpoint) -> datetime:
    """When LangGraph made the checkpoint (its ``ts``), else now."""
    try:
        when = datetime.fromisoformat(str(checkpoint.get("ts")))
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _where(config: RunnableConfig) -> tuple[str, str, Any]:
    """The thread id and checkpoint namespace (as text) and the checkpoint id of ``config``."""
    configurable = config.get("configurable") or {}
    return (str(configurable.get("thread_id", "")), str(configurable.get("checkpoint_ns", "")),
            configurable.get("checkpoint_id"))
