"""LangGraph's checkpointer conformance suite (langgraph-checkpoint-conformance) against
the memory backend, a real redis-server and a real Redis Cluster: every
capability (5 base, 3 optional: 8/8) must pass."""

from __future__ import annotations

from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport

from chatkeep_langgraph import RedisSaver

IMPLEMENTED = {
    "put",
    "put_writes",
    "get_tuple",
    "list",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
}
assert {c.value for c in ALL_CAPABILITIES} == IMPLEMENTED  # every capability there is (8)


async def _run(url: str, prefix: str, **options: object) -> CapabilityReport:
    @checkpointer_test(name=f"RedisSaver[{url.split(':', 1)[0]}]")
    async def factory() -> AsyncIterator[RedisSaver]:
        saver = RedisSaver(url, key_prefix=prefix, **options)  # type: ignore[arg-type]
        yield saver
        await saver.aclose()

    report = await validate(factory)
    report.print_report()
    return report


def _check(report: CapabilityReport) -> None:
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    assert report.passed_all(), failures
    passed = {name for name, r in report.results.items() if r.detected and r.passed}
    assert passed == IMPLEMENTED
    assert report.conformance_level() == "FULL"


async def test_conformance(url: str, prefix: str) -> None:
    _check(await _run(url, prefix))


async def test_conformance_fallback_off_and_fixed_ttl(url: str, prefix: str) -> None:
    """Same suite with the other policy switches (no mirror, fixed TTL)."""
    _check(await _run(url, prefix, fallback="raise", ttl_mode="fixed", ttl=600))
