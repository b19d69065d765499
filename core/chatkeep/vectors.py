"""Embeddings for semantic search: what to embed, how vectors are stored, how they rank.

A value's vectors are stored beside it as one blob: the dimension count (uint32) then
each vector as float32, all little-endian (6 KB for one 1,536-dimension vector). They
are ranked in this process by cosine similarity, the best of a value's vectors
counting (numpy when installed, else plain Python). Used by
:meth:`chatkeep.MemoryStore.search` and the LangGraph store.

An *embedder* is what LangChain and LangGraph users already have: an ``Embeddings``
object (``embed_documents``/``embed_query``, and ``aembed_documents``/``aembed_query``
in async code), or a plain function from a list of texts to a list of vectors (a
coroutine function for the async stores).
"""

from __future__ import annotations

import inspect
import json
import math
import operator
import struct
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigurationError, InvalidArgumentError

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is optional
    np = None  # type: ignore[assignment]

__all__ = [
    "Embedder",
    "check_embedder",
    "coordinates",
    "embed_documents",
    "embed_query",
    "frame",
    "pack",
    "rows",
    "scores",
    "texts_at",
    "vector_dims",
]

Embedder = Any
"""An ``Embeddings``-like object or a function ``texts -> vectors`` (maybe async)."""

_HEADER = struct.Struct("<I")


def check_embedder(embedder: object) -> None:
    """Raise :class:`ConfigurationError` unless ``embedder`` can embed texts."""
    if not (callable(embedder) or callable(getattr(embedder, "embed_documents", None))):
        raise ConfigurationError(
            "embed must be an Embeddings object (embed_documents/embed_query) or a "
            "function from a list of texts to a list of vectors"
        )


def embed_documents(embedder: Embedder, texts: list[str], *, awaited: bool) -> Any:
    """Vectors of ``texts``; an awaitable in async code when the embedder has one."""
    if awaited and callable(getattr(embedder, "aembed_documents", None)):
        return embedder.aembed_documents(texts)
    if callable(getattr(embedder, "embed_documents", None)):
        return embedder.embed_documents(texts)
    found = embedder(texts)
    if inspect.isawaitable(found) and not awaited:
        if inspect.iscoroutine(found):
            found.close()
        raise ConfigurationError("an async embedding function needs the asyncio store")
    return found


def embed_query(embedder: Embedder, text: str, *, awaited: bool) -> Any:
    """The vector of a query (an awaitable in async code when the embedder has one)."""
    if awaited and callable(getattr(embedder, "aembed_query", None)):
        return embedder.aembed_query(text)
    if callable(getattr(embedder, "embed_query", None)):
        return embedder.embed_query(text)
    found = embed_documents(embedder, [text], awaited=awaited)
    if inspect.isawaitable(found):
        return _first(found)
    return _only(found)


async def _first(found: Any) -> Any:
    return _only(await found)


def _only(vectors: Any) -> Any:
    return rows(vectors, 1)[0]


def _sized(value: object) -> bool:
    """Whether ``value`` is a list-like of items (a list, a tuple, a numpy array...)."""
    return (
        hasattr(value, "__len__")
        and hasattr(value, "__iter__")
        and not isinstance(value, (str, bytes, bytearray, Mapping))
    )


def coordinates(vector: object) -> array[float]:
    """One embedding as float32 coordinates; :class:`ConfigurationError` unless it is a
    non-empty list of finite numbers (NaN, infinities and values float32 cannot hold
    would make every similarity NaN)."""
    if isinstance(vector, array) and vector.typecode == "f":
        packed = vector
    else:
        if not _sized(vector):
            raise ConfigurationError("an embedding is not a list of numbers")
        packed = array("f")
        try:
            packed.extend(float(x) for x in vector)  # type: ignore[attr-defined]
        except (TypeError, ValueError, OverflowError) as error:
            raise ConfigurationError(f"an embedding is not a list of numbers: {error}") from None
    if not packed:
        raise ConfigurationError("an embedding has no dimensions")
    if not all(map(math.isfinite, packed)):
        raise ConfigurationError(
            "an embedding holds a coordinate that is not finite (NaN, infinity, or "
            "beyond float32's range)"
        )
    return packed


