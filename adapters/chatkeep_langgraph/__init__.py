"""chatkeep for LangGraph: a checkpointer and a long-term store on plain Redis, with a
TTL, that keep working when Redis does not.

```pycon
>>> from chatkeep_langgraph import RedisSaver
>>> saver = RedisSaver("memory://")
>>> saver.get_tuple({"configurable": {"thread_id": "t1"}}) is None
True
```

See :class:`RedisSaver` (``BaseCheckpointSaver``) and :class:`RedisStore`
(``BaseStore``, namespaced long-term memory).
"""

from __future__ import annotations

from .saver import RedisSaver
from .store import RedisStore

__all__ = ["RedisSaver", "RedisStore"]
