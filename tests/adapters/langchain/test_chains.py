"""RunnableWithMessageHistory over a prompt with a history placeholder: invoke,
ainvoke, stream, astream, batch and abatch, two sessions interleaved, on real Redis
and on memory://. History content and order are checked after every turn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from chatkeep_langchain import HistoryFactory, RedisChatMessageHistory, history_factory

from .helpers import RWMH_DEPRECATION, config, make_chain, reply, shape

pytestmark = RWMH_DEPRECATION


class Conversation:
    """A chain with the histories of ``factory``, what each session must hold, and the
    checks after a turn."""

    def __init__(self, factory: HistoryFactory) -> None:
        self.factory = factory
        self.chain = make_chain(factory)
        self.expected: dict[str, list[tuple[str, Any]]] = {}

    def invoke(self, sid: str, text: str) -> Any:
        """One turn by ``chain.invoke``, its answer checked and recorded."""
        answer = self.chain.invoke({"input": text}, config(sid))
        self.took_turn(sid, text, str(answer.content))
        return answer

    async def ainvoke(self, sid: str, text: str) -> Any:
        """One turn by ``chain.ainvoke``, its answer checked and recorded."""
        answer = await self.chain.ainvoke({"input": text}, config(sid))
        self.took_turn(sid, text, str(answer.content))
        return answer

    def next_reply(self, sid: str, text: str) -> str:
        return reply(text, len(self.expected.get(sid, [])))

    def took_turn(self, sid: str, text: str, answer: str) -> None:
        assert answer == self.next_reply(sid, text)
        self.expected.setdefault(sid, []).extend([("user", text), ("assistant", answer)])

    def check(self, *sids: str) -> None:
        for sid in sids:
            stored = self.factory(sid).messages
            assert shape(stored) == self.expected[sid]
            assert all(isinstance(m, HumanMessage) for m in stored[0::2])
            assert all(isinstance(m, AIMessage) for m in stored[1::2])

    async def acheck(self, *sids: str) -> None:
        for sid in sids:
            stored = await self.factory(sid).aget_messages()
            assert shape(stored) == self.expected[sid]


def test_sync_turns_interleaved(make_factory: Callable[..., HistoryFactory]) -> None:
    talk = Conversation(make_factory())
    chain, factory = talk.chain, talk.factory
    a, b = "alice", "bob"

    for round_ in range(2):
        for sid in (a, b):
            assert isinstance(talk.invoke(sid, f"{sid}-invoke-{round_}"), AIMessage)
            talk.check(*talk.expected)

        for sid in (a, b):
            text = f"{sid}-stream-{round_}"
            chunks = list(chain.stream({"input": text}, config(sid)))
            assert len(chunks) > 1  # really streamed
            talk.took_turn(sid, text, "".join(str(c.content) for c in chunks))
            talk.check(a, b)
            # what streaming stores is the merged chunk
            assert isinstance(factory(sid).messages[-1], AIMessageChunk)

        texts = [f"{a}-batch-{round_}", f"{b}-batch-{round_}"]
        answers = chain.batch([{"input": t} for t in texts], [config(a), config(b)])
        for sid, text, answer in zip((a, b), texts, answers, strict=True):
            talk.took_turn(sid, text, str(answer.content))
        talk.check(a, b)

    assert len(talk.expected[a]) == 12


async def test_async_turns_interleaved(make_factory: Callable[..., HistoryFactory]) -> None:
    talk = Conversation(make_factory())
    chain = talk.chain
    a, b = "carol", "dave"

    for round_ in range(2):
        for sid in (a, b):
            await talk.ainvoke(sid, f"{sid}-ainvoke-{round_}")
            await talk.acheck(sid)

        for sid in (a, b):
            text = f"{sid}-astream-{round_}"
            chunks = [c async for c in chain.astream({"input": text}, config(sid))]
            assert len(chunks) > 1
            talk.took_turn(sid, text, "".join(str(c.content) for c in chunks))
            await talk.acheck(a, b)

        texts = [f"{a}-abatch-{round_}", f"{b}-abatch-{round_}"]
        answers = await chain.abatch([{"input": t} for t in texts], [config(a), config(b)])
        for sid, text, answer in zip((a, b), texts, answers, strict=True):
            talk.took_turn(sid, text, str(answer.content))
        await talk.acheck(a, b)

    # the sync side reads the same sessions
    talk.check(a, b)


async def test_sync_and_async_turns_share_one_session(
    make_factory: Callable[..., HistoryFactory],
) -> None:
    talk = Conversation(make_factory())
    sid = "mixed"
    for i in range(3):
        talk.invoke(sid, f"s{i}")
        await talk.ainvoke(sid, f"a{i}")
        talk.check(sid)
        await talk.acheck(sid)


def test_window_limits_what_the_model_sees(make_factory: Callable[..., HistoryFactory]) -> None:
    full = make_factory()
    assert full.store is not None
    windowed = history_factory(full.store, window=2)
    chain = make_chain(windowed)
    for i in range(4):
        answer = chain.invoke({"input": f"m{i}"}, config("w"))
        assert answer.content == reply(f"m{i}", min(2 * i, 2))
    # the window limits reads, not what is kept
    assert len(full("w").messages) == 8
    assert [m.content for m in windowed("w").messages] == ["m3", reply("m3", 2)]


def test_history_without_history_key(make_factory: Callable[..., HistoryFactory]) -> None:
    """The model takes a message list; the history is prepended to it."""
    factory = make_factory()
    chain = make_chain(factory, history_key=False)
    for i in range(3):
        answer = chain.invoke([HumanMessage(f"q{i}")], config("plain"))
        assert answer.content == reply(f"q{i}", 2 * i)
    assert [m.content for m in factory("plain").messages][::2] == ["q0", "q1", "q2"]


def test_community_style_get_session_history(url: str, prefix: str) -> None:
    """The langchain_community idiom: a new history from the URL on every turn. The
    histories share one process-wide store (one pool, one fallback mirror)."""
    made: list[RedisChatMessageHistory] = []

    def get_session_history(session_id: str) -> RedisChatMessageHistory:
        history = RedisChatMessageHistory(session_id, url, f"{prefix}:")
        made.append(history)
        return history

    chain = make_chain(get_session_history)
    for i in range(3):
        answer = chain.invoke({"input": f"t{i}"}, config("community"))
        assert answer.content == reply(f"t{i}", 2 * i)
    assert len(made) == 3
    assert made[0].store is not None
    assert all(h.store is made[0].store for h in made)
