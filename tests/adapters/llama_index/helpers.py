"""Offline models and small builders for the LlamaIndex adapter tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.ASSISTANT, content=text)


def texts(messages: Sequence[ChatMessage]) -> list[str]:
    return [m.content or "" for m in messages]


def roles(messages: Sequence[ChatMessage]) -> list[str]:
    return [m.role.value for m in messages]


class EchoLLM(MockLLM):
    """``MockLLM`` whose chat replies name the last user message and how many
    messages it was given, and that remembers what each call saw."""

    _seen: list[list[ChatMessage]] = PrivateAttr(default_factory=list)

    @property
    def seen(self) -> list[list[ChatMessage]]:
        return self._seen

    def _reply(self, messages: Sequence[ChatMessage]) -> str:
        self._seen.append([m.model_copy(deep=True) for m in messages])
        last = next((m for m in reversed(messages) if m.role == MessageRole.USER), None)
        said = last.content if last is not None else ""
        return f"echo {said} [{len(messages)}]"

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._reply(messages)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        text = self._reply(messages)

        def gen() -> Generator[ChatResponse, None, None]:
            so_far = ""
            for word in text.split(" "):
                delta = word if not so_far else " " + word
                so_far += delta
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=so_far), delta=delta
                )

        return gen()

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages)

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        sync = self.stream_chat(messages)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            for item in sync:
                yield item

        return gen()


class FixedRetriever(BaseRetriever):
    """Always retrieves the same small node (for ``CondensePlusContextChatEngine``)."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text="Paris is the capital of France."), score=1.0)]
