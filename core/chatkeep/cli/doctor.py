"""``chatkeep doctor``: is this Redis fit to keep conversations? (no click, no rich)

Checks connectivity, server version and mode, round-trip latency, the permissions of
the connected (ACL) user for every command chatkeep sends, the eviction policy and
persistence.

The commands come from :data:`chatkeep.redis.FEATURES`: every feature (conversations,
long-term memory, the cache, locks, live updates, the adapters' through the
``chatkeep.features`` entry points, and this command's own, :data:`~.admin.CLI`)
declares what it sends, in its scripts and outside them, so what the doctor checks is
what :func:`chatkeep.redis.acl_rules` grants. Permissions are checked with
``ACL DRYRUN`` when the user may run it; otherwise by running each command on
throwaway keys under the prefix (inside a script for the scripts' commands; they
expire within a minute even if ``DEL`` is refused), which is the only way a
least-privilege user can learn what it may do. A refusal is only ever a permission
error: Redis checks the ACL before it runs a command, so any other error (a wrong
type, a missing script) means the command is allowed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from chatkeep import ChatkeepError
from chatkeep.redis import Command, acl_rules, check, load_features, reply_str

from .admin import CLI, Admin

__all__ = ["Check", "Needed", "ProbeKeys", "example", "needed", "run_checks"]

Status = Literal["ok", "warn", "fail"]


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    advice: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- what chatkeep sends ------------------------------------------------------------------


@dataclass(frozen=True)
class Needed:
    """The commands chatkeep sends, from the features' declarations."""

    app: frozenset[str]
    """Every command of every feature but the ``chatkeep`` command's."""
    scripted: frozenset[str]
    """Those run inside the features' Lua scripts."""
    cli: frozenset[str]
    """Those only the ``chatkeep`` command sends (stats, export, purge...)."""

    @property
    def every(self) -> frozenset[str]:
        return self.app | self.cli


def needed() -> Needed:
    """What chatkeep sends, from :data:`chatkeep.redis.FEATURES` (the adapters'
    features included)."""
    app: set[str] = set()
    scripted: set[str] = set()
    for feature in load_features().values():
        if feature is CLI:
            continue
        app |= feature.commands
        for script in feature.scripts.values():
            scripted |= script.commands
    return Needed(frozenset(app), frozenset(scripted), frozenset(CLI.commands - app))


@dataclass(frozen=True)
class ProbeKeys:
    """Throwaway keys under the prefix, all of one session (one hash tag: one Cluster
    slot, so one script may use them all), and its channel."""

    list: str
    hash: str
    string: str
    channel: str

    @classmethod
    def of(cls, admin: Admin) -> ProbeKeys:
        sid = f"__chatkeep_doctor__{os.urandom(6).hex()}"
        messages, meta = admin.keys.session(sid)
        return cls(messages, meta, admin.keys.lock(sid), admin.keys.channel(sid))

    @property
    def keys(self) -> tuple[str, str, str]:
        return self.list, self.hash, self.string


_SHA = "0" * 40
# Never run by the probe (only ACL DRYRUN checks them): they belong to a subscribed
# connection, or would change the connection's mode.
_NOT_RUN = frozenset(
    {
        "SUBSCRIBE", "SSUBSCRIBE", "PSUBSCRIBE",
        "UNSUBSCRIBE", "SUNSUBSCRIBE", "PUNSUBSCRIBE",
        "MONITOR", "RESET", "QUIT",
    }
)  # fmt: skip


