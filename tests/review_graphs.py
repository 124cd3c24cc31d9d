"""A human-in-the-loop payment agent: the model proposes a payment, a person reviews it at an
``interrupt()``, then the side-effecting tool runs (or not) with what the person approved."""

from __future__ import annotations

from typing import Any

from graphs import AgentState, tool_call
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

from llm_audit_langchain.testing import ScriptedChatModel

PAYMENTS: list[dict[str, Any]] = []  # the tool's effect, observable by tests


@tool
def send_payment(account: str, amount: int) -> str:
    """Send money to an account."""
    PAYMENTS.append({"account": account, "amount": amount})
    return f"sent {amount} to {account}"


send_payment.metadata = {"audit": "write_ahead"}


def payment_agent(checkpointer: Any, *, amount: int = 900) -> Any:
    """agent → review (interrupt) → tools → agent → END; a rejection ends the run."""
    model = ScriptedChatModel(responses=[
        tool_call("send_payment", {"account": "ES12-3456", "amount": amount}, "call_pay"),
        AIMessage("Payment done."),
    ]).bind_tools([send_payment])

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def review(state: AgentState) -> dict[str, Any]:
        proposal = state["messages"][-1]
        call = proposal.tool_calls[0]
        answer = interrupt({"question": "Approve this payment?", "tool_call": call})
        kind = answer.get("type") if isinstance(answer, dict) else answer
        if kind == "edit":
            edited = {**call, "args": answer["args"]}
            return {"messages": [AIMessage(proposal.content, id=proposal.id,
                                           tool_calls=[edited])]}
        if kind in ("reject", False):  # the proposal is replaced: nothing to run
            return {"messages": [AIMessage("Payment cancelled by the reviewer.",
                                           id=proposal.id)]}
        return {}

    def route(state: AgentState) -> str:
        return "review" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("review", review)
    builder.add_node("tools", ToolNode([send_payment]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["review", END])
    builder.add_conditional_edges("review", route, {"review": "tools", END: END})
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)
