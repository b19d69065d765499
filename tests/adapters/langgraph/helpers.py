"""A small offline agent graph for the LangGraph tests."""

from __future__ import annotations

from itertools import cycle
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def agent_graph(checkpointer: Any, replies: list[str] | None = None) -> Any:
    """START -> chat (a fake model answering from ``replies``) -> END."""
    model = GenericFakeChatModel(
        messages=cycle([AIMessage(content=r) for r in (replies or ["ok"])])
    )

    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=checkpointer)


def thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}