def example(command: str, k: ProbeKeys) -> Command | None:
    """A valid invocation (right arity) of ``command`` on the probe keys, or None when
    the doctor knows none (the command is then reported as not checked). Only the
    permission to run it matters: the key types need not fit."""
    m, h, s, ch = k.list, k.hash, k.string, k.channel
    examples: dict[str, Command] = {
        "PING": ("PING",),
        "INFO": ("INFO", "server"),
        "EVAL": ("EVAL", "return 1", 2, m, h),
        "EVALSHA": ("EVALSHA", _SHA, 2, m, h),
        "EVAL_RO": ("EVAL_RO", "return 1", 2, m, h),
        "EVALSHA_RO": ("EVALSHA_RO", _SHA, 2, m, h),
        "EXISTS": ("EXISTS", m),
        "DEL": ("DEL", m, h, s),
        "UNLINK": ("UNLINK", m, h, s),
        "TYPE": ("TYPE", m),
        "PEXPIREAT": ("PEXPIREAT", m, 1),
        "PEXPIRE": ("PEXPIRE", m, 60_000),
        "EXPIRE": ("EXPIRE", m, 60),
        "EXPIREAT": ("EXPIREAT", m, 1),
        "PERSIST": ("PERSIST", m),
        "PTTL": ("PTTL", h),
        "TTL": ("TTL", h),
        "GET": ("GET", s),
        "SET": ("SET", s, "x"),
        "GETDEL": ("GETDEL", s),
        "MGET": ("MGET", s),
        "INCR": ("INCR", s),
        "HMGET": ("HMGET", h, "c"),
        "HGET": ("HGET", h, "c"),
        "HGETALL": ("HGETALL", h),
        "HSET": ("HSET", h, "c", "1"),
        "HSETNX": ("HSETNX", h, "c", "1"),
        "HDEL": ("HDEL", h, "x"),
        "HEXISTS": ("HEXISTS", h, "x"),
        "HINCRBY": ("HINCRBY", h, "x", 1),
        "HLEN": ("HLEN", h),
        "HKEYS": ("HKEYS", h),
        "HSCAN": ("HSCAN", h, 0),
        "LLEN": ("LLEN", m),
        "LRANGE": ("LRANGE", m, 0, -1),
        "LINDEX": ("LINDEX", m, 0),
        "LSET": ("LSET", m, 0, "x"),
        "LREM": ("LREM", m, 1, "x"),
        "LINSERT": ("LINSERT", m, "BEFORE", "x", "y"),
        "LTRIM": ("LTRIM", m, 0, -1),
        "LPOP": ("LPOP", m),
        "RPOP": ("RPOP", m),
        "LPUSH": ("LPUSH", m, "x"),
        "RPUSH": ("RPUSH", m, "x"),
        "ZADD": ("ZADD", s, 1, "x"),
        "ZREM": ("ZREM", s, "x"),
        "ZCARD": ("ZCARD", s),
        "ZSCORE": ("ZSCORE", s, "x"),
        "ZMSCORE": ("ZMSCORE", s, "x"),
        "ZINCRBY": ("ZINCRBY", s, 1, "x"),
        "ZRANGE": ("ZRANGE", s, 0, -1),
        "ZREVRANGE": ("ZREVRANGE", s, 0, -1),
        "ZRANGEBYSCORE": ("ZRANGEBYSCORE", s, "-inf", "+inf"),
        "ZREVRANGEBYSCORE": ("ZREVRANGEBYSCORE", s, "+inf", 0),
        "ZREMRANGEBYSCORE": ("ZREMRANGEBYSCORE", s, "-inf", "(0"),
        "ZREMRANGEBYRANK": ("ZREMRANGEBYRANK", s, 0, -1000),
        "ZRANGEBYLEX": ("ZRANGEBYLEX", s, "-", "+"),
        "ZREVRANGEBYLEX": ("ZREVRANGEBYLEX", s, "+", "-"),
        "ZREMRANGEBYLEX": ("ZREMRANGEBYLEX", s, "[a", "[a"),
        "ZLEXCOUNT": ("ZLEXCOUNT", s, "-", "+"),
        "ZSCAN": ("ZSCAN", s, 0),
        "MEMORY|USAGE": ("MEMORY", "USAGE", m),
        "PUBLISH": ("PUBLISH", ch, "x"),
        "SPUBLISH": ("SPUBLISH", ch, "x"),
        "SUBSCRIBE": ("SUBSCRIBE", ch),
        "SSUBSCRIBE": ("SSUBSCRIBE", ch),
        "UNSUBSCRIBE": ("UNSUBSCRIBE", ch),
        "SUNSUBSCRIBE": ("SUNSUBSCRIBE", ch),
        "CLUSTER|SLOTS": ("CLUSTER", "SLOTS"),
        "COMMAND": ("COMMAND", "COUNT"),
    }
    return examples.get(command.upper())


# -- replies ----------------------------------------------------------------------------


