"""A small multi-turn LangChain chat whose memory lives in Redis, offline.

The model is a fake (no network, no API key) that answers with what it remembers,
so you can see the history at work. Run it twice with the same session id: the
second run remembers the first, because the conversation is in Redis::

    REDIS_URL=redis://localhost:6379/0 python examples/langchain_chat.py my-session
    REDIS_URL=redis://localhost:6379/0 python examples/langchain_chat.py my-session

Redis is found at ``CHATKEEP_URL`` or ``REDIS_URL`` (default
``redis://localhost:6379/0``). When no Redis answers, the example says so and
still works: chatkeep serves the conversation from its in-memory fallback (it then
lasts only as long as the process, and would be written to Redis once it answers).
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from chatkeep_langchain import history_factory

QUESTIONS = ["Hi, I'm Ada.", "What's a good name for a cat?", "What did I ask you first?"]


class RecallModel(GenericFakeChatModel):
    """An offline chat model that answers from the conversation it is given."""

    messages: Any = iter(())

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        said = [str(m.content) for m in messages if isinstance(m, HumanMessage)]
        earlier = said[:-1]
        if not earlier:
            text = "Nice to meet you! This is the start of our conversation."
        else:
            text = (
                f"I remember {len(earlier)} earlier message(s) from you; "
                f"the first was {earlier[0]!r}."
            )
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")
    session = sys.argv[1] if len(sys.argv) > 1 else "demo"

    # One factory: one connection pool for every turn and session. Short timeouts
    # so that a missing Redis costs a fraction of a second, not a hang.
    get_history = history_factory(
        key_prefix="chatkeep-example:",
        ttl=3600,
        connect_timeout=0.2,
        socket_timeout=0.3,
        window=20,
    )
    store = get_history.store
    assert store is not None

    info = store.info(session)  # the first call tells whether Redis answers
    earlier = info.message_count if info else 0
    if store.status().degraded:
        print(
            f"No Redis answers at {store.config.safe_url}: running on the in-memory "
            "fallback (the chat still works; its history lasts only for this run)."
        )
    else:
        print(
            f"Using Redis at {store.config.safe_url}: session {session!r} has "
            f"{earlier} message(s) from earlier runs."
        )

    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a helpful assistant."),
            MessagesPlaceholder("history"),
            ("human", "{input}"),
        ]
    )
    with warnings.catch_warnings():
        # Deprecated in langchain-core >= 1.3.3 in favour of LangGraph persistence;
        # it still works, and this keeps the example's output tidy.
        warnings.filterwarnings("ignore", message="RunnableWithMessageHistory is deprecated")
        chain = RunnableWithMessageHistory(
            prompt | RecallModel(),
            get_history,
            input_messages_key="input",
            history_messages_key="history",
        )

    for question in QUESTIONS:
        print(f"you: {question}")
        answer = chain.invoke({"input": question}, {"configurable": {"session_id": session}})
        print(f"bot: {answer.content}")

    info = store.info(session)
    total = info.message_count if info else 0
    print(f"Session {session!r} now holds {total} message(s) (showing at most 20 to the model).")
    if not store.status().degraded:
        print("Run me again with the same session id: I will remember this conversation.")
    get_history.close()


if __name__ == "__main__":
    main()
