"""Semantic search in long-term memory (``MemoryStore(embed=...)``, ``search``), on
every backend of the matrix and through both twins (conftest.py)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from chatkeep import ConfigurationError, InvalidArgumentError, MemoryHit
from tests.contract.conftest import Harness

USER = ("user", "u42")
WORDS = ["coffee", "tea", "python", "redis", "paris", "music"]


def embed_texts(texts: list[str]) -> list[list[float]]:
    """A tiny bag-of-words embedding: one dimension per word of WORDS (plus one so no
    vector is zero), so the expected ranking is known."""
    return [[float(text.lower().count(word)) for word in WORDS] + [0.01] for text in texts]


class Embeddings:
    """An object shaped like LangChain's Embeddings, counting calls; async methods too."""

    def __init__(self) -> None:
        self.documents: list[list[str]] = []
        self.queries: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents.append(list(texts))
        return embed_texts(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries.append(text)
        return embed_texts([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_search_ranks_values_by_meaning_with_scores(make_memory_store: Any) -> None:
    memory = make_memory_store(embed=embed_texts)
    memory.put(USER, "drink", "Ada drinks coffee, never tea")
    memory.put(USER, "work", {"text": "writes python against redis", "year": 2024})
    memory.put(USER, "trip", "flew to paris for the music")
    hits = memory.search(USER, "what about redis and python?", limit=2)
    assert [hit.key for hit in hits] == ["work", "drink"]
    assert all(isinstance(hit, MemoryHit) for hit in hits)
    assert hits[0].value == {"text": "writes python against redis", "year": 2024}
    expected = cosine(
        embed_texts(["what about redis and python?"])[0],
        embed_texts(['{"text": "writes python against redis", "year": 2024}'])[0],
    )
    assert hits[0].score == pytest.approx(expected, rel=1e-5)
    assert hits[0].score > hits[1].score
    assert memory.search(USER, "paris")[0].key == "trip"
    assert memory.search(("user", "nobody"), "paris") == []


def test_fields_choose_what_is_embedded_and_the_best_text_counts(make_memory_store: Any) -> None:
    embeddings = Embeddings()
    memory = make_memory_store(embed=embeddings, embed_fields=["title", "tags"])
    memory.put(USER, "a", {"title": "coffee notes", "tags": ["paris"], "body": "redis redis"})
    memory.put(USER, "b", {"title": "tea", "body": "python python python"})
    assert embeddings.documents == [["coffee notes", "paris"], ["tea"]]
    # every embedded value is ranked; the body was not embedded, so nothing is close
    assert all(hit.score < 0.01 for hit in memory.search(USER, "redis python"))
    assert [hit.key for hit in memory.search(USER, "paris")] == ["a", "b"]
    assert [hit.key for hit in memory.search(USER, "tea")] == ["b", "a"]
    # per put: other paths, or none at all
    memory.put(USER, "c", {"title": "x", "body": "redis"}, index=["body"])
    memory.put(USER, "d", {"title": "redis"}, index=False)
    assert [hit.key for hit in memory.search(USER, "redis", limit=1)] == ["c"]
    assert "d" not in [hit.key for hit in memory.search(USER, "redis")]
    memory.mput(USER, {"e": {"title": "music"}, "f": {"title": "music and tea"}})
    assert embeddings.documents[-1] == ["music", "music and tea"]  # one call per put
    assert [hit.key for hit in memory.search(USER, "music", limit=2)] == ["e", "f"]


def test_a_value_replaced_without_embedding_is_no_longer_found(make_memory_store: Any) -> None:
    memory = make_memory_store(embed=embed_texts)
    memory.put(USER, "k", "coffee")
    assert [hit.key for hit in memory.search(USER, "coffee")] == ["k"]
    # the old embedding described the old value
    memory.put(USER, "k", "coffee again", index=False)
    assert memory.search(USER, "coffee") == []
    assert memory.get(USER, "k") == "coffee again"
    memory.put(USER, "k", "tea")
    memory.delete(USER, "k")
    assert memory.search(USER, "tea") == []


def test_an_async_embedding_function_serves_the_async_twin(
    harness: Harness, make_memory_store: Any
) -> None:
    async def embed(texts: list[str]) -> list[list[float]]:
        return embed_texts(texts)

    if harness.twin == "sync":
        memory = make_memory_store(embed=embed)
        with pytest.raises(ConfigurationError, match="asyncio store"):
            memory.put(USER, "k", "coffee")
        assert memory.list(USER) == []  # nothing written
        return
    memory = make_memory_store(embed=embed)
    memory.put(USER, "k", "coffee")
    assert [hit.key for hit in memory.search(USER, "coffee")] == ["k"]


def test_bad_configuration_and_arguments(make_memory_store: Any) -> None:
    with pytest.raises(ConfigurationError, match="embed"):
        make_memory_store(embed="text-embedding-3-small")
    with pytest.raises(ConfigurationError, match="embed_fields"):
        make_memory_store(embed=embed_texts, embed_fields="text")
    plain = make_memory_store()
    with pytest.raises(ConfigurationError, match="embed="):
        plain.search(USER, "coffee")
    with pytest.raises(ConfigurationError, match="embed="):
        plain.put(USER, "k", "v", index=["text"])
    memory = make_memory_store(embed=embed_texts)
    for query in ["", 3, None]:
        with pytest.raises(InvalidArgumentError):
            memory.search(USER, query)
    for limit in [0, -1, True, 1.5]:
        with pytest.raises(InvalidArgumentError):
            memory.search(USER, "coffee", limit=limit)
    with pytest.raises(InvalidArgumentError):
        memory.put(USER, "k", "v", index="text")


def test_an_embedding_function_that_misbehaves_writes_nothing(make_memory_store: Any) -> None:
    memory = make_memory_store(embed=lambda texts: [[1.0, 2.0]])  # one vector for any count
    with pytest.raises(ConfigurationError, match="one vector per text"):
        memory.mput(USER, {"a": "x", "b": "y"})
    ragged = make_memory_store(embed=lambda texts: [[1.0], [1.0, 2.0]])
    with pytest.raises(ConfigurationError, match="different sizes"):
        ragged.mput(USER, {"a": "x", "b": "y"})
    words = make_memory_store(embed=lambda texts: [["a", "b"] for _ in texts])
    with pytest.raises(ConfigurationError, match="not a list of numbers"):
        words.put(USER, "a", "x")
    assert memory.list(USER) == []


def test_a_query_of_other_dimensions_finds_nothing(make_memory_store: Any) -> None:
    small = make_memory_store(embed=lambda texts: [[1.0, 0.0] for _ in texts])
    small.put(USER, "k", "coffee")
    other = make_memory_store(embed=embed_texts)  # same prefix, another model
    assert other.search(USER, "coffee") == []
    assert [hit.key for hit in small.search(USER, "coffee")] == ["k"]


def test_embeddings_sit_beside_the_value_in_its_hash(
    harness: Harness, make_memory_store: Any
) -> None:
    if harness.backend == "memory":
        pytest.skip("memory:// has no Redis to inspect")
    memory = make_memory_store(embed=embed_texts)
    memory.put(USER, "k", "coffee")
    client = harness.client()
    [key] = [k for k in client.scan_iter(match=f"{harness.prefix}:mem:*:v:*")]
    blob = client.hget(key, "e")
    dims = len(WORDS) + 1
    assert len(blob) == 4 + 4 * dims  # a uint32 dimension count, then float32s
    assert int.from_bytes(blob[:4], "little") == dims
    memory.put(USER, "k", "tea", index=False)
    assert client.hget(key, "e") is None


def test_search_returns_values_a_sealed_store_wrote(make_memory_store: Any) -> None:
    keys = {"k1": bytes(range(32))}
    memory = make_memory_store(embed=embed_texts, encryption_keys=keys, compression="zlib")
    memory.put(USER, "drink", "Ada drinks coffee, never tea " * 20)
    memory.put(USER, "work", {"text": "writes python against redis"})
    hits = memory.search(USER, "python and redis", limit=1)
    assert [(hit.key, hit.value) for hit in hits] == [
        ("work", {"text": "writes python against redis"})
    ]


K1 = bytes(range(32))
K2 = bytes(range(100, 132))


def test_embeddings_are_encrypted_with_the_values(harness: Harness, make_memory_store: Any) -> None:
    """With encryption_keys, an embedding is sealed like its value (bound to the
    namespace and key): Redis holds no float of it, search still ranks, a store
    without the key cannot search what it cannot open, and a moved embedding is
    not found."""
    memory = make_memory_store(embed=embed_texts, encryption_keys={"k1": K1})
    memory.put(USER, "drink", "coffee and tea")
    memory.put(USER, "job", "python")
    assert [hit.key for hit in memory.search(USER, "python", limit=1)] == ["job"]
    if harness.backend == "memory":
        return  # nothing to inspect, no other store sees these values
    client = harness.client()
    keys = sorted(client.scan_iter(match=f"{harness.prefix}:mem:*:v:*"))
    plain = [*embed_texts(["coffee and tea"]), *embed_texts(["python"])]
    for key in keys:
        blob = client.hget(key, "e")
        assert blob[:4] == b"\x00ck1"  # the sealed envelope, not a dimension count
        for vector in plain:
            assert struct.pack(f"<{len(vector)}f", *vector) not in blob
    # a store with another key: the values cannot be opened, nor can the embeddings
    other = make_memory_store(embed=embed_texts, encryption_keys={"k2": K2})
    with pytest.raises(ConfigurationError, match="k1"):
        other.search(USER, "python")
    # an embedding copied onto another key's hash does not open there: not found
    drink = next(k for k in keys if k.endswith(b":v:drink"))
    job = next(k for k in keys if k.endswith(b":v:job"))
    client.hset(drink, "e", client.hget(job, "e"))
    assert [hit.key for hit in memory.search(USER, "python")] == ["job"]


def test_an_embedding_that_is_not_finite_writes_nothing(make_memory_store: Any) -> None:
    """NaN and infinite coordinates (and ones float32 cannot hold, such as 1e39) were
    stored; search then returned ``score=nan`` and ranked arbitrarily (red team,
    issue 16)."""
    for bad in [math.nan, math.inf, -math.inf, 1e39]:
        memory = make_memory_store(embed=lambda texts, bad=bad: [[bad, 1.0] for _ in texts])
        with pytest.raises(ConfigurationError, match="finite"):
            memory.put(USER, "k", "coffee")
        assert memory.list(USER) == []


def test_a_query_embedding_that_is_not_a_vector_is_a_clear_error(
    make_memory_store: Any,
) -> None:
    """A query embedded as NaN found everything with score 0.0; one of words or a bare
    number raised a raw ValueError/TypeError (red team, issue 16)."""
    for query_vector in [[math.nan, 1.0], ["a", "b"], 1.0, [math.inf, 0.0]]:

        def embed(texts: list[str], q: Any = query_vector) -> list[Any]:
            return [q if text == "QUERY" else [1.0, 0.0] for text in texts]

        memory = make_memory_store(embed=embed)
        memory.put(USER, "k", "coffee")
        with pytest.raises(ConfigurationError):
            memory.search(USER, "QUERY")


def test_an_empty_list_of_fields_embeds_nothing(make_memory_store: Any) -> None:
    """``index=[]`` (no path to embed) embedded the whole value, unlike LangGraph's
    stores, where an empty field list embeds nothing (red team, issue 16)."""
    memory = make_memory_store(embed=embed_texts)
    memory.put(USER, "k", {"text": "coffee"}, index=[])
    assert memory.search(USER, "coffee") == []
    assert memory.get(USER, "k") == {"text": "coffee"}
    with pytest.raises(InvalidArgumentError):  # a path that is not one was dropped
        memory.put(USER, "k", {"text": "coffee"}, index=[1])
    none = make_memory_store(embed=embed_texts, embed_fields=[])
    none.put(USER, "k2", {"text": "coffee"})
    assert none.search(USER, "coffee") == []