def rows(embedded: object, count: int) -> list[array[float]]:
    """The ``count`` vectors an embedder returned for ``count`` texts, checked: one
    per text, each finite numbers, all of one dimension count."""
    if not _sized(embedded) or len(embedded) != count:  # type: ignore[arg-type]
        raise ConfigurationError("the embedding function must return one vector per text")
    found = [coordinates(vector) for vector in embedded]  # type: ignore[attr-defined]
    if len({len(vector) for vector in found}) > 1:
        raise ConfigurationError("the embedding function returned vectors of different sizes")
    return found


def texts_at(value: Any, fields: Sequence[str] | None) -> list[str]:
    """The texts of ``value`` to embed: the whole value (``None`` or ``"$"``; a str as
    it is, anything else as its JSON text) or the fields at dotted paths (a str as it
    is, a list's str items each, other values as JSON text; missing paths skipped)."""
    found: list[str] = []
    for path in fields or ("$",):
        if path == "$":
            part: Any = value
        else:
            part = value
            for name in path.split("."):
                if not isinstance(part, dict) or name not in part:
                    part = None
                    break
                part = part[name]
            if part is None:
                continue
        items = part if isinstance(part, list) and path != "$" else [part]
        for item in items:
            text = item if isinstance(item, str) else json.dumps(item, sort_keys=True)
            if text:
                found.append(text)
    return found


def pack(vectors: Sequence[Sequence[float]]) -> bytes:
    """One blob of ``vectors`` (all of one dimension count, finite numbers)."""
    if not vectors:
        raise InvalidArgumentError("no vectors to store")
    found = rows(vectors, len(vectors))
    dims = len(found[0])
    packed = array("f")
    for vector in found:
        packed.extend(vector)
    if sys.byteorder == "big":  # pragma: no cover - stored little-endian everywhere
        packed.byteswap()
    return _HEADER.pack(dims) + packed.tobytes()


def frame(dims: int, raw: bytes) -> bytes:
    """The blob of vectors already packed as little-endian float32 (``raw``)."""
    return _HEADER.pack(dims) + raw


def vector_dims(blob: bytes) -> int:
    """The dimension count of a blob (0 when it is not one)."""
    if len(blob) < _HEADER.size:
        return 0
    (dims,) = _HEADER.unpack_from(blob)
    body = len(blob) - _HEADER.size
    return dims if dims and body and body % (4 * dims) == 0 else 0


def scores(query: Sequence[float], blobs: Sequence[bytes | None]) -> list[float | None]:
    """Best cosine similarity of each blob's vectors to ``query``; None for a missing
    blob or one of another dimension count."""
    dims = len(query)
    usable = [blob is not None and vector_dims(blob) == dims and dims > 0 for blob in blobs]
    counts = [
        (len(blob) - _HEADER.size) // (4 * dims) if ok and blob is not None else 0
        for blob, ok in zip(blobs, usable, strict=True)
    ]
    raw = b"".join(
        blob[_HEADER.size :] for blob, ok in zip(blobs, usable, strict=True) if ok and blob
    )
    flat = _cosines(query, raw, dims)
    result: list[float | None] = []
    at = 0
    for ok, n in zip(usable, counts, strict=True):
        result.append(max(flat[at : at + n]) if ok and n else None)
        at += n
    return result


def _cosines(query: Sequence[float], raw: bytes, dims: int) -> list[float]:
    if not raw:
        return []
    if np is not None:
        matrix = np.frombuffer(raw, dtype="<f4").reshape(-1, dims)
        q = np.asarray(query, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(q))
        dots = matrix @ q
        found: list[float] = np.divide(
            dots, norms, out=np.zeros_like(dots), where=norms > 0
        ).tolist()
        return found
    vectors = array("f")
    vectors.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover
        vectors.byteswap()
    qn = math.sqrt(sum(x * x for x in query))
    flat: list[float] = []
    for i in range(0, len(vectors), dims):
        v = vectors[i : i + dims]
        vn = math.sqrt(sum(x * x for x in v)) * qn
        flat.append(sum(map(operator.mul, query, v)) / vn if vn else 0.0)
    return flat