def _denied(text: str) -> bool:
    """Whether a Redis error means the ACL user may not run the command (on those
    keys or channels); inside a script: "The user executing the script can't ..."."""
    lowered = text.lower()
    return (
        "noperm" in lowered
        or "no permissions" in lowered
        or "executing the script can't" in (lowered)
    )


def _parse_info(reply: Any) -> dict[str, Any]:
    """``INFO`` as a dict: raw text on one server; parsed by redis-py on a Cluster
    (``{node: {...}}`` when it asked every node: one node is taken)."""
    if isinstance(reply, dict):
        if reply and all(isinstance(v, dict) for v in reply.values()):
            return dict(next(iter(reply.values())))
        return reply
    found: dict[str, Any] = {}
    for line in reply_str(reply).splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            found[key] = value
    return found


def _info(admin: Admin, section: str) -> dict[str, Any]:
    (reply,) = admin.send([("INFO", section)])
    return _parse_info(reply)


def _config_get(admin: Admin, name: str) -> str | None:
    try:
        (reply,) = admin.send([("CONFIG", "GET", name)])
    except ChatkeepError:
        return None  # CONFIG is often not permitted (managed services, ACL users)
    pairs = (
        list(reply.items())
        if isinstance(reply, dict)
        else list(zip(reply[::2], reply[1::2], strict=False))
    )
    for key, value in pairs:
        if reply_str(key) == name:
            return reply_str(value)
    return None


def _ping(admin: Admin) -> None:
    admin.send([("PING",)])


# -- the checks -------------------------------------------------------------------------


def run_checks(admin: Admin, *, pings: int = 20) -> list[Check]:
    """Every check, in order; stops after connectivity if Redis cannot be reached."""
    checks: list[Check] = []
    try:
        started = time.perf_counter()
        _ping(admin)
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
    for _ in range(max(pings, 1)):
        started = time.perf_counter()
        _ping(admin)
        samples.append((time.perf_counter() - started) * 1000)
    median, worst = statistics.median(samples), max(samples)
    summary = f"PING round trip median {median:.2f} ms, max {worst:.2f} ms ({len(samples)} pings)"
    timeout_ms = admin.config.socket_timeout * 1000
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


@dataclass
class _Refused:
    commands: set[str]
    channels: set[str]  # allowed, but not on the prefix's channels
    unchecked: set[str]


def _permissions(admin: Admin) -> Check:
    wanted = needed()
    method = "ACL DRYRUN"
    try:
        refused = _dryrun(admin, wanted)
    except ChatkeepError:
        refused = None
    if refused is None:
        method = "trying each command on temporary keys"
        try:
            refused = _probe(admin, wanted)
        except ChatkeepError as exc:
            return Check("permissions", "fail", f"could not check permissions ({exc})")
    rules = "ACL SETUSER <user> " + " ".join(
        acl_rules(admin.config.prefix, cluster=admin.connection.cluster)
    )
    app = sorted(refused.commands & wanted.app)
    cli = sorted(refused.commands - wanted.app)
    if app:
        return Check(
            "permissions",
            "fail",
            f"the user may not run: {', '.join(app)} (checked by {method})",
            f"grant what chatkeep needs, e.g. {rules}",
        )
    if cli:
        return Check(
            "permissions",
            "warn",
            "the app's commands are allowed; the chatkeep command may not run: " + ", ".join(cli),
            f"stats, export and purge need them; the application does not ({rules})",
        )
    if refused.channels:
        return Check(
            "permissions",
            "warn",
            "every command is allowed, but not on the prefix's channels "
            f"({', '.join(sorted(refused.channels))})",
            f"live updates (publish=True, subscribe()) need &{admin.config.prefix}:*",
        )
    summary = f"every command chatkeep sends is allowed (checked by {method})"
    if refused.unchecked:
        summary += f"; not checked: {', '.join(sorted(refused.unchecked))}"
    return Check("permissions", "ok", summary)


def _examples(names: Iterable[str], keys: ProbeKeys) -> tuple[dict[str, Command], set[str]]:
    """The examples of ``names`` the doctor knows, and the names it knows none for."""
    found: dict[str, Command] = {}
    unknown: set[str] = set()
    for name in sorted(names):
        command = example(name, keys)
        if command is None:
            unknown.add(name)
        else:
            found[name] = command
    return found, unknown


