"""A LangChain LLM cache (``BaseCache``) on chatkeep's result cache: TTL-bound,
shared by every process, with the in-memory fallback while Redis is away.

>>> from langchain_core.globals import set_llm_cache
>>> from chatkeep_langchain import RedisCache
>>> set_llm_cache(RedisCache(url="redis://localhost:6379/0", ttl=3600))  # doctest: +SKIP

Entries are keyed by the sha256 of (prompt, llm_string); generations are stored as
JSON (chat messages with ``message_to_dict``), never pickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation
from typing_extensions import Unpack

from chatkeep import AsyncResultCache, BackendOptions, ConfigurationError, ResultCache

__all__ = ["CacheOptions", "RedisCache"]

_MISS = object()


def _dump(generations: Sequence[Generation]) -> list[dict[str, Any]]:
    out = []
    for gen in generations:
        if isinstance(gen, ChatGeneration):
            out.append(
                {
                    "type": "chat",
                    "message": message_to_dict(gen.message),
                    "info": gen.generation_info,
                }
            )
        else:
            out.append({"type": "text", "text": gen.text, "info": gen.generation_info})
    return out


def _load(data: Any) -> list[Generation] | None:
    if not isinstance(data, list):
        return None
    generations: list[Generation] = []
    for item in data:
        if item.get("type") == "chat":
            message = messages_from_dict([item["message"]])[0]
            generations.append(ChatGeneration(message=message, generation_info=item.get("info")))
        else:
            generations.append(Generation(text=item["text"], generation_info=item.get("info")))
    return generations


class CacheOptions(BackendOptions, total=False):
    """What :class:`RedisCache` gives the :class:`chatkeep.ResultCache` it builds: the
    store options (``key_prefix``; ``prefix`` is its older name), ``client``,
    ``namespace`` (default ``llm``), ``ttl`` of the entries, ``lock_timeout``."""

    key_prefix: str
    prefix: str
    client: Any
    namespace: str
    ttl: float | None
    lock_timeout: float


class RedisCache(BaseCache):
    """``lookup``/``update``/``clear`` and their async twins on a
    :class:`chatkeep.ResultCache` (namespace ``llm``, TTL one day unless given)."""

    def __init__(
        self,
        cache: ResultCache | None = None,
        *,
        async_cache: AsyncResultCache | None = None,
        url: str | None = None,
        **options: Unpack[CacheOptions],
    ) -> None:
        if cache is None and async_cache is None:
            options.setdefault("namespace", "llm")
            cache = ResultCache(url=url, **options) if url else ResultCache(**options)
        elif url is not None or options:
            raise ConfigurationError("pass either caches, or a URL and cache options")
        self.cache = cache
        self.async_cache = async_cache

    @staticmethod
    def _inputs(prompt: str, llm_string: str) -> list[str]:
        return [prompt, llm_string]

    def _sync(self) -> ResultCache:
        if self.cache is None:
            raise ConfigurationError("this RedisCache has only an async cache: use the a* methods")
        return self.cache

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return _load(self._sync().get(self._inputs(prompt, llm_string)))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self._sync().set(self._inputs(prompt, llm_string), _dump(return_val))

    def clear(self, **kwargs: Any) -> None:
        self._sync().clear()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if self.async_cache is None:
            return self.lookup(prompt, llm_string)
        return _load(await self.async_cache.get(self._inputs(prompt, llm_string)))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self.async_cache is None:
            return self.update(prompt, llm_string, return_val)
        await self.async_cache.set(self._inputs(prompt, llm_string), _dump(return_val))
        return None

    async def aclear(self, **kwargs: Any) -> None:
        if self.async_cache is None:
            return self.clear()
        await self.async_cache.clear()
        return None
