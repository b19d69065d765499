"""chatkeep for LangChain: chat message histories kept in Redis, with a TTL, that
keep working when Redis does not.

```pycon
>>> from chatkeep_langchain import RedisChatMessageHistory
>>> history = RedisChatMessageHistory("s1", "memory://")
>>> history.add_user_message("hi")
>>> [m.content for m in history.messages]
['hi']
```

See :class:`RedisChatMessageHistory` (a drop-in for ``langchain_community``'s) and
:func:`history_factory` (``get_session_history`` for ``RunnableWithMessageHistory``).
:data:`CONVERSION` reads a ``chatkeep`` store straight into LangChain messages
(``store.messages(session_id, into=CONVERSION)``).
"""

from __future__ import annotations

from ._stores import aclose_shared_stores, close_shared_stores
from .cache import RedisCache
from .convert import CONVERSION, from_chatkeep, message_from_record, role_of, to_chatkeep
from .history import HistoryFactory, RedisChatMessageHistory, history_factory, store_prefix
from .migrate import import_community_history
from .stores import RedisStore

__all__ = [
    "CONVERSION",
    "HistoryFactory",
    "RedisCache",
    "RedisChatMessageHistory",
    "RedisStore",
    "aclose_shared_stores",
    "close_shared_stores",
    "from_chatkeep",
    "history_factory",
    "import_community_history",
    "message_from_record",
    "role_of",
    "store_prefix",
    "to_chatkeep",
]
