"""Key prefixes up to 256 characters: langchain-redis's own tests use a ~170-character
``key_prefix`` (test_langchain_redis_suite.py::test_very_long_key_prefix)."""

from __future__ import annotations

import pytest

from chatkeep import ConfigurationError, StoreConfig
from chatkeep.redis import KeySchema


def test_a_prefix_of_256_characters_is_accepted_and_257_refused() -> None:
    prefix = "very_long_prefix_" * 15 + "x" * 1  # 256 characters
    assert len(prefix) == 256
    assert KeySchema(prefix).session("s")[0] == prefix + ":{s}:m"
    assert StoreConfig.create(prefix=prefix).prefix == prefix
    with pytest.raises(ConfigurationError, match=r"1\.\.256 characters"):
        KeySchema(prefix + "y")
