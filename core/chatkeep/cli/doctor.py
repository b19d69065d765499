"""``chatkeep doctor``: is this Redis fit to keep conversations? (no click, no rich)

Checks connectivity, server version and mode, round-trip latency, the permissions of
the connected (ACL) user for every command chatkeep sends, the eviction policy and
persistence. Permissions are checked with ``ACL DRYRUN`` when the user may run it;
otherwise by running each command on throwaway keys under the prefix (they expire
within a minute even if ``DEL`` is refused), which is the only way a least-privilege
user can learn what it may do.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from redis import exceptions as rex

from ..errors import ChatkeepError
from .admin import Admin

__all__ = ["CLI_COMMANDS", "SCRIPT_COMMANDS", "STORE_COMMANDS", "Check", "run_checks"]

Status = Literal["ok", "warn", "fail"]


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    advice: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# What chatkeep sends. Inside its Lua scripts:
SCRIPT_COMMANDS = (
    "HMGET",
    "HSET",
    "HDEL",
    "RPUSH",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "LSET",
    "LREM",
    "LINSERT",
    "LTRIM",
    "LPOP",
    "RPOP",
    "DEL",
    "PEXPIREAT",
    "PERSIST",
)
# From the store, outside scripts:
STORE_COMMANDS = (
    "PING",
    "EVALSHA",
    "EVAL",
    "ZADD",
    "ZREM",
    "ZREMRANGEBYSCORE",
    "ZREVRANGEBYSCORE",
    "HMGET",
    "LLEN",
    "PTTL",
)
# Only the chatkeep command needs these (stats, export, purge); the app does not.
CLI_COMMANDS = ("ZSCAN", "ZCARD", "LRANGE", "DEL", "MEMORY|USAGE")

_PROBE_SCRIPT = """
local failed = {}
local function try(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    table.insert(failed, (select(1, ...)) .. ' ' .. reply.err)
  end
end
try('RPUSH', KEYS[1], 'a', 'b')
try('PEXPIREAT', KEYS[1], ARGV[1])
try('HSET', KEYS[2], 'c', '1')
try('PEXPIREAT', KEYS[2], ARGV[1])
try('HMGET', KEYS[2], 'c')
try('HDEL', KEYS[2], 'x')
try('LRANGE', KEYS[1], 0, -1)
try('LLEN', KEYS[1])
try('LINDEX', KEYS[1], 0)
try('LSET', KEYS[1], 0, 'a')
try('LINSERT', KEYS[1], 'BEFORE', 'a', 'c')
try('LREM', KEYS[1], 1, 'c')
try('LTRIM', KEYS[1], 0, -1)
try('LPOP', KEYS[1])
try('RPOP', KEYS[1])
try('PERSIST', KEYS[2])
try('PEXPIREAT', KEYS[2], ARGV[1])
try('DEL', KEYS[1], KEYS[2])
return failed
"""


def _denied(text: str) -> bool:
    """Whether a Redis error means the ACL user may not run the command."""
    lowered = text.lower()
    return "noperm" in lowered or "no permissions" in lowered or "can't run this command" in lowered


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _info(admin: Admin, section: str) -> dict[str, Any]:
    with admin.guard():
        info: dict[str, Any] = admin.client.info(section)
    # RedisCluster answers {node: {...}} when asked every node: take one node.
    if info and all(isinstance(v, dict) for v in info.values()):
        return next(iter(info.values()))
    return info


def _config_get(admin: Admin, name: str) -> str | None:
    try:
        with admin.guard():
            reply = admin.client.config_get(name)
    except ChatkeepError:
        return None  # CONFIG is often not permitted (managed services, ACL users)
    if isinstance(reply, dict):
        for key, value in reply.items():
            if _text(key) == name:
                return _text(value)
    return None


def run_checks(admin: Admin, *, pings: int = 20) -> list[Check]:
    """Every check, in order; stops after connectivity if Redis cannot be reached."""
    checks: list[Check] = []
    try:
        started = time.perf_counter()
        with admin.guard():
            admin.client.ping()
        first = time.perf_counter() - started
    except ChatkeepError as exc:
        checks.append(Check("connectivity", "fail", str(exc)))
        return checks
    checks.append(
        Check("connectivity", "ok", f"{admin.config.safe_url} answered in {first * 1000:.1f} ms")
    )
    checks.append(_server(admin))
    checks.append(_latency(admin, pings))
    checks.append(_permissions(admin))
    checks.append(_eviction(admin))
    checks.append(_persistence(admin))
    return checks


def _server(admin: Admin) -> Check:
    try:
        info = _info(admin, "server")
    except ChatkeepError as exc:
        return Check("server", "warn", f"INFO not permitted or failed ({exc})")
    version = str(info.get("redis_version", "?"))
    mode = str(info.get("redis_mode", "standalone"))
    summary = f"Redis {version}, {mode}"
    if mode == "sentinel":
        return Check(
            "server",
            "fail",
            summary,
            "this is a Sentinel, not a data node: use a redis+sentinel:// URL naming it",
        )
    try:
        major = int(version.split(".", maxsplit=1)[0])
    except ValueError:
        major = 0
    if major and major < 6:
        return Check("server", "warn", summary, "chatkeep is tested on Redis 7; upgrade")
    return Check("server", "ok", summary)


def _latency(admin: Admin, pings: int) -> Check:
    samples = []
    with admin.guard():
        for _ in range(max(pings, 1)):
            started = time.perf_counter()
            admin.client.ping()
            samples.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(samples), max(samples)
    summary = f"PING round trip median {median:.2f} ms, max {worst:.2f} ms ({len(samples)} pings)"
    timeout_ms = admin.store.config.socket_timeout * 1000
    if median > 10:
        return Check(
            "latency",
            "warn",
            summary,
            "every append is one round trip: put the app near Redis (same zone/host)",
        )
    if worst > timeout_ms / 2:
        return Check("latency", "warn", summary, "round trips come close to socket_timeout")
    return Check("latency", "ok", summary)


def _permissions(admin: Admin) -> Check:
    missing: list[str] | None = None
    method = "ACL DRYRUN"
    try:
        missing = _dryrun(admin)
    except ChatkeepError:
        missing = None
    if missing is None:
        method = "trying each command on temporary keys"
        try:
            missing = _probe(admin)
        except ChatkeepError as exc:
            return Check("permissions", "fail", f"could not check permissions ({exc})")
    needed = {c.split()[0] for c in missing if c.split()[0] in (*SCRIPT_COMMANDS, *STORE_COMMANDS)}
    cli_only = [c for c in missing if c.split()[0] not in needed]
    base = _acl_rules(admin.config.prefix)
    extra = [f"+{c.lower()}" for c in CLI_COMMANDS if f"+{c.lower()}" not in base]
    rules = "ACL SETUSER <user> " + " ".join(base + extra)
    if needed:
        return Check(
            "permissions",
            "fail",
            f"the user may not run: {', '.join(sorted(needed))} (checked by {method})",
            f"grant what chatkeep needs, e.g. {rules}",
        )
    if cli_only:
        return Check(
            "permissions",
            "warn",
            "the app's commands are allowed; the chatkeep command may not run: "
            + ", ".join(sorted(cli_only)),
            "stats, export and purge need them; the application does not",
        )
    return Check(
        "permissions", "ok", f"every command chatkeep sends is allowed (checked by {method})"
    )


def _acl_rules(prefix: str) -> list[str]:
    try:
        from ..backends.redis import acl_rules

        return list(acl_rules(prefix))
    except ImportError:  # pragma: no cover - older layout
        return [f"~{prefix}:*", "-@all", *(f"+{c.lower()}" for c in STORE_COMMANDS)]


def _probe_keys(admin: Admin) -> tuple[str, str, str]:
    sid = f"__chatkeep_doctor__{os.urandom(6).hex()}"
    messages, meta = admin.keys.session(sid)
    return messages, meta, f"{admin.config.prefix}:{{{sid}}}:z"


def _dryrun(admin: Admin) -> list[str] | None:
    """Commands ACL DRYRUN refuses; None when DRYRUN itself is not available."""
    client = admin.client
    try:
        user = _text(client.execute_command("ACL", "WHOAMI"))
    except (rex.ResponseError, rex.NoPermissionError):
        return None
    except rex.RedisError as exc:
        with admin.guard():
            raise exc
    m, h, _ = _probe_keys(admin)
    idx = admin.keys.index
    sha = "0" * 40
    commands = [
        ["PING"],
        ["EVALSHA", sha, "2", m, h],
        ["EVAL", "return 1", "2", m, h],
        ["ZADD", idx, "1", "x"],
        ["ZREM", idx, "x"],
        ["ZREMRANGEBYSCORE", idx, "-inf", "(0"],
        ["ZREVRANGEBYSCORE", idx, "+inf", "0"],
        ["HMGET", h, "c"],
        ["LLEN", m],
        ["PTTL", h],
        ["HSET", h, "c", "1"],
        ["HDEL", h, "e"],
        ["RPUSH", m, "x"],
        ["LRANGE", m, "0", "-1"],
        ["LINDEX", m, "0"],
        ["LSET", m, "0", "x"],
        ["LREM", m, "1", "x"],
        ["LINSERT", m, "BEFORE", "x", "y"],
        ["LTRIM", m, "0", "-1"],
        ["LPOP", m],
        ["RPOP", m],
        ["DEL", m, h],
        ["PEXPIREAT", m, "1"],
        ["PERSIST", m],
        ["ZSCAN", idx, "0"],
        ["ZCARD", idx],
        ["MEMORY", "USAGE", m],
    ]
    missing = []
    for command in commands:
        try:
            reply = _text(client.execute_command("ACL", "DRYRUN", user, *command))
        except rex.ResponseError as exc:  # NOPERM for ACL itself, or an old server
            if command == commands[0]:
                return None
            reply = str(exc)
        except rex.RedisError as exc:
            with admin.guard():
                raise exc
        if reply != "OK":
            missing.append(" ".join(command[:2]) if command[0] == "MEMORY" else command[0])
    return ["MEMORY|USAGE" if c == "MEMORY USAGE" else c for c in missing]


def _probe(admin: Admin) -> list[str]:
    """Commands the server refuses when tried on throwaway keys under the prefix."""
    client = admin.client
    m, h, z = _probe_keys(admin)
    expire_at = str(int(time.time() * 1000) + 60_000)
    missing: list[str] = []

    def attempt(name: str, *args: Any) -> Any:
        try:
            with admin.guard():
                return client.execute_command(*args)
        except ChatkeepError as exc:
            if _denied(str(exc)):
                missing.append(name)
                return None
            raise

    attempt("PING", "PING")
    sha = attempt("SCRIPT", "SCRIPT", "LOAD", _PROBE_SCRIPT)
    failed = None
    if sha is not None:
        failed = attempt("EVALSHA", "EVALSHA", _text(sha), 2, m, h, expire_at)
    evaled = attempt("EVAL", "EVAL", _PROBE_SCRIPT, 2, m, h, expire_at)
    if failed is None:
        failed = evaled
    if "SCRIPT" in missing:
        missing.remove("SCRIPT")  # not needed: chatkeep falls back to EVAL on NOSCRIPT
    for entry in failed or []:
        name, _, reason = _text(entry).partition(" ")
        if _denied(reason):
            missing.append(name)
    if failed is None and "EVALSHA" in missing and "EVAL" in missing:
        missing.extend(SCRIPT_COMMANDS)  # cannot tell; the scripts cannot run anyway
    attempt("ZADD", "ZADD", z, 1, "x")
    attempt("PEXPIREAT", "PEXPIREAT", z, expire_at)
    attempt("ZREVRANGEBYSCORE", "ZREVRANGEBYSCORE", z, "+inf", 0)
    attempt("ZREMRANGEBYSCORE", "ZREMRANGEBYSCORE", z, "-inf", "(0")
    attempt("ZSCAN", "ZSCAN", z, 0)
    attempt("ZCARD", "ZCARD", z)
    attempt("ZREM", "ZREM", z, "x")
    attempt("HMGET", "HMGET", h, "c")
    attempt("LLEN", "LLEN", m)
    attempt("PTTL", "PTTL", h)
    attempt("MEMORY|USAGE", "MEMORY", "USAGE", m)
    attempt("DEL", "DEL", m, h, z)
    return list(dict.fromkeys(missing))


def _eviction(admin: Admin) -> Check:
    policy = _config_get(admin, "maxmemory-policy")
    maxmemory = _config_get(admin, "maxmemory")
    if policy is None:
        try:
            memory = _info(admin, "memory")
            policy = str(memory.get("maxmemory_policy")) if "maxmemory_policy" in memory else None
            maxmemory = str(memory.get("maxmemory", "")) or maxmemory
        except ChatkeepError:
            policy = None
    if policy is None:
        return Check(
            "eviction", "warn", "maxmemory-policy unknown (CONFIG GET and INFO not permitted)"
        )
    limit = f"maxmemory {maxmemory}" if maxmemory and maxmemory != "0" else "no maxmemory"
    if policy == "noeviction":
        return Check(
            "eviction",
            "ok",
            f"maxmemory-policy noeviction ({limit}): conversations are never evicted",
            "when memory is full, writes fail with OOM (raised as BackendError)",
        )
    if maxmemory == "0":
        return Check(
            "eviction",
            "ok",
            f"maxmemory-policy {policy} with no maxmemory: nothing is evicted",
            "if you set maxmemory, prefer noeviction",
        )
    evicts = "any key" if policy.startswith("allkeys") else "keys with a TTL (all of chatkeep's)"
    return Check(
        "eviction",
        "warn",
        f"maxmemory-policy {policy} ({limit}) can evict {evicts}",
        "a conversation (or half of one: its list or its metadata) can vanish under memory "
        "pressure; use maxmemory-policy noeviction, or a Redis of its own for chatkeep",
    )


def _persistence(admin: Admin) -> Check:
    try:
        info = _info(admin, "persistence")
    except ChatkeepError as exc:
        return Check("persistence", "warn", f"INFO persistence not permitted ({exc})")
    aof = str(info.get("aof_enabled", "0")) == "1"
    save = _config_get(admin, "save")
    fsync = _config_get(admin, "appendfsync")
    rdb_status = str(info.get("rdb_last_bgsave_status", "ok"))
    aof_status = str(info.get("aof_last_write_status", "ok"))
    if aof_status != "ok" or (rdb_status != "ok" and not aof):
        return Check(
            "persistence",
            "fail",
            f"last write to disk failed (aof {aof_status}, rdb {rdb_status})",
            "check the Redis log and disk space",
        )
    if aof:
        summary = f"AOF on (appendfsync {fsync or 'unknown'})"
        if save:
            summary += f", RDB snapshots ({save})"
        if fsync == "no":
            return Check(
                "persistence",
                "warn",
                summary,
                "appendfsync no leaves flushing to the OS (up to ~30 s lost on a crash); "
                "everysec loses at most one second",
            )
        return Check("persistence", "ok", summary)
    if save:
        return Check(
            "persistence",
            "warn",
            f"RDB snapshots only (save {save})",
            "a crash loses the conversations written since the last snapshot; enable "
            "appendonly yes with appendfsync everysec",
        )
    if save is None:
        return Check(
            "persistence",
            "warn",
            "AOF off; RDB schedule unknown (CONFIG GET not permitted)",
            "enable appendonly yes with appendfsync everysec so a restart keeps conversations",
        )
    return Check(
        "persistence",
        "warn",
        "no persistence (AOF off, no RDB snapshots)",
        "a restart of Redis loses every conversation; enable appendonly yes with "
        "appendfsync everysec",
    )
