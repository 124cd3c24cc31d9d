"""Human review at a LangGraph interrupt: a payment agent stops before its side-effecting tool, a
person approves (one test) or edits (another) the payment, and the audit trail shows the call
before its effect, the review, the override, and the context versions the run went through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import fast_config
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from review_graphs import PAYMENTS, payment_agent

from llm_audit_langchain import (
    AuditCallbackHandler,
    AuditedCheckpointSaver,
    AuditEvent,
    AuditLogExporter,
    JsonlExporter,
)
from llm_audit_langchain.audit import verify
from llm_audit_langchain.capture.reviews import review_outcome
from llm_audit_langchain.inspect.context_versions import ContextHistory
from llm_audit_langchain.inspect.reconstruct import reconstruct
from llm_audit_langchain.replay.reading import scan


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[AuditCallbackHandler, Path, Path]]:
    logs, chain = tmp_path / "logs", tmp_path / "audit"
    config = fast_config(write_ahead_timeout_s=10.0)
    audit = AuditCallbackHandler(exporters=[JsonlExporter(logs), AuditLogExporter(chain)],
                                 config=config)
    PAYMENTS.clear()
    yield audit, logs, chain
    audit.shutdown(5)


def run_review(audit: AuditCallbackHandler, resume: Any) -> tuple[Any, dict[str, Any]]:
    saver = InMemorySaver()
    graph = payment_agent(AuditedCheckpointSaver(saver, handler=audit))
    thread = {"configurable": {"thread_id": "loan-7"}, "callbacks": [audit],
              "metadata": {"user_id": "customer-1"}}
    first = graph.invoke({"messages": [("user", "pay my rent")]}, thread)
    assert "__interrupt__" in first and PAYMENTS == []  # stopped before the tool
    final = graph.invoke(Command(resume=resume),
                         {**thread, "metadata": {"reviewer": "ana@bank"}})
    assert audit.flush(10)
    return saver, final


def of_type(events: list[AuditEvent], kind: str) -> list[AuditEvent]:
    return [e for e in events if e.event_type == kind]


def test_approved_payment(recorded: tuple[AuditCallbackHandler, Path, Path]) -> None:
    audit, logs, chain = recorded
    _, final = run_review(audit, {"type": "accept"})
    assert PAYMENTS == [{"account": "ES12-3456", "amount": 900}]
    assert final["messages"][-1].content == "Payment done."
    events = list(scan(logs))
    (interrupt,) = [e for e in of_type(events, "agent.interrupt")
                    if e.data["phase"] == "interrupt"]
    (review,) = of_type(events, "human.review")
    selection = of_type(events, "tool.selection")[0]
    assert review.data["outcome"] == "approved" and review.data["was_overridden"] is False
    assert review.data["reviewer"] == "ana@bank"
    assert review.data["interrupt_span_id"] == interrupt.span_id
    assert review.data["interrupt_trace_id"] == interrupt.trace_id
    assert review.data["decision_span_id"] == selection.span_id  # the LLM that proposed it
    assert review.data["interrupt"][0]["question"] == "Approve this payment?"
    assert review.data["resume"] == {"type": "accept"}
    assert review.data["wait_ms"] >= 0
    # the call was recorded (on disk in the chain) before the tool ran; the result after it
    (call,) = of_type(events, "tool.call")
    (result,) = of_type(events, "tool.result")
    assert call.data["write_ahead"] is True and call.timestamp <= result.timestamp
    assert call.data["input"] == {"account": "ES12-3456", "amount": 900}
    assert verify(chain).ok
    assert {e.event_id for e in scan(chain)} == {e.event_id for e in events}


def test_edited_payment_is_an_override_in_the_chain(
        recorded: tuple[AuditCallbackHandler, Path, Path]) -> None:
    audit, _, chain = recorded
    edit = {"type": "edit", "args": {"account": "ES12-3456", "amount": 90},
            "reason": "the invoice says 90"}
    saver, final = run_review(audit, edit)
    assert PAYMENTS == [{"account": "ES12-3456", "amount": 90}]
    assert final["messages"][-1].content == "Payment done."
    events = list(scan(chain))
    assert verify(chain).ok
    (review,) = of_type(events, "human.review")
    assert review.data["outcome"] == "edited"
    assert (review.data["was_overridden"], review.data["overridden_by"],
            review.data["override_reason"], review.data["final_decision"]) == (
        True, "ana@bank", "the invoice says 90", {"account": "ES12-3456", "amount": 90})
    assert review.data["proposed"]["args"] == {"account": "ES12-3456", "amount": 900}
    (call,) = of_type(events, "tool.call")
    assert call.data["input"] == {"account": "ES12-3456", "amount": 90}  # what really ran

    # context versions: lineage walks back to the thread's first checkpoint
    history = ContextHistory(events)
    latest = saver.get_tuple({"configurable": {"thread_id": "loan-7"}})
    chain_of_versions = history.lineage(latest.config["configurable"]["checkpoint_id"])
    assert chain_of_versions[0].source == "input" and chain_of_versions[0].step == -1
    assert [v.step for v in chain_of_versions] == list(range(-1, len(chain_of_versions) - 1))
    assert "review" in {n for v in chain_of_versions for n in v.changed_by}
    # the version in force when the person answered is the one the interrupt left
    in_force = history.context_at("loan-7", review.timestamp)
    assert in_force is not None and in_force.changed_by == ["agent"]

    # reconstruction of the interrupted trace ties the decision to its context and its review
    story = reconstruct(review.data["interrupt_trace_id"], chain)
    (proposal,) = [d for d in story["ai_decisions"] if d["tools_chosen"]]
    assert proposal["tools_offered"] == ["send_payment"]
    assert proposal["checkpoint_id"] is not None
    assert proposal["context_version"]["checkpoint_id"] == proposal["checkpoint_id"]
    assert proposal["was_overridden"] is True and proposal["overridden_by"] == "ana@bank"
    assert proposal["final_decision"] == {"account": "ES12-3456", "amount": 90}
    assert [r["outcome"] for r in proposal["reviews"]] == ["edited"]
    (agent_decision,) = story["agent_decisions"]  # the agent loop's own decision: call tools
    assert agent_decision["decision"] == "call_tools"
    assert agent_decision["checkpoint_id"] == proposal["checkpoint_id"]


def test_resume_without_a_seen_interrupt_is_still_a_review(
        recorded: tuple[AuditCallbackHandler, Path, Path]) -> None:
    audit, logs, _ = recorded
    saver = InMemorySaver()
    graph = payment_agent(saver)
    thread = {"configurable": {"thread_id": "t-x"}}
    graph.invoke({"messages": [("user", "pay")]}, thread)  # not audited: another process
    graph.invoke(Command(resume=False), {**thread, "callbacks": [audit],
                                         "metadata": {"user_id": "bob"}})
    assert audit.flush(10)
    (review,) = of_type(list(scan(logs)), "human.review")
    assert review.data["interrupt_unknown"] is True
    assert (review.data["outcome"], review.data["overridden_by"]) == ("rejected", "bob")


@pytest.mark.parametrize(("resume", "proposed", "outcome"), [
    ({"type": "accept"}, None, "approved"),
    ({"decisions": [{"type": "approve"}]}, None, "approved"),
    ({"decisions": [{"type": "approve"}, {"type": "edit"}]}, None, "edited"),
    ({"type": "reject", "message": "no"}, None, "rejected"),
    (True, None, "approved"),
    ("approve", None, "approved"),
    ({"name": "x", "args": {}}, {"name": "x", "args": {}}, "approved"),
    ("some text", None, "responded"),
])
def test_review_outcomes(resume: Any, proposed: Any, outcome: str) -> None:
    assert review_outcome(resume, proposed) == outcome


def test_a_reviewed_run_is_kept_whatever_the_sample_rate(tmp_path: Path) -> None:
    from llm_audit_langchain import MemoryExporter, SamplingPolicy

    memory = MemoryExporter()
    config = fast_config(debug=False, sampling=SamplingPolicy(success_rate=0.0))
    audit = AuditCallbackHandler(exporters=[memory], config=config)
    PAYMENTS.clear()
    try:
        graph = payment_agent(InMemorySaver())
        thread = {"configurable": {"thread_id": "t-s"}, "callbacks": [audit]}
        graph.invoke({"messages": [("user", "pay")]}, thread)
        graph.invoke(Command(resume={"type": "accept"}), thread)
        assert audit.flush(10)
    finally:
        audit.shutdown(5)
    kept = {e.trace_id for e in memory.events}
    (review,) = of_type(memory.events, "human.review")
    assert len(kept) == 1 and review.trace_id in kept  # the resumed run, kept whole
    assert {"tool.call", "tool.result", "llm.invoke"} <= {str(e.event_type)
                                                          for e in memory.events}
    root = next(e for e in memory.events if e.data.get("trace_root"))
    assert root.data["sampling"]["reason"] == "review"


def test_the_tree_shows_the_evidence(recorded: tuple[AuditCallbackHandler, Path, Path]) -> None:
    from llm_audit_langchain.inspect.tree import render_trace

    audit, logs, _ = recorded
    run_review(audit, {"type": "reject", "reason": "not this month"})
    assert PAYMENTS == []  # rejected: the tool never ran
    events = list(scan(logs))
    (review,) = of_type(events, "human.review")
    text = render_trace([e for e in events if e.trace_id == review.trace_id])
    assert "human review by ana@bank: rejected — override" in text
    first = render_trace([e for e in events if e.trace_id == review.data["interrupt_trace_id"]])
    assert "context step 1" in first and "by agent" in first


async def test_async_review_with_sqlite_checkpoints(
        recorded: tuple[AuditCallbackHandler, Path, Path], tmp_path: Path) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    audit, _, chain = recorded
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        graph = payment_agent(AuditedCheckpointSaver(saver, handler=audit))
        thread = {"configurable": {"thread_id": "a-1"}, "callbacks": [audit]}
        await graph.ainvoke({"messages": [("user", "pay")]}, thread)
        assert PAYMENTS == []
        await graph.ainvoke(Command(resume={"type": "edit", "args": {"account": "ES1",
                                                                     "amount": 1}}),
                            {**thread, "metadata": {"user_id": "ops-2"}})
        latest = await saver.aget_tuple({"configurable": {"thread_id": "a-1"}})
    assert audit.flush(10)
    assert PAYMENTS == [{"account": "ES1", "amount": 1}]
    events = list(scan(chain))
    (review,) = of_type(events, "human.review")
    assert (review.data["outcome"], review.data["overridden_by"]) == ("edited", "ops-2")
    history = ContextHistory(events)
    versions = history.lineage(latest.config["configurable"]["checkpoint_id"])
    assert versions[0].step == -1 and len(versions) == len(history.thread("a-1"))
