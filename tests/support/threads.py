"""Running one function in many threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def in_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """``target(0)`` … ``target(count - 1)``, each in a thread of its own, all started
    before any is joined; what they returned, in that order (None where one raised)."""
    results: list[Any] = [None] * count

    def run(n: int) -> None:
        results[n] = target(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
