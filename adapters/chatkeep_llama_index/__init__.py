"""LlamaIndex adapters for chatkeep: conversation memory in Redis, with a TTL and an
in-memory fallback when Redis is unreachable.

* :class:`RedisChatStore`: a ``BaseChatStore`` for ``ChatMemoryBuffer`` and chat
  engines (a drop-in for ``llama_index.storage.chat_store.redis.RedisChatStore``).
* :class:`RedisDBChatStore`: an ``AsyncDBChatStore`` for ``llama_index.core.memory.Memory``
  (active and archived messages).
* :func:`to_chatkeep` / :func:`from_chatkeep`: ``ChatMessage`` <-> ``chatkeep.Message``,
  lossless for LlamaIndex and readable by every chatkeep adapter; :data:`CONVERSION`
  reads a ``chatkeep`` store straight into ``ChatMessage`` objects
  (``store.messages(key, into=CONVERSION)``).

```pycon
>>> from chatkeep_llama_index import RedisChatStore
>>> store = RedisChatStore(redis_url="memory://")
>>> from llama_index.core.llms import ChatMessage
>>> store.add_message("s1", ChatMessage(role="user", content="hi"))
>>> [m.content for m in store.get_messages("s1")]
['hi']
```
"""

from __future__ import annotations

from .chat_store import RedisChatStore
from .convert import (
    CONVERSION,
    NATIVE_KEY,
    chat_from_record,
    from_chatkeep,
    is_llama_index_native,
    to_chatkeep,
)
from .db_chat_store import RedisDBChatStore

__all__ = [
    "CONVERSION",
    "NATIVE_KEY",
    "RedisChatStore",
    "RedisDBChatStore",
    "chat_from_record",
    "from_chatkeep",
    "is_llama_index_native",
    "to_chatkeep",
]
