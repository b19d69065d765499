"""Offline models, chains and Redis round-trip counting for the LangChain adapter tests."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_core.runnables.history import RunnableWithMessageHistory

from chatkeep_langchain import role_of

# RunnableWithMessageHistory warns on construction since langchain-core 1.3.3 (it is
# slated for removal in 2.0). The adapter supports it; only that warning is ignored.
RWMH_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:RunnableWithMessageHistory is deprecated"
    ":langchain_core._api.deprecation.LangChainDeprecationWarning"
)


class EchoModel(GenericFakeChatModel):
    """Offline chat model whose reply shows what it was given: the last human text
    and how many messages of history came before it (system prompt excluded).
    Streaming splits the reply at whitespace (GenericFakeChatModel), so streamed
    turns store a merged ``AIMessageChunk``."""

    messages: Iterator[AIMessage | str] = iter(())

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        history = [m for m in messages if not isinstance(m, SystemMessage)]
        last = history[-1]
        assert isinstance(last, HumanMessage)
        text = f"echo {last.content} seen {len(history) - 1}"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def reply(text: str, seen: int) -> str:
    return f"echo {text} seen {seen}"


def make_chain(
    get_history: Callable[[str], Any], *, history_key: bool = True
) -> Runnable[Any, Any]:
    """A prompt with a history placeholder and the echo model, with message history.

    ``history_key=False``: the model takes a list of messages and the history is
    prepended to it (no ``history_messages_key``)."""
    model = EchoModel()
    if not history_key:
        return RunnableWithMessageHistory(model, get_history)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    return RunnableWithMessageHistory(
        prompt | model,
        get_history,
        input_messages_key="input",
        history_messages_key="history",
    )


def config(session_id: str) -> Any:
    return {"configurable": {"session_id": session_id}}


def shape(messages: Sequence[BaseMessage]) -> list[tuple[str, Any]]:
    """(neutral role, content) of each message."""
    return [(role_of(m), m.content) for m in messages]


# -- counting round trips -------------------------------------------------------------

_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


def command_names(packed: Any) -> list[str]:
    if isinstance(packed, (bytes, bytearray, memoryview)):
        data = bytes(packed)
    else:
        data = b"".join(bytes(part) for part in packed)
    return [name.decode().upper() for name in _COMMAND.findall(data)]


class RoundTrips:
    """Every write to a Redis socket of one client: one entry per round trip (a
    pipeline is one write), holding the names of the commands it carried."""

    def __init__(self) -> None:
        self.log: list[list[str]] = []

    def mark(self) -> int:
        return len(self.log)

    def since(self, mark: int) -> list[list[str]]:
        return self.log[mark:]

    def sync_client(self, url: str) -> redis.Redis:
        log = self.log

        class Counting(redis.connection.Connection):
            def send_packed_command(self, command: Any, check_health: bool = True) -> None:
                log.append(command_names(command))
                super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

        pool = redis.ConnectionPool.from_url(url, connection_class=Counting)
        return redis.Redis.from_pool(pool)

    def async_client(self, url: str) -> redis.asyncio.Redis:
        log = self.log

        class Counting(redis.asyncio.connection.Connection):
            async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
                log.append(command_names(command))
                await super().send_packed_command(command, check_health)

        pool = redis.asyncio.ConnectionPool.from_url(url, connection_class=Counting)
        return redis.asyncio.Redis.from_pool(pool)
