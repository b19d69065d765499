"""Conversations in Redis: every operation as one flow, for sync and async stores alike.

Every per-session change is one Lua script over the session's two keys (one hash
tag, so one Cluster slot), which also refreshes the session's index entries when
they are stale (standalone and Sentinel; on a Cluster a ZADD follows). A read is a
plain pipelined ``HMGET``/``LLEN``/``LRANGE`` when there is no TTL to refresh (the
owner is checked on what Redis returned), else a script that checks the owner and
refreshes the sliding TTL; reads of more than ``SMALL_READ`` records pipeline that
script with a plain ``LRANGE``, which spares Redis copying every record through Lua.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..clock import now_ms
from ..codec import encode
from ..errors import BackendError, SerializationError, SessionOwnershipError
from ..keys import KeySchema
from ..redis.circuit import REPLAY_STEP, BaseFamily, register_family
from ..redis.connection import Connection
from ..redis.errors import check
from ..redis.flows import Command, Flow
from ..redis.replies import reply_int, reply_text
from ..redis.scripts import Feature, run_script
from .index import INDEX_SLACK_MS, NOTHING, IndexPlan, RedisIndex
from .local import LocalSessions, context_value
from .ops import (
    KEEP,
    TITLE_SCAN,
    Append,
    Clear,
    Info,
    Insert,
    Keep,
    Op,
    Pop,
    PopResult,
    Read,
    ReadResult,
    Recent,
    Replace,
    Search,
    SessionInfo,
    Sessions,
    Ttl,
    Update,
    WriteResult,
    ms_to_datetime,
)
from .search import search_redis

__all__ = ["SESSIONS", "SMALL_READ", "RedisSessions"]

logger = logging.getLogger("chatkeep")

SESSIONS = Feature(
    "sessions",
    package="chatkeep.sessions",
    scripts=(
        "append", "append_parts", "replace", "insert", "pop", "clear", "read", "touch",
        "budget", "update",
    ),
    prelude="common.lua",
    commands=(
        "PING", "INFO", "HMGET", "LLEN", "LRANGE", "PTTL", "EXISTS",
        "ZADD", "ZREM", "ZREMRANGEBYSCORE", "ZREVRANGEBYSCORE", "HSCAN",
    ),
)  # fmt: skip

# A tail read of up to this many records runs LRANGE inside the read script; longer
# reads pipeline the script with a plain LRANGE (2.5x faster at 1,000 records).
SMALL_READ = 32
# Journaled appends of one session replayed in one script call: at most the
# idempotency ring's size, so a re-sent call finds every part it stored.
REPLAY_PARTS = REPLAY_STEP
_LISTING_PAGE = 500


def _expiry(value: int) -> int | None:
    """Script expiry reply -> result field: -1 never (None), else as is."""
    return None if value == -1 else value


def _record_id(record: bytes) -> str | None:
    """The id of a stored record (records start ``{"v":1,"id":"...``)."""
    head = record[:200]
    if not head.startswith(b'{"v":1,"id":"'):
        return None
    end = head.find(b'"', 13)
    return head[13:end].decode("utf-8", "replace") if end > 0 else None


def write_result(reply: Sequence[Any]) -> WriteResult:
    return WriteResult(
        int(reply[0]),
        _expiry(int(reply[1])),
        reply_text(reply[2]),
        reply[3] not in (0, b"0", "0"),
        reply_int(reply[4]),
        int(reply[5] or 0),
        reply[6] in (1, b"1", "1"),
    )


# What an info reads of the session's hash: these fields, and the context entries
# by HSCAN (never HGETALL: the idempotency ring is binary, and a client made with
# decode_responses=True could not read it).
INFO_FIELDS = ("c", "u", "o", "h", "s", "tt")
CONTEXT_SCAN = 10_000  # a hash smaller than this is scanned in one call


def context_scan(meta: str, cursor: Any = 0) -> Command:
    return ("HSCAN", meta, cursor, "MATCH", "[xr]:*", "COUNT", CONTEXT_SCAN)


def scanned(reply: Any) -> tuple[int, dict[str, Any]]:
    """``HSCAN``'s reply (raw, or parsed to a dict) as (next cursor, fields by name)."""
    cursor, found = reply
    if isinstance(found, dict):
        items = list(found.items())
    else:
        items = list(zip(found[::2], found[1::2], strict=True))
    return int(cursor), {reply_text(name) or "": value for name, value in items}


def hash_fields(fixed: Sequence[Any], scan: Any) -> tuple[dict[str, Any], int]:
    """The fields an info reads (``HMGET`` of INFO_FIELDS and an ``HSCAN`` of the
    context entries) by name, and the scan's next cursor (0: all of them)."""
    cursor, fields = scanned(scan)
    fields.update(zip(INFO_FIELDS, fixed, strict=True))
    return fields, cursor


def info_result(
    sid: str, fields: dict[str, Any], length: int, pttl: int
) -> tuple[SessionInfo | None, int]:
    """The session's info from the fields of its hash (:func:`hash_fields`), LLEN and
    PTTL (None if it is gone), and how many of its fields could not be read (a field
    that is not a number, a context entry that does not decode: written by hand?)."""
    created = fields.get("c")
    if created is None:
        return None, 0
    expires = None if pttl < 0 else now_ms() + pttl
    at = reply_int(created)
    changed = reply_int(fields.get("u"))
    bad = 1 if at is None else 0
    context: dict[str, Any] = {}
    roles: dict[str, int] = {}
    for name, raw in fields.items():
        if name.startswith("x:"):
            try:
                data = raw if isinstance(raw, bytes) else str(raw).encode()
                context[name[2:]] = context_value(data)
            except SerializationError:
                bad += 1
        elif name.startswith("r:"):
            count = reply_int(raw)
            if count is None:
                bad += 1
            elif count > 0:
                roles[name[2:]] = count
    info = SessionInfo(
        id=sid,
        owner=reply_text(fields.get("o")),
        message_count=int(length),
        created_at=None if at is None else ms_to_datetime(at),
        updated_at=None if changed is None else ms_to_datetime(changed),
        expires_at=ms_to_datetime(expires),
        title=reply_text(fields.get("h")),
        status=reply_text(fields.get("s")),
        context=context,
        messages_by_role=roles,
        tokens=reply_int(fields.get("tt")),
    )
    return info, bad


class RedisSessions(BaseFamily):
    """The conversations of one prefix in Redis (a circuit family)."""

    name = "sessions"
    mirror: LocalSessions | None

    def __init__(
        self,
        connection: Connection,
        *,
        prefix: str,
        ttl_ms: int,
        fixed: bool,
        max_messages: int,
        mirror: LocalSessions | None = None,
    ) -> None:
        self.connection = connection
        self.keys = KeySchema(prefix)
        self.ttl_ms = ttl_ms
        self.fixed = fixed
        self.max_messages = max_messages
        self.mirror = mirror
        self.index = RedisIndex(self.keys, ttl_ms, fixed)
        # ARGV 3-5 of every append, encoded once: default TTL, fixed, max messages
        self._constants = [
            str(ttl_ms).encode(),
            b"1" if fixed else b"0",
            str(max_messages).encode(),
        ]
        self.params = {
            "prefix": prefix,
            "ttl_ms": ttl_ms,
            "fixed": fixed,
            "max_messages": max_messages,
        }
        self.conflict_hooks: list[Any] = []
        self.bad_hashes = 0

    @classmethod
    def from_params(cls, params: dict[str, Any], connection: Connection) -> RedisSessions:
        return cls(connection, **params)

    # -- the circuit's family protocol --------------------------------------------------

    def run(self, op: Op) -> Flow[Any]:
        if isinstance(op, Append):
            return self._append(op)
        if isinstance(op, Read):
            return self._read(op)
        if isinstance(op, Replace):
            return self._write("replace", op, op.records)
        if isinstance(op, Insert):
            return self._write("insert", op, [op.index, *op.records])
        if isinstance(op, Pop):
            return self._pop(op)
        if isinstance(op, Clear):
            return self._clear(op)
        if isinstance(op, Update):
            return self._update(op)
        if isinstance(op, Ttl):
            return self._ttl(op)
        if isinstance(op, Info):
            return self._info(op)
        if isinstance(op, Sessions):
            return self._sessions(op)
        if isinstance(op, Search):
            return search_redis(self.keys, op, cluster=self.connection.cluster)
        return self._recent(op)

    @staticmethod
    def key(op: Op) -> str | None:
        if isinstance(op, (Append, Replace, Insert, Pop, Clear, Update)):
            return op.session_id
        return None

    @staticmethod
    def size(op: Op) -> int:
        records = getattr(op, "records", ())
        extra = 0
        if isinstance(op, Update):
            extra = sum(len(k) + len(v or b"") for k, v in op.context) + sum(
                len(v) for v in (op.title, op.status) if isinstance(v, str)
            )
        return (
            96
            + len(op.session_id if hasattr(op, "session_id") else "")
            + sum(len(r) for r in records)
            + extra
        )

    def replay(self, ops: list[Any]) -> Flow[list[BaseException | None]]:
        """The next step of a session's journaled writes: a run of appends (same owner
        and TTL, at most the idempotency ring's size) in one script call, else the
        oldest write alone."""
        first = ops[0]
        run = [first]
        if isinstance(first, Append):
            for op in ops[1:REPLAY_PARTS]:
                if not (
                    isinstance(op, Append) and (op.owner, op.ttl_ms) == (first.owner, first.ttl_ms)
                ):
                    break
                run.append(op)
        try:
            if isinstance(first, Append):
                yield from self._append_parts(run)
            else:
                yield from self.run(first)
        except Exception as exc:
            return [exc] * len(run)
        return [None] * len(run)

    @staticmethod
    def attempted(op: Op) -> Op:
        """An append sent without a reply: its replay also looks for its records."""
        return replace(op, ambiguous=True) if isinstance(op, Append) else op

    def rejected(self, op: Any, error: BaseException) -> None:
        for hook in list(self.conflict_hooks):
            hook(op, error)

    def encode(self, op: Op) -> bytes:
        # An update names its session "u", not "s": a release that predates updates
        # fails to decode it (and keeps it) instead of reading an unknown kind as a clear.
        sid = "u" if isinstance(op, Update) else "s"
        fields: dict[str, Any] = {"k": op.kind, sid: getattr(op, "session_id", "")}
        for name in (
            "owner", "ttl_ms", "index", "message_id", "expect", "ambiguous", "at_ms", "made_ms",
        ):  # fmt: skip
            value = getattr(op, name, None)
            if value is not None:
                fields[name] = value
        idem = getattr(op, "idem", b"")
        if idem:
            fields["idem"] = base64.b64encode(idem).decode()
        records = getattr(op, "records", None)
        if records is not None:
            fields["records"] = [base64.b64encode(r).decode() for r in records]
        if isinstance(op, Update):
            fields["title"], fields["status"] = _action(op.title), _action(op.status)
            fields["context"] = [
                [k, None if v is None else base64.b64encode(v).decode()] for k, v in op.context
            ]
        return json.dumps(fields, separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> Op:
        fields = json.loads(data)
        kind, sid = fields.pop("k"), fields.pop("s", None) or fields.pop("u", "")
        owner = fields.get("owner")
        idem = base64.b64decode(fields.get("idem", ""))
        records = [base64.b64decode(r) for r in fields.get("records", [])]
        expect = fields.get("expect")
        if kind == "append":
            return Append(
                sid, [], records, owner, idem, fields.get("ttl_ms"),
                ambiguous=bool(fields.get("ambiguous")),
            )  # fmt: skip
        if kind == "replace":
            return Replace(sid, [], records, owner, idem, fields.get("ttl_ms"), expect)
        if kind == "insert":
            return Insert(sid, [], records, owner, idem, fields["index"], expect)
        if kind == "pop":
            return Pop(sid, fields["index"], owner, idem, fields.get("message_id"), expect)
        if kind == "update":
            context = [
                (k, None if v is None else base64.b64decode(v)) for k, v in fields["context"]
            ]
            return Update(
                sid, owner, _unaction(fields["title"]), _unaction(fields["status"]), context,
                idem, fields.get("ttl_ms"), fields.get("at_ms"), fields.get("made_ms"),
            )  # fmt: skip
        if kind == "clear":
            return Clear(sid, owner, expect)
        raise SerializationError(f"a journaled write of unknown kind {kind!r}: not replayed")

    def restarted(self) -> Flow[None]:
        """Redis restarted: find which sessions this process knew are gone, rewrite the
        index entries of the others and, with ``restore_lost_sessions``, write back
        what the mirror holds of the lost ones (only where no session exists now)."""
        known = self.index.known()
        if not known:
            return
        missing: list[str] = []
        for start in range(0, len(known), _LISTING_PAGE):
            page = known[start : start + _LISTING_PAGE]
            replies = yield [("EXISTS", self.keys.session(sid)[1]) for sid, _ in page]
            check(replies)
            missing += [sid for (sid, _), found in zip(page, replies, strict=True) if not found]
        for sid in missing:
            self.index.forget(sid)
        alive = [(sid, entry) for sid, entry in known if sid not in set(missing)]
        fixes: list[Command] = []
        for sid, entry in alive:
            fixes.append(("ZADD", self.keys.index, self._score(entry.score), sid))
            if entry.owner is not None:
                fixes.append(
                    ("ZADD", self.keys.owner_index(entry.owner), self._score(entry.score), sid)
                )
        if fixes:
            check((yield fixes))
        circuit = self.connection.circuit
        if circuit is not None:
            circuit.lost_sessions += len(missing)
        restored = 0
        if missing and circuit is not None and circuit.restore_lost_sessions and self.mirror:
            restored = yield from self._restore(set(missing), circuit)
        logger.warning(
            "Redis at %s restarted: %d of the %d sessions of prefix %r this process knew "
            "are gone%s",
            self.connection.safe_url,
            len(missing),
            len(known),
            self.keys.prefix,
            f"; {restored} written back from the mirror" if restored else "",
            extra=self._log_extra(),
        )

    def _restore(self, lost: set[str], circuit: Any) -> Flow[int]:
        """Write back what the mirror holds of ``lost`` sessions, but for what the
        journal will replay itself, where no session exists now (never over newer data)."""
        assert self.mirror is not None
        restored = 0
        for sid, owner, entries in self.mirror.held():
            if sid not in lost:
                continue
            journaled = {
                _record_id(record)
                for op in circuit.journal.ops(self.name, sid)
                for record in getattr(op, "records", ())
            }
            records = [e if isinstance(e, bytes) else encode(e) for e in entries]
            records = [r for r in records if _record_id(r) not in journaled]
            if not records:
                continue
            try:
                yield from self.run(Replace(sid, [], records, owner, b"", None, "-"))
                restored += 1
            except BackendError:
                continue  # recreated meanwhile: never over newer data
        return restored

    @staticmethod
    def _score(score: float) -> Any:
        return "inf" if score == math.inf else int(score)

    # -- writes -------------------------------------------------------------------------

    def _args(
        self, op: Append | Replace | Insert | Pop | Update, now: int, plan: IndexPlan, publish: str
    ) -> tuple[list[str], list[Any]]:
        messages, meta = self.keys.session(op.session_id)
        keys = [messages, meta]
        mode = plan.mode
        if mode == "1" and not self.connection.cluster:
            keys += plan.keys
        else:
            # Cluster: the index keys live in other slots. '2' (only for a session the
            # write creates): rare, so the hot path sends no index keys. A ZADD follows.
            mode = "0"
        if publish:
            keys.append(self.keys.channel(op.session_id))
        ttl = getattr(op, "ttl_ms", None)
        args = [
            now,
            "" if ttl is None else ttl,
            self.ttl_ms,
            1 if self.fixed else 0,
            self.max_messages,
            op.owner or "",
            op.idem,
            getattr(op, "expect", None) or "",
            mode,
            op.session_id,
            publish,
        ]
        return keys, args

    def _write(
        self, name: str, op: Append | Replace | Insert, tail: list[Any]
    ) -> Flow[WriteResult]:
        now = now_ms()
        plan = self.index.before(op.session_id, op.owner, getattr(op, "ttl_ms", None), now)
        keys, args = self._args(op, now, plan, "")
        replies = yield from run_script(
            SESSIONS[name],
            keys,
            [*args, *tail],
            session_id=op.session_id,
            cluster=self.connection.cluster,
        )
        result = write_result(replies[0])
        if not result.duplicate:
            yield from self._indexed(op.session_id, plan, result.expires_at_ms, result, now)
        return result

    def _update(self, op: Update) -> Flow[SessionInfo]:
        """Metadata in one round trip: the script, then the session's hash as it left it."""
        now = now_ms()
        sid = op.session_id
        plan = self.index.before(sid, op.owner, op.ttl_ms, now)
        keys, args = self._args(op, now, plan, "")
        tail: list[Any] = [
            _action(op.title),
            _action(op.status),
            "" if op.at_ms is None else op.at_ms,
            "" if op.made_ms is None else op.made_ms,
        ]
        for key, value in op.context:
            tail += [key, b"" if value is None else value]
        meta = self.keys.session(sid)[1]
        replies = yield from run_script(
            SESSIONS["update"],
            keys,
            [*args, *tail],
            ("HMGET", meta, *INFO_FIELDS),
            context_scan(meta),
            ("PTTL", meta),
            session_id=sid,
            cluster=self.connection.cluster,
        )
        result = write_result(replies[0])
        yield from self._indexed(sid, plan, result.expires_at_ms, result, now)
        fields = yield from self._fields(sid, replies[1], replies[2])
        info, bad = info_result(sid, fields, result.length, int(replies[3]))
        self.bad_hashes += bad
        if info is None:  # written, then gone at once: a fixed TTL already past
            return SessionInfo(
                id=sid,
                owner=result.owner,
                message_count=result.length,
                created_at=ms_to_datetime(result.created_ms),
                updated_at=ms_to_datetime(now),
                expires_at=ms_to_datetime(result.expires_at_ms),
            )
        return info

    def _append(self, op: Append) -> Flow[WriteResult]:
        """The hot path: ``append.lua``'s own, shorter argument list."""
        now = now_ms()
        sid = op.session_id
        plan = self.index.before(sid, op.owner, op.ttl_ms, now)
        messages, meta = self.keys.session(sid)
        keys = [messages, meta]
        extras = ""
        head: list[Any] = []
        if plan.mode == "1" and not self.connection.cluster:
            keys += plan.keys
            extras, head = "I", [sid]
        if op.publish:
            keys.append(self.keys.channel(sid))
            extras += "S" if self.connection.cluster else "P"
        ttl = op.ttl_ms
        args = [now, b"" if ttl is None else ttl, *self._constants, op.owner or b"", op.idem]
        replies = yield from run_script(
            SESSIONS["append"],
            keys,
            [*args, extras, *head, *op.records],
            session_id=sid,
            cluster=self.connection.cluster,
        )
        result = write_result(replies[0])
        if not result.duplicate:
            yield from self._indexed(sid, plan, result.expires_at_ms, result, now)
        return result

    def _append_parts(self, ops: list[Append]) -> Flow[WriteResult]:
        first = ops[0]
        now = now_ms()
        plan = self.index.before(first.session_id, first.owner, first.ttl_ms, now)
        keys, args = self._args(first, now, plan, "")
        args[6] = ""  # each part carries its own key
        tail: list[Any] = [len(ops)]
        for op in ops:
            tail += [op.idem, 1 if op.ambiguous else 0, len(op.records), *op.records]
        replies = yield from run_script(
            SESSIONS["append_parts"],
            keys,
            [*args, *tail],
            session_id=first.session_id,
            cluster=self.connection.cluster,
        )
        result = write_result(replies[0])
        if int(replies[0][1]) != -2:
            yield from self._indexed(first.session_id, plan, result.expires_at_ms, result, now)
        return result

    def _indexed(
        self,
        sid: str,
        plan: IndexPlan,
        expires: int | None,
        result: WriteResult | ReadResult | PopResult,
        now: int,
    ) -> Flow[None]:
        """Record the index state; send what the script could not write."""
        new = isinstance(result, WriteResult) and result.new
        fixes, lost = self.index.after(sid, plan, expires, result.owner, now, new=new)
        commands: list[Command] = []
        follow = (plan.mode == "1" and self.connection.cluster) or (plan.mode == "2" and new)
        if follow and (expires is None or expires >= 0):
            # what the script did not write: the index keys of a Cluster, or of a
            # session this write created although this process had indexed it
            at = "inf" if expires is None else expires
            xx = ("XX",) if plan.read else ()
            commands += [("ZADD", key, *xx, at, sid) for key in plan.keys]
        commands += [("ZADD", key, self._score(score), sid) for key, score in fixes]
        if commands:
            check((yield commands), sid)
        if lost:
            circuit = self.connection.circuit
            if circuit is not None:
                circuit.lost_sessions += 1
            logger.warning(
                "session %r was gone from Redis at %s although this process wrote it and "
                "saw it alive (Redis lost data?); its index entries were written again",
                sid,
                self.connection.safe_url,
                extra=self._log_extra(),
            )

    def _log_extra(self) -> dict[str, Any]:
        """The record attributes of the circuit's log lines (chatkeep.redis.Circuit.log)."""
        return {"chatkeep_redis": self.connection.safe_url, "chatkeep_prefixes": [self.keys.prefix]}

    def _pop(self, op: Pop) -> Flow[PopResult]:
        now = now_ms()
        keys, args = self._args(op, now, NOTHING, "")
        start = "" if op.message_id is None else '{"v":1,"id":' + json.dumps(op.message_id)
        replies = yield from run_script(
            SESSIONS["pop"],
            keys,
            [*args, op.index, start],
            session_id=op.session_id,
            cluster=self.connection.cluster,
        )
        reply = replies[0]
        raw = reply[0]
        result = PopResult(
            None if raw is None or raw is False else raw,
            _expiry(int(reply[1])),
            reply_text(reply[2]),
            int(reply[3]),
            reply_int(reply[4]),
            int(reply[5] or 0),
        )
        if result.record is not None:
            yield from self._indexed(op.session_id, NOTHING, result.expires_at_ms, result, now)
        return result

    def _clear(self, op: Clear) -> Flow[bool]:
        keys = list(self.keys.session(op.session_id))
        replies = yield from run_script(
            SESSIONS["clear"],
            keys,
            [op.owner or "", op.expect or ""],
            session_id=op.session_id,
            cluster=self.connection.cluster,
        )
        existed, owner = replies[0]
        removals: list[Command] = [("ZREM", self.keys.index, op.session_id)]
        if owner is not None and owner is not False:
            removals.append(("ZREM", self.keys.owner_index(reply_text(owner) or ""), op.session_id))
        check((yield removals), op.session_id)
        self.index.forget(op.session_id)
        return bool(existed)

    # -- reads --------------------------------------------------------------------------

    def _read(self, op: Read) -> Flow[ReadResult]:
        now = now_ms()
        sid = op.session_id
        messages, meta = self.keys.session(sid)
        span = (-(op.last or 0), -1)
        budget = op.budget
        if budget is None and op.owner is None and self.index.fresh(sid, now) is not None:
            # No owner to check and no TTL to refresh: the records, with the owner and
            # version Redis holds (read first: a write in between makes the version
            # older than the records, never newer).
            replies = yield [("HMGET", meta, "o", "c", "w", "n"), ("LRANGE", messages, *span)]
            check(replies, sid)
            (owner_raw, created, version, length), records = replies
            return ReadResult(
                list(records),
                -3,
                reply_text(owner_raw),
                created is not None,
                reply_int(created),
                reply_int(version) or 0,
                reply_int(length),
            )
        plan = self.index.before_read(sid, now)
        keys = [messages, meta]
        mode = "0" if self.connection.cluster else plan.mode
        if mode != "0":
            keys += plan.keys
        args = [now, "", self.ttl_ms, 1 if self.fixed else 0, "", op.owner or "", "", "",
                mode, sid, "", op.last or 0]  # fmt: skip
        cluster = self.connection.cluster
        if budget is not None:
            # the newest records that fit: work grows with what is returned, not with
            # the session's length (budget.lua)
            args[11:] = [budget.max_tokens, 1 if budget.keep_system else 0]
            replies = yield from run_script(
                SESSIONS["budget"], keys, args, session_id=sid, cluster=cluster
            )
            reply = replies[0]
        elif not cluster and (op.last is None or op.last > SMALL_READ):
            replies = yield from run_script(
                SESSIONS["touch"], keys, args, ("LRANGE", messages, *span), session_id=sid
            )
            reply = [*replies[0], replies[1]]
        else:
            replies = yield from run_script(
                SESSIONS["read"], keys, args, session_id=sid, cluster=cluster
            )
            reply = replies[0]
        at = int(reply[0])
        records = list(reply[5])
        # a budget read's leading system record, kept apart from the tail
        head = [reply[6]] if len(reply) > 6 and reply[6] not in (None, False) else None
        if at == -2:
            return ReadResult(records, -2, None, exists=False, head=head)
        result = ReadResult(
            records,
            _expiry(at),
            reply_text(reply[1]),
            exists=True,
            created_ms=reply_int(reply[2]),
            version=reply_int(reply[3]) or 0,
            length=int(reply[4]),
            head=head,
        )
        yield from self._indexed(sid, plan, result.expires_at_ms, result, now)
        return result

    def _ttl(self, op: Ttl) -> Flow[float | None]:
        replies = yield [("PTTL", self.keys.session(op.session_id)[1])]
        check(replies, op.session_id)
        pttl = int(replies[0])
        if pttl == -2:
            return 0.0
        return None if pttl == -1 else pttl / 1000

    def _info_commands(self, sid: str) -> list[Command]:
        messages, meta = self.keys.session(sid)
        return [
            ("HMGET", meta, *INFO_FIELDS),
            context_scan(meta),
            ("LLEN", messages),
            ("PTTL", meta),
        ]

    def _fields(self, sid: str, fixed: Sequence[Any], scan: Any) -> Flow[dict[str, Any]]:
        """The info fields of a session's hash; more HSCAN calls only for a context of
        thousands of entries."""
        fields, cursor = hash_fields(fixed, scan)
        meta = self.keys.session(sid)[1]
        while cursor:
            replies = yield [context_scan(meta, cursor)]
            check(replies, sid)
            cursor, more = scanned(replies[0])
            fields.update(more)
        return fields

    def _info(self, op: Info) -> Flow[SessionInfo | None]:
        replies = yield self._info_commands(op.session_id)
        check(replies, op.session_id)
        info = yield from self._info_of(op.session_id, replies)
        if info is not None and op.owner is not None and info.owner != op.owner:
            raise SessionOwnershipError(op.session_id)
        return info

    def _info_of(self, sid: str, replies: Sequence[Any]) -> Flow[SessionInfo | None]:
        fixed, scan, length, pttl = replies
        fields = yield from self._fields(sid, fixed, scan)
        info, bad = info_result(sid, fields, length, pttl)
        self.bad_hashes += bad
        return info

    def _index_error(self, key: str, replies: list[Any]) -> None:
        for reply in replies:
            if isinstance(reply, Exception) and "WRONGTYPE" in str(reply):
                error = BackendError(
                    f"the session index {key!r} is not a sorted set (WRONGTYPE): it was "
                    "overwritten by something other than chatkeep"
                )
                error.code = "WRONGTYPE"
                raise error from reply
        check(replies)

    def _sessions(self, op: Sessions) -> Flow[list[SessionInfo]]:
        key = self.keys.index if op.owner is None else self.keys.owner_index(op.owner)
        floor = now_ms() - INDEX_SLACK_MS
        found: list[SessionInfo] = []
        offset = 0
        batch = op.limit if op.limit is not None else _LISTING_PAGE
        replies = yield [("ZREMRANGEBYSCORE", key, "-inf", f"({floor}")]
        self._index_error(key, replies)
        while op.limit is None or len(found) < op.limit:
            replies = yield [("ZREVRANGEBYSCORE", key, "+inf", floor, "LIMIT", offset, batch)]
            self._index_error(key, replies)
            members = replies[0]
            if not members:
                break
            offset += len(members)
            sids = [reply_text(m) or "" for m in members]
            page = yield [c for sid in sids for c in self._info_commands(sid)]
            stale = []
            width = len(self._info_commands(""))
            for i, sid in enumerate(sids):
                parts = page[width * i : width * (i + 1)]
                if any(isinstance(p, Exception) for p in parts):
                    self.bad_hashes += 1  # a key of the session is not what chatkeep wrote
                    continue
                info = yield from self._info_of(sid, parts)
                if info is None or (op.owner is not None and info.owner != op.owner):
                    stale.append(sid)
                elif op.status is not None and info.status != op.status:
                    continue
                elif op.limit is None or len(found) < op.limit:
                    found.append(info)
            if stale:
                check((yield [("ZREM", key, *stale)]))
                offset -= len(stale)
            if len(members) < batch:
                break
        return found

    def _recent(self, op: Recent) -> Flow[list[tuple[SessionInfo, list[Any]]]]:
        infos = yield from self._sessions(Sessions(op.owner, op.limit))
        if not infos:
            return []
        # LRANGE, not the read script: a listing refreshes no TTL.
        heads = yield [("LRANGE", self.keys.session(i.id)[0], 0, TITLE_SCAN - 1) for i in infos]
        return [
            (info, [] if isinstance(head, Exception) else list(head))
            for info, head in zip(infos, heads, strict=True)
        ]


def _action(value: str | Keep | None) -> str:
    """A title or status as update.lua takes it: '-' keep, '!' remove, '=<text>' set."""
    if isinstance(value, Keep):
        return "-"
    return "!" if value is None else "=" + value


def _unaction(action: str) -> str | Keep | None:
    return KEEP if action == "-" else None if action == "!" else action[1:]


register_family(RedisSessions.name, RedisSessions.from_params)
