"""history_factory as RunnableWithMessageHistory's get_session_history (issue 17): every
store option (the store's hooks too), and history_factory_config fields: a user id as
the owner, a conversation id as the session, with a real RunnableWithMessageHistory and
langchain-core's fake chat model."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import ConfigurableFieldSpec, Runnable
from langchain_core.runnables.history import RunnableWithMessageHistory

from chatkeep import (
    ConfigurationError,
    ConversationStore,
    SessionOwnershipError,
    StoreStatus,
)
from chatkeep_langchain import HistoryFactory, RedisChatMessageHistory, history_factory

from .helpers import RWMH_DEPRECATION


def chain_of(factory: HistoryFactory, specs: list[ConfigurableFieldSpec]) -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{input}")]
    )
    model = FakeListChatModel(responses=["one", "two", "three", "four"])
    return RunnableWithMessageHistory(
        prompt | model,
        factory,
        input_messages_key="input",
        history_messages_key="history",
        history_factory_config=specs,
    )


def user_and_conversation(user: str, conversation: str) -> Any:
    return {"configurable": {"user_id": user, "conversation_id": conversation}}


@RWMH_DEPRECATION
@pytest.mark.parametrize("specs_from", ["factory", "user"])
async def test_user_id_is_the_owner_and_conversation_id_the_session(
    make_factory: Callable[..., HistoryFactory], specs_from: str
) -> None:
    factory = make_factory(session_field="conversation_id", owner_field="user_id")
    specs = factory.history_factory_config
    if specs_from == "user":  # the specs as LangChain's docs write them
        specs = [
            ConfigurableFieldSpec(id="user_id", annotation=str, default="", is_shared=True),
            ConfigurableFieldSpec(id="conversation_id", annotation=str, default="", is_shared=True),
        ]
    chain = chain_of(factory, specs)
    chain.invoke({"input": "hi"}, user_and_conversation("u1", "c1"))
    await chain.ainvoke({"input": "again"}, user_and_conversation("u1", "c1"))
    chain.invoke({"input": "other"}, user_and_conversation("u1", "c2"))

    store = factory.store
    assert store is not None
    assert [m.text for m in store.messages("c1", owner="u1")] == ["hi", "one", "again", "two"]
    info = store.info("c1")
    assert info is not None and info.owner == "u1"
    assert sorted(s.id for s in store.sessions(owner="u1")) == ["c1", "c2"]
    # another user naming the same conversation is refused, not served u1's history
    with pytest.raises(SessionOwnershipError):
        chain.invoke({"input": "peek"}, user_and_conversation("u2", "c1"))


@RWMH_DEPRECATION
def test_the_default_single_field_is_still_session_id(
    make_factory: Callable[..., HistoryFactory],
) -> None:
    factory = make_factory()
    assert list(inspect.signature(factory).parameters) == ["session_id"]
    chain = chain_of(factory, factory.history_factory_config)
    chain.invoke({"input": "hi"}, {"configurable": {"session_id": "s1"}})
    assert factory("s1").messages[0] == HumanMessage("hi")


def test_factory_calls_by_position_or_by_field(make_factory: Callable[..., HistoryFactory]) -> None:
    factory = make_factory(session_field="conversation_id", owner_field="user_id")
    assert list(inspect.signature(factory).parameters) == ["conversation_id", "user_id"]
    by_field = factory(user_id="u1", conversation_id="c1")
    by_position = factory("c1", "u1")
    for history in (by_field, by_position):
        assert (history.store_session_id, history.owner) == ("c1", "u1")
    with pytest.raises(ConfigurationError, match="no field 'user_idd'; did you mean 'user_id'"):
        factory(conversation_id="c1", user_idd="u1")
    with pytest.raises(ConfigurationError, match="needs 'user_id'"):
        factory(conversation_id="c1")
    with pytest.raises(ConfigurationError, match="takes 2 fields"):
        factory("c1", "u1", "x")


def test_bad_field_settings_are_refused(make_factory: Callable[..., HistoryFactory]) -> None:
    with pytest.raises(ConfigurationError, match="must differ"):
        make_factory(session_field="id", owner_field="id")
    with pytest.raises(ConfigurationError, match="or owner_field, not both"):
        make_factory(owner="u1", owner_field="user_id")
    with pytest.raises(ConfigurationError, match="session_field"):
        make_factory(session_field="not a name")


def test_the_factory_takes_the_stores_own_options(
    make_factory: Callable[..., HistoryFactory],
) -> None:
    """on_state_change, on_conflict and token_counter were refused ("takes no option")."""
    factory = make_factory(
        token_counter=lambda message: 10,
        on_state_change=lambda event, status: None,
        on_conflict=lambda error: None,
        max_tokens=25,
    )
    history = factory("s1")
    history.add_messages([HumanMessage("a"), HumanMessage("b"), HumanMessage("c")])
    # 10 tokens each by the factory's counter: the newest two fit in 25
    assert [m.content for m in factory("s1").messages] == ["b", "c"]


def test_the_factory_passes_on_state_change_to_its_store(prefix: str) -> None:
    events: list[tuple[str, bool]] = []

    def seen(event: str, status: StoreStatus) -> None:
        events.append((event, status.degraded))

    factory = history_factory(
        url="redis://127.0.0.1:1/0",  # nothing listens there
        key_prefix=prefix,
        on_state_change=seen,
        connect_timeout=0.1,
        probe_interval=60,
    )
    assert factory("s1").messages == []  # served by the fallback
    assert events == [("degraded", True)]
    factory.close()


def test_a_history_takes_the_stores_own_options(url: str, prefix: str) -> None:
    history = RedisChatMessageHistory(
        "s1", url, key_prefix=prefix, token_counter=lambda message: 10, max_tokens=15
    )
    history.add_messages([HumanMessage("a"), HumanMessage("b")])
    assert [m.content for m in history.messages] == ["b"]


def test_store_hooks_with_a_given_store_are_refused() -> None:
    store = ConversationStore.from_url("memory://")
    with pytest.raises(ConfigurationError, match="a given store keeps its own configuration"):
        history_factory(store, on_state_change=lambda event, status: None)
    with pytest.raises(ConfigurationError, match="did you mean 'window'"):
        history_factory(store, windw=3)
