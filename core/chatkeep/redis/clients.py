"""Redis clients made from chatkeep URLs.

``redis://``, ``rediss://`` and ``unix://`` URLs make a ``Redis`` on a blocking pool;
``redis+cluster://h1:p1,h2:p2`` a ``RedisCluster`` (startup nodes);
``redis+sentinel://h1:p1,h2:p2/service`` a master client from ``Sentinel.master_for``
that follows failovers. Every client gets short timeouts and one quick retry (the
fallback is waiting); error messages show the URL without credentials.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis as redis_sync
import redis.asyncio as redis_async
from redis import exceptions as rex

from ..config import StoreConfig
from ..errors import ConfigurationError

__all__ = [
    "CLUSTER_SCHEME",
    "SCHEMES",
    "SENTINEL_SCHEME",
    "client_factory",
    "client_options",
    "is_async_client",
    "is_cluster_client",
    "sentinels_of",
]

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "redis+sentinel", "memory")
"""URL schemes chatkeep knows (``memory://`` is the in-process local backend)."""


def is_async_client(client: object) -> bool:
    return isinstance(client, (redis_async.Redis, redis_async.RedisCluster))


def is_cluster_client(client: object) -> bool:
    return isinstance(client, (redis_sync.RedisCluster, redis_async.RedisCluster))


def client_options(
    connect_timeout: float, socket_timeout: float, *, asyncio: bool
) -> dict[str, Any]:
    """Connection options chatkeep sets on clients it makes from a URL."""
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    retry_class = AsyncRetry if asyncio else Retry
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        # One quick retry heals a pooled connection the server closed. Timeouts are
        # not retried: a server that did not answer in time will not answer the
        # retry either, and the fallback is waiting.
        "retry": retry_class(
            ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(rex.ConnectionError,)
        ),
        "health_check_interval": 30,
    }


def sentinels_of(client: Any) -> list[Any]:
    """The sentinel clients behind a ``Sentinel.master_for`` client (closed with it)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", []))


CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
_DEFAULT_PORTS = {CLUSTER_SCHEME: 6379, SENTINEL_SCHEME: 26379}
# Query options of redis+sentinel:// URLs that go to the sentinels, not to Redis.
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True, slots=True)
class MultiHostUrl:
    """A ``redis+cluster://`` or ``redis+sentinel://`` URL, taken apart."""

    scheme: str
    userinfo: str  # "user:password@" or ""
    hosts: list[tuple[str, int]]
    path: str
    query: list[tuple[str, str]]

    def single(self, host: tuple[str, int], path: str, query: list[tuple[str, str]]) -> str:
        """A plain ``redis://`` URL to one host, for redis-py's own URL parser."""
        name, port = host
        name = f"[{name}]" if ":" in name else name
        netloc = f"{self.userinfo}{name}:{port}"
        return urlunsplit(("redis", netloc, path, urlencode(query), ""))


