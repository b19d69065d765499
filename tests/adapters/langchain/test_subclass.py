"""RedisChatMessageHistory is designed to be subclassed: hooks, not copied methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from chatkeep import Message, SessionOwnershipError
from chatkeep_langchain import HistoryFactory, RedisChatMessageHistory

from .helpers import RWMH_DEPRECATION, config, make_chain, reply


class TenantHistory(RedisChatMessageHistory):
    """Sessions are named ``<user>/<conversation>`` and owned by their user; every
    record is tagged with the tenant; system prompts are not stored; tool results
    are kept in Redis but not shown to the model; a ``label`` argument of its own."""

    tenant = "acme"

    def __init__(self, session_id: str, *, label: str = "default", **kwargs: Any) -> None:
        self.label = label
        super().__init__(session_id, **kwargs)

    def session_key(self, session_id: str, owner: str | None) -> tuple[str, str | None]:
        user, sep, conversation = session_id.partition("/")
        if not sep or not conversation:
            raise ValueError("session ids look like <user>/<conversation>")
        return session_id, user

    def record_metadata(self, message: BaseMessage) -> dict[str, Any]:
        return {"tenant": self.tenant, "label": self.label, "lc_type": message.type}

    def to_record(self, message: BaseMessage) -> Message | None:
        if isinstance(message, SystemMessage):
            return None
        return super().to_record(message)

    def from_record(self, record: Message) -> BaseMessage | None:
        message = super().from_record(record)
        if message is not None and record.metadata.get("tenant") not in (None, self.tenant):
            return None  # written by another tenant's code: not ours to show
        return message

    def filter_messages(self, messages: list[BaseMessage]) -> list[BaseMessage]:
        return [m for m in messages if not isinstance(m, ToolMessage)]


def test_subclass_hooks(make_factory: Callable[..., HistoryFactory]) -> None:
    factory = make_factory(history_class=TenantHistory)
    history = factory("u42/chat7")
    assert isinstance(history, TenantHistory)
    assert history.owner == "u42" and history.label == "default"

    history.add_messages(
        [
            SystemMessage("never stored"),
            HumanMessage("q"),
            AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}]),
            ToolMessage("tool output", tool_call_id="c1"),
            AIMessage("a"),
        ]
    )
    assert [m.content for m in history.messages] == ["q", "", "a"]

    store = factory.store
    assert store is not None
    records = store.messages("u42/chat7")
    assert [r.role for r in records] == ["user", "assistant", "tool", "assistant"]
    assert records[0].metadata == {"tenant": "acme", "label": "default", "lc_type": "human"}
    info = store.info("u42/chat7")
    assert info is not None and info.owner == "u42"
    assert [s.id for s in store.sessions(owner="u42")] == ["u42/chat7"]

    # another user cannot read it through the same scheme
    with pytest.raises(SessionOwnershipError):
        RedisChatMessageHistory("u42/chat7", store=store, owner="u99").messages  # noqa: B018
    # records of another tenant are left out
    store.append("u42/chat7", Message(role="user", content="theirs", metadata={"tenant": "other"}))
    assert [m.content for m in factory("u42/chat7").messages] == ["q", "", "a"]
    with pytest.raises(ValueError, match="<user>/<conversation>"):
        factory("no-user")


@RWMH_DEPRECATION
def test_subclass_in_a_chain(make_factory: Callable[..., HistoryFactory]) -> None:
    factory = make_factory(history_class=TenantHistory, window=10)
    chain = make_chain(factory)
    for i in range(3):
        answer = chain.invoke({"input": f"m{i}"}, config("u1/c1"))
        assert answer.content == reply(f"m{i}", 2 * i)
    assert factory.store is not None
    assert factory.store.info("u1/c1").owner == "u1"  # type: ignore[union-attr]
    assert all(r.metadata["tenant"] == "acme" for r in factory.store.messages("u1/c1"))
