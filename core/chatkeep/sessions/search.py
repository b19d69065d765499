"""Search within one conversation, the same on every backend.

A message matches when the query is a substring of its text (a string content, else
its text parts joined: :attr:`Message.text`) or of the JSON text of one of its tool
calls' arguments (as stored: compact, keys in the order given), after both are
*folded*: ASCII ``A``-``Z`` and the one-to-one Unicode lower-case mappings of the
letters UTF-8 writes in two bytes (Latin-1, Latin Extended, IPA, Greek, Coptic,
Cyrillic, Armenian: ``É``/``é``, ``Ж``/``ж``) are lower-cased. Other
characters match exactly as they are: CJK has no case; ``ß`` does not match ``SS``;
letters written in three bytes (Georgian Mtavruli, the Kelvin sign, fullwidth Latin)
and the special casing of ``İ`` are not folded. Redis's Lua ``string.lower`` folds
ASCII only, so ``search.lua`` folds the two-byte letters from the table ``PAIRS`` it
ships, and this module reads that same table: the memory backend, the fallback's
mirror and Redis answer alike.

Sealed records (a store with compression or encryption, :mod:`chatkeep.sealing`)
cannot be searched where they are kept: the script and the local backend send every
sealed record among those looked at as a *candidate* (not counted toward the limit),
and the store opens and matches them itself. Searching a session of sealed records
costs what reading its newest :data:`SEARCH_BOUND` records costs.

Bounded work: a search looks at the newest :data:`SEARCH_BOUND` messages of a
session at most (Redis: in chunks of :data:`SEARCH_CHUNK` from the tail, inside one
script call); older messages are not searched. No TTL is refreshed: a search is not
activity in the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

from .. import codec
from ..errors import InvalidArgumentError, SerializationError
from ..keys import KeySchema, utf8_text
from ..message import Message
from ..redis.flows import Flow
from ..redis.replies import reply_text
from ..redis.scripts import Feature, run_script
from . import ops

__all__ = [
    "SEARCH",
    "SEARCH_BOUND",
    "SEARCH_CHUNK",
    "fold",
    "matches",
    "search_entries",
    "search_redis",
    "search_query",
]

SEARCH = Feature(
    "sessions-search", package="chatkeep.sessions", scripts=("search",), prelude="common.lua"
)

SEARCH_BOUND = 2_000
"""Messages of a session one search looks at, at most: the newest ones."""
SEARCH_CHUNK = 250
"""Records read per ``LRANGE`` inside the search script."""
MAX_QUERY = 1_000
"""Characters of a query, at most."""


def _pairs() -> dict[int, str]:
    text = resources.files("chatkeep.sessions").joinpath("lua/search.lua").read_text("utf-8")
    block = re.search(r"local PAIRS = table\.concat\(\{(.*?)\}\)", text, re.DOTALL)
    assert block is not None, "search.lua lost its PAIRS table"
    pairs = "".join(re.findall(r"'([^']*)'", block.group(1)))
    table = {ord(c): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    for i in range(0, len(pairs), 2):
        table[ord(pairs[i])] = pairs[i + 1]
    return table


_FOLD = _pairs()


def fold(text: str) -> str:
    """``text`` folded as the search folds it (see the module's docstring)."""
    return text.translate(_FOLD)


def search_query(query: object, limit: object) -> tuple[str, int]:
    """The folded query and the limit of a search; InvalidArgumentError if bad."""
    if not isinstance(query, str):
        raise InvalidArgumentError(f"query must be a str, not {type(query).__name__}")
    if not query:
        raise InvalidArgumentError("query must not be empty")
    if len(query) > MAX_QUERY:
        raise InvalidArgumentError(f"query must be at most {MAX_QUERY} characters")
    utf8_text(query, "query")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgumentError("limit must be an int >= 1")
    return fold(query), limit


def _arguments_text(arguments: Any) -> str:
    try:
        return codec.dumps(arguments).decode("utf-8", "replace")
    except SerializationError:
        return ""


def matches(entry: codec.Entry, query: str) -> bool:
    """Whether a message (or its record) matches the folded ``query``."""
    if isinstance(entry, Message):
        if query in fold(entry.text):
            return True
        return any(query in fold(_arguments_text(c.arguments)) for c in entry.tool_calls)
    raw = entry.decode("utf-8", "replace")
    if query not in fold(raw) and "\\" not in raw and '"content":[' not in raw:
        return False  # the record holds its text verbatim: no match anywhere in it
    try:
        message = codec.decode(entry)
    except SerializationError:
        return False
    return matches(message, query)


def search_entries(entries: list[codec.Entry], query: str, limit: int) -> tuple[list[Any], int]:
    """(matching entries newest first, entries looked at) of a session held here."""
    found: list[codec.Entry] = []
    scanned = matched = 0
    for entry in reversed(entries):
        if scanned >= SEARCH_BOUND or matched >= limit:
            break
        scanned += 1
        if matches(entry, query):
            found.append(entry)
            matched += 1
        elif isinstance(entry, bytes) and codec.is_sealed(entry):
            found.append(entry)  # a candidate: the store opens and matches it
    return found, scanned


def search_redis(keys: KeySchema, op: ops.Search, *, cluster: bool) -> Flow[ops.SearchResult]:
    """The search on Redis: one script call over the session's two keys."""
    messages, meta = keys.session(op.session_id)
    replies = yield from run_script(
        SEARCH["search"],
        [messages, meta],
        [op.owner or "", op.query, op.limit, SEARCH_BOUND, SEARCH_CHUNK],
        session_id=op.session_id,
        cluster=cluster,
    )
    owner, _created, scanned, records = replies[0]
    return ops.SearchResult(list(_records(records)), reply_text(owner), int(scanned))


def _records(records: Iterable[Any]) -> Iterable[bytes]:
    for record in records:
        yield record if isinstance(record, bytes) else str(record).encode()
