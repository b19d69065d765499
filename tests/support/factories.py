"""Factories that fixtures hand to tests and close after them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def remembering(build: Callable[..., T], made: list[T], **defaults: Any) -> Callable[..., T]:
    """``build(**options)`` with ``defaults`` for the options not given; each object it
    makes is appended to ``made``, for the fixture to close when the test is done."""

    def make(**options: Any) -> T:
        made.append(build(**{**defaults, **options}))
        return made[-1]

    return make
