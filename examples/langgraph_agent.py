"""A LangGraph agent whose memory (checkpoints) lives in Redis, offline.

The agent has a tool (a weather lookup) and a fake chat model (no network, no API
key) that calls the tool, then answers with what it remembers of the conversation.
The script talks to the agent, then starts a *new process* that resumes the same
thread: the second process remembers the first because the checkpoints are in Redis::

    REDIS_URL=redis://localhost:6379/0 python examples/langgraph_agent.py

Redis is found at ``CHATKEEP_URL`` or ``REDIS_URL`` (default
``redis://localhost:6379/0``). When no Redis answers, the example says so and still
works: chatkeep serves the graph from its in-memory fallback (which lasts only as
long as the process, so the restarted process starts afresh).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from chatkeep import StoreConfig
from chatkeep_langgraph import RedisSaver


def weather(city: str) -> str:
    return {"Paris": "18°C, sunny", "Oslo": "4°C, rain"}.get(city, "unknown")


def model(messages: list[BaseMessage]) -> AIMessage:
    """An offline model: asks the weather tool for a city it is told about, then
    answers with what the conversation holds."""
    last = messages[-1]
    if isinstance(last, HumanMessage) and "weather" in str(last.content).lower():
        city = str(last.content).rstrip("?").split()[-1]
        call = {"id": f"call-{len(messages)}", "name": "weather", "args": {"city": city}}
        return AIMessage(content="", tool_calls=[call])
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"The weather there: {last.content}.")
    asked = [str(m.content) for m in messages if isinstance(m, HumanMessage)]
    return AIMessage(
        content=f"You have said {len(asked)} thing(s) in this thread; the first was {asked[0]!r}."
    )


def build(
    saver: BaseCheckpointSaver[Any],
    chat_model: Callable[[list[BaseMessage]], AIMessage] = model,
) -> Any:
    """The agent: ``chat_model`` (the offline model above unless told otherwise) and the
    weather tool, its checkpoints kept by ``saver``."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [chat_model(state["messages"])]}

    def tools(state: MessagesState) -> dict[str, Any]:
        calls = state["messages"][-1].tool_calls  # type: ignore[attr-defined]
        return {
            "messages": [
                ToolMessage(weather(**c["args"]), tool_call_id=c["id"], name=c["name"])
                for c in calls
            ]
        }

    def route(state: MessagesState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver)


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def talk(thread_id: str, questions: list[str]) -> None:
    saver = RedisSaver(prefix="example-lg", ttl=3600, keep_last=50)
    graph = build(saver)
    config = {"configurable": {"thread_id": thread_id}}
    for question in questions:
        out = graph.invoke({"messages": [HumanMessage(question)]}, config)
        print(f"  user:  {question}")
        print(f"  agent: {out['messages'][-1].content}")
    state = graph.get_state(config)
    print(
        f"  ({len(state.values['messages'])} messages in thread {thread_id!r}, "
        f"status: {saver.status().serving})"
    )
    saver.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")
    if len(sys.argv) > 2 and sys.argv[1] == "--resume":
        print("Process 2 (restarted), same thread:")
        talk(sys.argv[2], ["What did I ask first?"])
        return
    url = StoreConfig.from_env().url
    if redis_answers(url):
        print(f"Connected to Redis at {StoreConfig.from_env().safe_url}")
    else:
        print(
            f"No Redis answers at {StoreConfig.from_env().safe_url}: using the in-memory "
            "fallback (checkpoints last as long as this process)"
        )
    thread_id = f"demo-{uuid.uuid4().hex[:8]}"
    print("Process 1:")
    talk(thread_id, ["Hi, I'm Ada.", "What is the weather in Paris?"])
    subprocess.run([sys.executable, os.path.abspath(__file__), "--resume", thread_id], check=True)


if __name__ == "__main__":
    main()