def _sort(refusals: Iterable[tuple[str, str]]) -> _Refused:
    """Refusals as (command, error text) -> commands refused, channels refused."""
    found = _Refused(set(), set(), set())
    for name, text in refusals:
        if "channel" in text.lower():
            found.channels.add(name)
        else:
            found.commands.add(name)
    return found


def _dryrun(admin: Admin, wanted: Needed) -> _Refused | None:
    """What ``ACL DRYRUN`` refuses; None when DRYRUN itself is not available."""
    (user,) = admin.send([("ACL", "WHOAMI")], checked=False)
    if isinstance(user, Exception):  # not permitted (a least-privilege user), or no ACL
        return None
    examples, unknown = _examples(wanted.every, ProbeKeys.of(admin))
    commands: list[Command] = [("ACL", "DRYRUN", user, "PING")]
    commands += [("ACL", "DRYRUN", user, *command) for command in examples.values()]
    replies = admin.send(commands, checked=False)
    if isinstance(replies[0], Exception):  # NOPERM for ACL itself, or an old server
        return None
    refusals = []
    for name, reply in zip(examples, replies[1:], strict=True):
        text = str(reply) if isinstance(reply, Exception) else reply_str(reply)
        if text != "OK":
            refusals.append((name, text))
    found = _sort(refusals)
    found.unchecked = unknown
    return found


def _lua(value: Any, keys: ProbeKeys) -> str:
    if value in keys.keys:
        return f"KEYS[{keys.keys.index(value) + 1}]"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def probe_script(commands: dict[str, Command], keys: ProbeKeys) -> str:
    """A script that runs ``commands`` (by name; on ``keys``, passed as KEYS) and
    returns their errors as ``"NAME error"``; then expires and deletes the keys."""
    lines = [
        "local failed = {}",
        "local function try(name, ...)",
        "  local reply = redis.pcall(...)",
        "  if type(reply) == 'table' and reply.err then",
        "    table.insert(failed, name .. ' ' .. reply.err)",
        "  end",
        "end",
    ]
    for name, command in commands.items():
        args = ", ".join(_lua(a, keys) for a in command)
        lines.append(f"try('{name}', {args})")
    lines += [
        "for i = 1, #KEYS do redis.pcall('PEXPIREAT', KEYS[i], ARGV[1]) end",
        "redis.pcall('DEL', unpack(KEYS))",
        "return failed",
    ]
    return "\n".join(lines) + "\n"


def _probe(admin: Admin, wanted: Needed) -> _Refused:
    """What the server refuses when each command is run on throwaway keys."""
    keys = ProbeKeys.of(admin)
    expire_at = int(time.time() * 1000) + 60_000
    examples, unchecked = _examples(wanted.every - _NOT_RUN, keys)
    unchecked |= wanted.every & _NOT_RUN
    inside = {n: c for n, c in examples.items() if n in wanted.scripted}
    outside = {n: c for n, c in examples.items() if n not in wanted.scripted}
    refusals: list[tuple[str, str]] = []
    # The scripts' commands, inside a script (as the scripts run them).
    script = probe_script(inside, keys)
    (failed,) = admin.send([("EVAL", script, len(keys.keys), *keys.keys, expire_at)], checked=False)
    if isinstance(failed, Exception):
        if not _denied(str(failed)):
            check([failed])  # raised, translated
        unchecked |= set(inside)  # no script may run: EVAL's refusal is reported below
    else:
        for entry in failed or []:
            name, _, reason = reply_str(entry).partition(" ")
            if _denied(reason):
                refusals.append((name, reason))
    # The others, each on its own, in one round trip.
    replies = admin.send([*outside.values(), ("DEL", *keys.keys)], checked=False)
    for name, reply in zip(outside, replies, strict=False):
        if isinstance(reply, Exception) and _denied(str(reply)):
            refusals.append((name, str(reply)))
    if isinstance(replies[-1], Exception):  # DEL refused: the keys expire within a minute
        admin.send([("PEXPIREAT", key, expire_at) for key in keys.keys], checked=False)
    found = _sort(refusals)
    found.unchecked = unchecked
    return found


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
