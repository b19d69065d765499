"""import_community_history from langchain_community's RedisChatMessageHistory with a
key prefix of its own, on a throwaway redis-server (issue 17): the source history's own
key is read (not "message_store:<id>", which silently found nothing), and the result
says what was copied."""

from __future__ import annotations

import logging
import warnings

import pytest
import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from chatkeep import ConfigurationError, Message
from chatkeep_langchain import ImportResult, RedisChatMessageHistory, import_community_history
from tests.support.servers import RedisServer

with warnings.catch_warnings():
    # langchain-community announces its sunset with a DeprecationWarning on import
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.chat_message_histories import (
        RedisChatMessageHistory as CommunityHistory,
    )

pytestmark = pytest.mark.redis_server

OLD: list[BaseMessage] = [
    HumanMessage("before the switch"),
    AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}]),
    ToolMessage("42", tool_call_id="c1"),
    AIMessage("the answer is 42"),
]


def community(redis_server: RedisServer, prefix: str, sid: str = "s1") -> CommunityHistory:
    old = CommunityHistory(sid, url=redis_server.url, key_prefix=f"{prefix}-old/")
    old.add_messages(OLD)
    return old


def test_the_source_historys_own_key_prefix_is_used(redis_server: RedisServer, prefix: str) -> None:
    old = community(redis_server, prefix)
    history = RedisChatMessageHistory("s1", redis_server.url, prefix)

    result = import_community_history(old, history)

    assert result == ImportResult(
        key=f"{prefix}-old/s1", found=True, read=4, copied=4, skipped=0, deleted=False
    )
    assert str(result) == f"copied 4 messages from '{prefix}-old/s1'"
    assert history.messages == OLD
    # again, deleting the old key: stored once (idempotency key), the old key is gone
    again = import_community_history(old, history, delete=True)
    assert again.copied == 4 and again.deleted
    assert history.messages == OLD
    assert old.messages == []


def test_a_client_and_the_wrong_prefix_is_reported_not_silent(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    community(redis_server, prefix)
    history = RedisChatMessageHistory("s1", redis_server.url, prefix)
    client = redis.Redis.from_url(redis_server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="chatkeep.langchain"):
            missed = import_community_history(client, history)  # "message_store:s1"
        assert not missed.found and missed.copied == 0 and missed.key == "message_store:s1"
        assert str(missed) == "no conversation at 'message_store:s1'"
        assert "no langchain_community conversation at key 'message_store:s1'" in caplog.text
        found = import_community_history(client, history, key_prefix=f"{prefix}-old/")
        assert found.found and found.copied == 4
    finally:
        client.close()
    assert history.messages == OLD


def test_what_to_record_leaves_out_is_counted(redis_server: RedisServer, prefix: str) -> None:
    class NoTools(RedisChatMessageHistory):
        def to_record(self, message: BaseMessage) -> Message | None:
            return None if isinstance(message, ToolMessage) else super().to_record(message)

    old = community(redis_server, prefix, "s2")
    result = import_community_history(old, NoTools("s2", redis_server.url, prefix))
    assert (result.read, result.copied, result.skipped) == (4, 3, 1)
    assert str(result).endswith("(1 left out by to_record)")


def test_conflicting_arguments_are_refused(redis_server: RedisServer, prefix: str) -> None:
    old = community(redis_server, prefix, "s3")
    history = RedisChatMessageHistory("s3", redis_server.url, prefix)
    with pytest.raises(ConfigurationError, match="differs from the source history's"):
        import_community_history(old, history, key_prefix="message_store:")
    with pytest.raises(ConfigurationError, match="source must be"):
        import_community_history(object(), history)