def parse_multi_host(url: str, safe_url: str) -> MultiHostUrl:
    """Split ``scheme://[user:pw@]h1[:p1][,h2[:p2]...][/path][?query]``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    hosts: list[tuple[str, int]] = []
    for raw in hostlist.split(","):
        item = raw.strip()
        if item.startswith("["):  # [ipv6]:port
            name, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            name, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
        except ValueError:
            port = -1
        if not name or not 0 < port < 65536:
            raise ConfigurationError(
                f"cannot use URL {safe_url}: hosts must be host[:port] separated by commas"
            )
        hosts.append((unquote(name), port))
    query = parse_qsl(parts.query, keep_blank_values=True)
    return MultiHostUrl(scheme, userinfo + at, hosts, parts.path, query)


def client_factory(config: StoreConfig, *, asyncio: bool) -> Callable[[], Any]:
    """Check ``config.url`` now (:class:`ConfigurationError` if unusable) and return a
    function that makes the client. Error messages show the URL without credentials."""
    url, safe_url = config.url, config.safe_url
    scheme = config.scheme
    if scheme not in SCHEMES or scheme == "memory":
        raise ConfigurationError(
            f"unknown URL scheme {scheme!r}; use one of: " + ", ".join(f"{s}://" for s in SCHEMES)
        )
    options = client_options(config.connect_timeout, config.socket_timeout, asyncio=asyncio)
    try:
        if scheme == CLUSTER_SCHEME:
            return _cluster_factory(parse_multi_host(url, safe_url), options, asyncio=asyncio)
        if scheme == SENTINEL_SCHEME:
            return _sentinel_factory(parse_multi_host(url, safe_url), options, asyncio=asyncio)
        # A burst of callers beyond the pool waits (briefly) for a free connection
        # instead of failing with "Too many connections" (redis-py's default pool).
        sizing = {"max_connections": config.max_connections, "timeout": config.pool_timeout}

        def make() -> Any:
            if asyncio:
                return redis_async.Redis.from_pool(
                    redis_async.BlockingConnectionPool.from_url(url, **sizing, **options)
                )
            return redis_sync.Redis.from_pool(
                redis_sync.BlockingConnectionPool.from_url(url, **sizing, **options)
            )

        made = [make()]  # made now, so a bad URL fails here; handed out first
    except (ValueError, TypeError, rex.RedisClusterException) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"cannot use URL {safe_url}: {exc}") from None
    return lambda: made.pop() if made else make()


def _untyped(module: str, name: str) -> Any:
    """A redis-py function without annotations (mypy --strict refuses to call those)."""
    return getattr(importlib.import_module(module), name)


def _cluster_factory(
    parsed: MultiHostUrl, options: dict[str, Any], *, asyncio: bool
) -> Callable[[], Any]:
    parse_url = _untyped("redis.connection", "parse_url")

    if parsed.path not in ("", "/", "/0") or any(k == "db" and v != "0" for k, v in parsed.query):
        raise ValueError("Redis Cluster has only database 0")
    first, *others = parsed.hosts
    url = parsed.single(first, "", [(k, v) for k, v in parsed.query if k != "db"])
    parse_url(url)  # raises ValueError on bad query options, now rather than later
    if asyncio:
        from redis.asyncio.cluster import ClusterNode as AsyncNode

        nodes: list[Any] = [AsyncNode(host, port) for host, port in others]
        return lambda: redis_async.RedisCluster.from_url(url, startup_nodes=nodes, **options)
    cluster_node = _untyped("redis.cluster", "ClusterNode")
    sync_nodes = [cluster_node(host, port) for host, port in others]
    # A RedisCluster contacts the cluster when made: made on first use (RedisBackend).
    return lambda: redis_sync.RedisCluster.from_url(url, startup_nodes=sync_nodes, **options)


def _sentinel_factory(
    parsed: MultiHostUrl, options: dict[str, Any], *, asyncio: bool
) -> Callable[[], Any]:
    parse_url = _untyped("redis.connection", "parse_url")

    service, _, db_path = parsed.path.strip("/").partition("/")
    if not service:
        raise ValueError("name the monitored service: redis+sentinel://host:port/service_name")
    query = [(k, v) for k, v in parsed.query if k not in _SENTINEL_OPTIONS]
    db = f"/{db_path}" if db_path else ""
    data_options = parse_url(parsed.single(parsed.hosts[0], db, query))
    for key in ("host", "port", "connection_class", "path"):
        data_options.pop(key, None)
    data_options = {**options, **data_options}
    # Sentinels get the same short timeouts and single quick retry (redis-py's default
    # retry would back off for seconds on each unreachable sentinel).
    sentinel_options: dict[str, Any] = {
        key: value for key, value in options.items() if key.startswith("socket_") or key == "retry"
    }
    for key, value in parsed.query:
        if key in _SENTINEL_OPTIONS:
            sentinel_options[key.removeprefix("sentinel_")] = unquote(value)
    if asyncio:
        async_sentinel = _untyped("redis.asyncio.sentinel", "Sentinel")
        return lambda: async_sentinel(parsed.hosts, sentinel_kwargs=sentinel_options).master_for(
            service, **data_options
        )
    sentinel = _untyped("redis.sentinel", "Sentinel")
    return lambda: sentinel(parsed.hosts, sentinel_kwargs=sentinel_options).master_for(
        service, **data_options
    )
