"""chatkeep's Redis layer: what every chatkeep store (and a store of your own) stands on.

* :class:`Connection` / :func:`connect`: one Redis per process for every store:
  the sync client, one asyncio client per running event loop, round trips
  (:meth:`Connection.send`/:meth:`~Connection.asend`) with every driver exception
  translated at one boundary (:func:`translate`);
* flows (:mod:`chatkeep.redis.flows`): each operation written once as a generator
  that yields commands, :class:`Sleep` or :class:`Call` and receives the outcome,
  driven by :func:`run` (sync) or :func:`arun` (asyncio);
* :class:`Feature` and :class:`Script`: shipped Lua scripts with the commands they
  run, :func:`run_script` (``EVALSHA``, ``EVAL`` on ``NOSCRIPT``) and
  :func:`acl_rules` (a least-privilege user for every feature);
* :class:`Circuit` and :func:`guarded`: the one fallback of a Redis: mirrors,
  the journal (:class:`MemoryJournal`, :class:`SqliteJournal`), probes, batched
  replay, notifications and counters; :func:`direct` for a flow with no fallback;
* :class:`KeySchema` (with :func:`validate_id`, :func:`escape_id`): the one key
  layout of every feature;
* :func:`encode_value`/:func:`decode_value` (a JSON value under chatkeep's policy:
  bytes tagged and restored, a size limit) and :func:`dumps`/:func:`loads`;
* :func:`seal_record`/:func:`is_sealed`/:func:`record_key_id`: a conversation record
  as a store with compression or encryption writes it, whether a record is so
  written, and the key it is encrypted with (the rest of
  at-rest sealing is ``StoreConfig.sealing``: ``seal_value``/``open_value``).

See docs/extending.md ("Building on chatkeep") for a store of your own.
"""

from __future__ import annotations

from ..codec import (
    decode_value,
    dumps,
    encode_value,
    is_sealed,
    loads,
    record_key_id,
    seal_record,
)
from ..config import config_from, store_options, ttl_ms
from ..keys import KeySchema, escape_id, memory_owner, unescape_id, validate_id
from ..sealing import VECTOR_FAMILY, is_sealed_value, value_form
from ..wording import a_or_an, plural
from .circuit import (
    FAMILIES,
    BaseFamily,
    Circuit,
    Family,
    Mirror,
    Route,
    direct,
    guarded,
    register_family,
)
from .clients import SCHEMES, client_options, is_async_client, is_cluster_client
from .connection import Connection, connect
from .errors import TEMPORARY_CODES, Unreachable, check, is_temporary, translate
from .flows import (
    NO_IO,
    Call,
    Command,
    Flow,
    Sleep,
    arun,
    async_method,
    done,
    gather,
    run,
    sync_method,
)
from .journal import (
    Journal,
    Journaled,
    MemoryJournal,
    PendingWrites,
    SqliteJournal,
    pending_writes,
)
from .owners import (
    DATA_KINDS,
    OWNED_DATA,
    PART_MARK,
    DataItem,
    DataKind,
    DataSite,
    OwnedData,
    register_data_kind,
    register_owned_data,
    session_part,
)
from .replies import reply_int, reply_str, reply_text
from .scripts import FEATURES, Feature, Script, acl_rules, load_features, run_script
from .stores import (
    AsyncClosing,
    Awaiting,
    Blocking,
    Closing,
    FamilyStore,
    RedisBacked,
    keywords_of,
    resolve_config,
    with_url,
)

__all__ = [
    "DATA_KINDS",
    "OWNED_DATA",
    "PART_MARK",
    "DataItem",
    "DataKind",
    "DataSite",
    "OwnedData",
    "register_data_kind",
    "register_owned_data",
    "session_part",
    "FAMILIES",
    "FEATURES",
    "NO_IO",
    "AsyncClosing",
    "Awaiting",
    "BaseFamily",
    "Blocking",
    "Closing",
    "FamilyStore",
    "RedisBacked",
    "async_method",
    "resolve_config",
    "config_from",
    "a_or_an",
    "plural",
    "keywords_of",
    "store_options",
    "with_url",
    "sync_method",
    "SCHEMES",
    "TEMPORARY_CODES",
    "Call",
    "Circuit",
    "Command",
    "Connection",
    "Family",
    "Feature",
    "Flow",
    "Journal",
    "Journaled",
    "KeySchema",
    "MemoryJournal",
    "Mirror",
    "PendingWrites",
    "Route",
    "Script",
    "Sleep",
    "SqliteJournal",
    "Unreachable",
    "acl_rules",
    "arun",
    "check",
    "client_options",
    "connect",
    "decode_value",
    "direct",
    "done",
    "dumps",
    "encode_value",
    "escape_id",
    "gather",
    "guarded",
    "is_async_client",
    "is_cluster_client",
    "is_sealed",
    "is_sealed_value",
    "value_form",
    "VECTOR_FAMILY",
    "is_temporary",
    "load_features",
    "loads",
    "memory_owner",
    "pending_writes",
    "register_family",
    "reply_int",
    "reply_str",
    "record_key_id",
    "reply_text",
    "run",
    "run_script",
    "seal_record",
    "translate",
    "ttl_ms",
    "unescape_id",
    "validate_id",
]
