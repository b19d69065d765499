"""The ``chatkeep`` command shows LlamaIndex ``Memory``'s archive as a part of its
conversation (not as an id with a NUL in it) and ``show`` reaches it."""

from __future__ import annotations

import json

import pytest

from chatkeep_llama_index import RedisDBChatStore
from tests.adapters.llama_index.helpers import assistant, user
from tests.cli.conftest import invoke_cli
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


async def test_memory_archives_are_listed_and_shown_as_parts(
    redis_server: RedisServer, prefix: str
) -> None:
    store = RedisDBChatStore(redis_url=redis_server.url, key_prefix=prefix, owner="carol")
    await store.add_messages(
        "li-memory-carol", [user("m0"), assistant("m1"), user("m2"), assistant("m3")]
    )
    await store.archive_oldest_messages("li-memory-carol", 2)
    base = ["--url", redis_server.url, "--prefix", prefix]

    table = invoke_cli([*base, "sessions"])
    assert table.code == 0, table.err
    assert "li-memory-carol [archived]" in table.out, table.out
    assert "\\x00" not in table.out and "\x00" not in table.out
    rows = json.loads(invoke_cli([*base, "sessions", "--json"]).out)
    archive = next(r for r in rows if r.get("part") == "archived")
    assert archive["part_of"] == "li-memory-carol" and archive["message_count"] == 2

    active = invoke_cli([*base, "show", "li-memory-carol"])
    assert active.code == 0, active.err
    assert "m2" in active.out and "m0" not in active.out
    assert "chatkeep show li-memory-carol --part archived" in active.out
    archived = invoke_cli([*base, "show", "li-memory-carol", "--part", "archived"])
    assert archived.code == 0, archived.err
    assert "m0" in archived.out and "m1" in archived.out and "m2" not in archived.out
    assert "[archived]" in archived.out
    data = json.loads(
        invoke_cli([*base, "show", "li-memory-carol", "--part", "archived", "--json"]).out
    )
    assert [m["content"] for m in data["messages"]] == ["m0", "m1"]
    missing = invoke_cli([*base, "show", "li-memory-carol", "--part", "nope"])
    assert missing.code == 4, missing

    # a purge by owner takes both parts
    purged = invoke_cli([*base, "purge", "--owner", "carol", "--yes"])
    assert purged.code == 0 and "deleted 2 sessions (4 messages)" in purged.out, purged.out
    assert await store.get_messages("li-memory-carol", status=None) == []
    await store.aclose()
