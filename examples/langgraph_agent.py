"""A LangGraph agent whose memory lives in Redis, offline: the conversation in
checkpoints (``RedisSaver``), long-term memories in a store with semantic search
(``RedisStore(index=...)``).

The agent has a tool (a weather lookup) and a fake chat model (no network, no API
key) that calls the tool, then answers with what it remembers of the conversation.
Told "Remember ...", it saves a memory in the store (embedded by a fake embedding
function); asked "What do you remember about ...?", it finds the closest memory by
cosine similarity. The script talks to the agent, then starts a *new process* that
resumes the same thread and, on a new thread, recalls a memory by meaning: the second
process remembers the first because checkpoints and memories are in Redis::

    REDIS_URL=redis://localhost:6379/0 python examples/langgraph_agent.py

Redis is found at ``CHATKEEP_URL`` or ``REDIS_URL`` (default
``redis://localhost:6379/0``). When no Redis answers, the example says so and still
works: chatkeep serves the graph from its in-memory fallback (which lasts only as
long as the process, so the restarted process starts afresh).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_store
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

from chatkeep import StoreConfig
from chatkeep_langgraph import RedisSaver, RedisStore

DIMS = 256
USER = "ada"


def embed(texts: list[str]) -> list[list[float]]:
    """A fake embedding (stands in for e.g. OpenAIEmbeddings): each word a fixed
    pseudo-random direction, a text the normalized sum of its words. The same in
    every process, so memories saved by one are found by another."""
    out = []
    for text in texts:
        vector = [0.0] * DIMS
        for word in re.findall(r"[a-z]+", text.lower()):
            seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
            rng = random.Random(seed)
            for i in range(DIMS):
                vector[i] += rng.gauss(0.0, 1.0)
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        out.append([x / norm for x in vector])
    return out


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


def remember_or_recall(store: BaseStore, text: str) -> AIMessage | None:
    """Save a memory ("Remember ...") or search the memories by meaning ("What do you
    remember about ...?"); None for anything else."""
    namespace = ("memories", USER)
    if text.lower().startswith("remember "):
        store.put(namespace, uuid.uuid4().hex, {"text": text[len("remember ") :]})
        return AIMessage(content="I'll remember that.")
    if text.lower().startswith("what do you remember"):
        found = store.search(namespace, query=text, limit=1)
        if not found:
            return AIMessage(content="I have no memories yet.")
        best = found[0]
        return AIMessage(content=f"I remember: {best.value['text']} (score {best.score:.2f})")
    return None


def build(
    saver: BaseCheckpointSaver[Any],
    chat_model: Callable[[list[BaseMessage]], AIMessage] = model,
    store: BaseStore | None = None,
) -> Any:
    """The agent: ``chat_model`` (the offline model above unless told otherwise) and the
    weather tool, its checkpoints kept by ``saver``, its long-term memories in
    ``store`` (if given)."""

    def agent(state: MessagesState) -> dict[str, Any]:
        last = state["messages"][-1]
        if store is not None and isinstance(last, HumanMessage):
            answer = remember_or_recall(get_store(), str(last.content))
            if answer is not None:
                return {"messages": [answer]}
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
    return builder.compile(checkpointer=saver, store=store)


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def talk(thread_id: str, questions: list[str], memory_prefix: str) -> None:
    saver = RedisSaver(key_prefix="example-lg", ttl=3600, keep_last=50)
    # memories expire a day after their last use; each run of the example its own prefix
    store = RedisStore(
        key_prefix=memory_prefix,
        ttl={"default_ttl": 24 * 60},
        index={"dims": DIMS, "embed": embed, "fields": ["text"]},
    )
    graph = build(saver, store=store)
    config = {"configurable": {"thread_id": thread_id, "user_id": USER}}
    for question in questions:
        out = graph.invoke({"messages": [HumanMessage(question)]}, config)
        print(f"  user:  {question}")
        print(f"  agent: {out['messages'][-1].content}")
    state = graph.get_state(config)
    print(
        f"  ({len(state.values['messages'])} messages in thread {thread_id!r}, "
        f"status: {saver.status().serving})"
    )
    store.close()
    saver.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")
    if len(sys.argv) > 3 and sys.argv[1] == "--resume":
        print("Process 2 (restarted), same thread:")
        talk(sys.argv[2], ["What did I ask first?"], sys.argv[3])
        print("Process 2, a new thread: long-term memory, found by meaning")
        talk(f"{sys.argv[2]}-b", ["What do you remember about my cat?"], sys.argv[3])
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
    memory_prefix = f"example-mem-{uuid.uuid4().hex[:8]}"
    print("Process 1:")
    talk(
        thread_id,
        [
            "Hi, I'm Ada.",
            "What is the weather in Paris?",
            "Remember my cat is called Turing",
            "Remember I work on compilers",
        ],
        memory_prefix,
    )
    subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--resume", thread_id, memory_prefix],
        check=True,
    )


if __name__ == "__main__":
    main()
