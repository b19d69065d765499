"""RedisStore's semantic search on its own terms (LangGraph's own tests are in
test_upstream_*): the kinds of embedding LangGraph accepts, float32 vectors beside the
item, exact cosine scores with and without numpy, refresh of only what is returned,
and bad index configurations raising chatkeep's errors."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import chatkeep.vectors
import chatkeep_langgraph.store as store_module
from chatkeep import ConfigurationError
from chatkeep_langgraph import RedisStore

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis_server),
]

# three fixed unit vectors: "cat" and "kitten" are close, "car" is far
VECTORS = {
    "cat": [1.0, 0.0, 0.0],
    "kitten": [0.8, 0.6, 0.0],
    "car": [0.0, 0.0, 1.0],
    "pets": [0.9, 0.1, 0.1],
}


def embed(texts: Sequence[str]) -> list[list[float]]:
    return [VECTORS.get(t, [0.5, 0.5, 0.5]) for t in texts]


async def aembed(texts: Sequence[str]) -> list[list[float]]:
    return embed(texts)


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture
def store(url: str, prefix: str) -> Iterator[RedisStore]:
    made = RedisStore(url, prefix=prefix, index={"dims": 3, "embed": embed, "fields": ["text"]})
    yield made
    made.close()


def _fill(store: RedisStore) -> None:
    store.put(("m",), "a", {"text": "cat", "kind": "pet"})
    store.put(("m",), "b", {"text": "kitten", "kind": "pet"})
    store.put(("m",), "c", {"text": "car", "kind": "thing"})
    store.put(("m",), "d", {"text": "cat"}, index=False)  # no vector: last, score None


@pytest.mark.parametrize("with_numpy", [True, False], ids=["numpy", "pure-python"])
def test_scores_are_exact_cosine(
    store: RedisStore, with_numpy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not with_numpy:
        monkeypatch.setattr(chatkeep.vectors, "np", None)
    _fill(store)
    found = store.search(("m",), query="pets")
    assert [i.key for i in found] == ["a", "b", "c", "d"]
    for item in found[:3]:
        expected = _cos(VECTORS["pets"], VECTORS[item.value["text"]])
        assert item.score == pytest.approx(expected, abs=1e-6)
    assert found[3].score is None
    assert [i.key for i in store.search(("m",), query="pets", filter={"kind": "pet"})] == [
        "a",
        "b",
    ]
    assert [i.key for i in store.search(("m",), query="pets", limit=1, offset=1)] == ["b"]
    assert all(i.score is None for i in store.search(("m",)))  # no query: no scores


def test_vectors_are_float32_beside_the_item(store: RedisStore) -> None:
    store.put(("m",), "a", {"text": "cat", "other": "car"}, index=["text", "other"])
    record = store.memory.get(("m",), "a")
    assert [path for path, _ in record["e"]] == ["text", "other"]
    assert all(len(store_module.binascii.a2b_base64(v)) == 3 * 4 for _, v in record["e"])
    found = store.search(("m",), query="car")
    assert found[0].score == pytest.approx(1.0)  # the best of the item's vectors
    item = store.get(("m",), "a")
    assert item is not None and item.value == {"text": "cat", "other": "car"}


async def test_async_embedding_function_and_abatch(url: str, prefix: str) -> None:
    store = RedisStore(url, prefix=prefix, index={"dims": 3, "embed": aembed, "fields": ["text"]})
    try:
        await store.aput(("m",), "a", {"text": "cat"})
        await store.aput(("m",), "c", {"text": "car"})
        found = await store.asearch(("m",), query="kitten")
        assert [i.key for i in found] == ["a", "c"]
        assert found[0].score == pytest.approx(0.8)
    finally:
        store.close()


def test_search_refreshes_only_what_it_returns(url: str, prefix: str) -> None:
    store = RedisStore(
        url,
        prefix=prefix,
        ttl={"default_ttl": 1},
        index={"dims": 3, "embed": embed, "fields": ["text"]},
    )
    try:
        store.put(("m",), "a", {"text": "cat"})
        store.put(("m",), "c", {"text": "car"})
        time.sleep(1.2)
        store.search(("m",), query="cat", limit=1)
        ttl_a = store.memory.ttl(("m",), "a")
        ttl_c = store.memory.ttl(("m",), "c")
        assert ttl_a is not None and ttl_a > 59.5  # returned: slid back to its minute
        assert ttl_c is not None and ttl_c < 59.0  # scanned, not returned: untouched
    finally:
        store.close()


@pytest.mark.parametrize(
    "index",
    [
        {"dims": 0, "embed": embed},
        {"dims": "3", "embed": embed},
        {"dims": 3},
        {"dims": 3, "embed": embed, "fields": "text"},
        {"dims": 3, "embed": embed, "distance_type": "l2"},
    ],
)
def test_bad_index_configurations(index: Any) -> None:
    with pytest.raises(ConfigurationError):
        RedisStore("memory://", index=index)


def test_wrong_dimensions_raise(store: RedisStore) -> None:
    bad = RedisStore("memory://", index={"dims": 4, "embed": embed})
    with pytest.raises(ConfigurationError):
        bad.put(("m",), "a", {"text": "cat"})
    assert bad.get(("m",), "a") is None  # nothing written
