"""A LangChain 1.x agent (``create_agent``) whose memory lives in Redis, offline.

``create_agent(model, tools, checkpointer=RedisSaver(...), store=RedisStore(...))``:
the conversation is kept in checkpoints, long-term memories in a store with semantic
search. The tools reach the store through LangChain's ``ToolRuntime``; the thread
belongs to the user in ``configurable.user_id`` (so ``chatkeep purge --owner ada``
deletes it with the user's other data). The model is a scripted fake (no network, no
API key) that calls a tool when told to remember, to recall or to look up the weather.

The script talks to the agent, then starts a *new process* that resumes the thread and,
on a new thread, recalls a memory by meaning::

    REDIS_URL=redis://localhost:6379/0 python examples/langchain_agent.py

Needs ``pip install langchain`` (LangChain 1.x) besides ``chatkeep[langgraph]``. Redis
is found at ``CHATKEEP_URL`` or ``REDIS_URL`` (default ``redis://localhost:6379/0``);
with no Redis answering it still works, from chatkeep's in-memory fallback (which lasts
as long as the process, so the second process starts afresh).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.tools import ToolRuntime, tool
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from chatkeep import StoreConfig
from chatkeep_langgraph import RedisSaver, RedisStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from langgraph_agent import DIMS, embed, redis_answers  # the fake embedding


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return {"Paris": "18°C, sunny", "Oslo": "4°C, rain"}.get(city, "unknown")


@tool
def remember(text: str, runtime: ToolRuntime) -> str:
    """Save something about the user for later conversations."""
    user = runtime.config["configurable"]["user_id"]
    assert runtime.store is not None
    runtime.store.put(("memories", user), uuid.uuid4().hex, {"text": text})
    return "Saved."


@tool
def recall(query: str, runtime: ToolRuntime) -> str:
    """Find what was saved about the user, by meaning."""
    user = runtime.config["configurable"]["user_id"]
    assert runtime.store is not None
    found = runtime.store.search(("memories", user), query=query, limit=1)
    if not found:
        return "nothing yet"
    return f"{found[0].value['text']} (score {found[0].score:.2f})"


class ScriptedModel(BaseChatModel):
    """A fake tool-calling model: what it does depends only on the last message."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self  # it knows its tools already

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    @staticmethod
    def _answer(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"({last.name}) {last.content}")
        text = str(last.content)
        call: tuple[str, dict[str, Any]] | None = None
        if match := re.match(r"remember (.+)", text, re.IGNORECASE):
            call = ("remember", {"text": match.group(1)})
        elif text.lower().startswith("what do you remember"):
            call = ("recall", {"query": text})
        elif match := re.search(r"weather in (\w+)", text):
            call = ("get_weather", {"city": match.group(1)})
        if call is not None:
            name, args = call
            return AIMessage(
                content="", tool_calls=[{"id": f"call-{len(messages)}", "name": name, "args": args}]
            )
        asked = [str(m.content) for m in messages if isinstance(m, HumanMessage)]
        said = f"You have said {len(asked)} thing(s); the first was {asked[0]!r}."
        return AIMessage(content=said)


def talk(thread_id: str, questions: list[str], memory_prefix: str) -> None:
    saver = RedisSaver(prefix="example-agent", ttl={"default_ttl": 60})  # minutes
    store = RedisStore(
        prefix=memory_prefix,
        ttl={"default_ttl": 24 * 60},
        index={"dims": DIMS, "embed": embed, "fields": ["text"]},
    )
    agent = create_agent(
        ScriptedModel(),
        [get_weather, remember, recall],
        checkpointer=saver,
        store=store,
    )
    config: Any = {"configurable": {"thread_id": thread_id, "user_id": "ada"}}
    for question in questions:
        out = agent.invoke({"messages": [HumanMessage(question)]}, config)
        print(f"  user:  {question}")
        print(f"  agent: {out['messages'][-1].content}")
    messages = agent.get_state(config).values["messages"]
    print(f"  ({len(messages)} messages in thread {thread_id!r})")
    store.close()
    saver.close()


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--resume":
        print("Process 2 (restarted), same thread:")
        talk(sys.argv[2], ["What did I say first?"], sys.argv[3])
        print("Process 2, a new thread: long-term memory, found by meaning")
        talk(f"{sys.argv[2]}-b", ["What do you remember about my cat?"], sys.argv[3])
        return
    config = StoreConfig.from_env()
    if redis_answers(config.url):
        print(f"Connected to Redis at {config.safe_url}")
    else:
        print(f"No Redis answers at {config.safe_url}: using the in-memory fallback")
    thread_id = f"agent-{uuid.uuid4().hex[:8]}"
    memory_prefix = f"example-agent-mem-{uuid.uuid4().hex[:8]}"
    print("Process 1:")
    talk(
        thread_id,
        ["Hi, I'm Ada.", "What is the weather in Paris?", "Remember my cat is called Turing"],
        memory_prefix,
    )
    subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--resume", thread_id, memory_prefix],
        check=True,
    )


if __name__ == "__main__":
    main()
