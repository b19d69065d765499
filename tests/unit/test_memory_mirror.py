"""The long-term memory mirror keeps the embeddings a search read, within its bounds."""

from __future__ import annotations

from chatkeep.memory.local import LocalMemory
from chatkeep.memory.ops import Get, Put, Vectors


def test_embeddings_read_by_a_search_are_kept_for_held_values_within_the_byte_bound() -> None:
    mirror = LocalMemory(sliding=True, max_bytes=100)
    mirror.absorb(Put("n", [("a", b"x" * 10, False, 0), ("b", b"y" * 10, False, 0)]), 2)
    mirror.absorb(Vectors("n", ["a", "b", "c"]), [b"v" * 60, None, b"w" * 60])
    assert mirror.do(Vectors("n", ["a", "b", "c"])) == [b"v" * 60, None, None]  # c not held
    mirror.absorb(Vectors("n", ["b"]), [b"w" * 60])  # 140 bytes: the oldest value goes
    assert mirror.do(Vectors("n", ["a", "b"])) == [None, b"w" * 60]
    assert mirror.do(Get("n", ["a"])) == [None]


def test_a_value_read_back_changed_drops_the_embedding_it_had() -> None:
    mirror = LocalMemory(sliding=True)
    mirror.absorb(Put("n", [("a", b"1", False, 0)], {"a": b"old"}), 1)
    mirror.absorb(Get("n", ["a"]), [(b"2", False, 0)])
    assert mirror.do(Vectors("n", ["a"])) == [None]
    # a search's read answers the embeddings as Redis holds them now
    mirror.absorb(Get("n", ["a"], vectors={"a": b"ranked"}), ([(b"2", False, 0)], [b"new"]))
    assert mirror.do(Vectors("n", ["a"])) == [b"new"]
