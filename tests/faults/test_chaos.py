"""The short chaos drill (issue 14): writer threads and processes over many sessions
while Redis is SIGKILLed and restarted (AOF), cut off by a proxy and over maxmemory;
every acknowledged append must be in Redis exactly once, in each writer's order, and
no destructive replay may remove a later write. ``make chaos`` runs a longer one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.chaos import drill

pytestmark = [pytest.mark.redis_server, pytest.mark.slow]


def test_short_chaos_drill_keeps_the_promise(record_property: Any) -> None:
    lines: list[str] = []
    figures = drill(
        seconds=8,
        seed=14,
        threads=6,
        processes=2,
        process_threads=3,
        sessions=24,
        say=lines.append,
    )
    report = "\n".join(lines)
    record_property("chaos", report)
    print("\n" + report)
    assert figures.acked > 1000, report
    assert len(figures.faults) >= 3, report
    assert (figures.lost, figures.duplicated, figures.disorder, figures.phantoms) == (
        0,
        0,
        0,
        0,
    ), report
    assert figures.errors == {}, report
