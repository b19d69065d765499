"""chatkeep.otel with the OpenTelemetry SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from chatkeep import (
    AsyncConversationStore,
    BackendError,
    ConversationStore,
    JournalFullError,
    Message,
    SessionOwnershipError,
)
from chatkeep.otel import instrument
from tests.support.servers import RedisServer

SECRET = "TOP-SECRET-CONTENT"


@pytest.fixture
def otel() -> Any:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield exporter, reader, tracer_provider, meter_provider
    meter_provider.shutdown()
    tracer_provider.shutdown()


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "chatkeep"
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


@pytest.mark.redis_server
def test_spans_and_metrics_follow_the_database_conventions(
    otel: Any, redis_server: RedisServer, prefix: str
) -> None:
    exporter, reader, tracer_provider, meter_provider = otel
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    instrumentation = instrument(
        store, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    assert instrument(store) is instrumentation
    store.append("s", Message(role="user", content=SECRET), owner="alice")
    store.messages("s")
    with pytest.raises(SessionOwnershipError):
        store.messages("s", owner="mallory")

    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["append", "read", "read"]
    ok = spans[0]
    assert ok.kind is SpanKind.CLIENT
    attrs = dict(ok.attributes or {})
    assert attrs["db.system.name"] == "redis"
    assert attrs["db.operation.name"] == "append"
    assert attrs["db.namespace"] == "0"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == redis_server.port
    assert attrs["chatkeep.prefix"] == prefix
    assert ok.status.status_code is StatusCode.UNSET
    failed = spans[2]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "chatkeep.errors.SessionOwnershipError"
    everything = repr([(s.name, dict(s.attributes or {}), s.status, s.events) for s in spans])
    assert SECRET not in everything and "alice" not in everything and "mallory" not in everything

    points = metric_points(reader)
    durations = points["db.client.operation.duration"]
    by_op = {
        (p.attributes["db.operation.name"], p.attributes.get("error.type")): p for p in durations
    }
    assert by_op[("append", None)].count == 1
    assert by_op[("read", None)].count == 1
    assert by_op[("read", "chatkeep.errors.SessionOwnershipError")].count == 1
    assert all(p.attributes["db.system.name"] == "redis" for p in durations)
    assert list(by_op[("append", None)].explicit_bounds)[:3] == [0.001, 0.005, 0.01]
    errors = {p.attributes["chatkeep.error.kind"]: p.value for p in points["chatkeep.errors"]}
    assert errors["ownership"] == 1
    transitions = {
        p.attributes["chatkeep.transition"]: p.value
        for p in points["chatkeep.fallback.transitions"]
    }
    assert transitions == {"degraded": 0, "recovered": 0}
    for name in (
        "chatkeep.fallback.served",
        "chatkeep.fallback.replayed",
        "chatkeep.fallback.refused",
        "chatkeep.fallback.rejected",
        "chatkeep.fallback.journal.size",
        "chatkeep.records.skipped",
    ):
        assert [p.value for p in points[name]] == [0], name

    instrumentation.uninstrument()
    store.messages("s")
    assert len(exporter.get_finished_spans()) == 3
    store.close()


@pytest.mark.redis_server
def test_redis_error_code_is_recorded(otel: Any, redis_server: RedisServer, prefix: str) -> None:
    import redis

    exporter, _, tracer_provider, meter_provider = otel
    redis.Redis.from_url(redis_server.url).set(f"{prefix}:{{s}}:h", "not a hash")
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    instrument(store, tracer_provider=tracer_provider, meter_provider=meter_provider)
    with pytest.raises(BackendError):
        store.append("s", Message(role="user", content="x"))
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["db.response.status_code"] == "WRONGTYPE"
    assert span.attributes["error.type"] == "chatkeep.errors.BackendError"
    store.close()


async def test_async_store_is_instrumented(otel: Any) -> None:
    exporter, reader, tracer_provider, meter_provider = otel
    store = AsyncConversationStore.from_url("memory://")
    instrument(store, tracer_provider=tracer_provider, meter_provider=meter_provider)
    await store.append("s", Message(role="user", content="hi"))
    assert [m.text for m in await store.messages("s")] == ["hi"]
    assert [s.name for s in exporter.get_finished_spans()] == ["append", "read"]
    durations = metric_points(reader)["db.client.operation.duration"]
    assert sum(p.count for p in durations) == 2
    await store.aclose()


@pytest.mark.redis_server
def test_fallback_counters_reach_opentelemetry(otel: Any, fresh_redis_server: RedisServer) -> None:
    _, reader, tracer_provider, meter_provider = otel
    store = ConversationStore.from_url(fresh_redis_server.url, probe_interval=60)
    instrument(store, tracer_provider=tracer_provider, meter_provider=meter_provider)
    store.append("s", Message(role="user", content="a"))
    fresh_redis_server.stop()
    store.append("s", Message(role="user", content="b"))
    store.append("s", Message(role="user", content="c"))
    points = metric_points(reader)
    transitions = {
        p.attributes["chatkeep.transition"]: p.value
        for p in points["chatkeep.fallback.transitions"]
    }
    assert transitions["degraded"] == 1
    assert [p.value for p in points["chatkeep.fallback.journal.size"]] == [2]
    assert [p.value for p in points["chatkeep.fallback.served"]] == [2]
    errors = {p.attributes["chatkeep.error.kind"]: p.value for p in points["chatkeep.errors"]}
    assert errors["unreachable"] == 1


@pytest.mark.redis_server
def test_refused_writes_reach_opentelemetry(otel: Any, fresh_redis_server: RedisServer) -> None:
    exporter, reader, tracer_provider, meter_provider = otel
    store = ConversationStore.from_url(fresh_redis_server.url, probe_interval=60, journal_size=1)
    instrument(store, tracer_provider=tracer_provider, meter_provider=meter_provider)
    store.append("s", Message(role="user", content="a"))
    fresh_redis_server.stop()
    store.append("s", Message(role="user", content="b"))  # journaled
    with pytest.raises(JournalFullError):
        store.append("s", Message(role="user", content="c"))  # the journal is full
    points = metric_points(reader)
    assert [p.value for p in points["chatkeep.fallback.refused"]] == [1]
    assert [p.value for p in points["chatkeep.fallback.journal.size"]] == [1]
    refused = exporter.get_finished_spans()[-1]
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == "chatkeep.errors.JournalFullError"
    fresh_redis_server.start()
    store.close()


def test_instrumentation_is_a_call_hook_that_uninstrument_removes(otel: Any) -> None:
    exporter, _, tracer_provider, meter_provider = otel
    store = ConversationStore.from_url("memory://")
    before = dict(vars(store))
    instrumentation = instrument(
        store, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    # Nothing of the store is replaced: one hook is added to its call hooks.
    assert store._hooks == [instrumentation._call]
    assert {k for k in vars(store) if k not in before} == {"_otel"}
    store.append("s", Message(role="user", content="hi"))
    instrumentation.uninstrument()
    assert store._hooks == [] and vars(store).keys() == before.keys()
    store.append("s", Message(role="user", content="again"))
    assert [s.name for s in exporter.get_finished_spans()] == ["append"]
    assert instrument(store, tracer_provider=tracer_provider) is not instrumentation
    store.close()


@pytest.mark.redis_server
async def test_concurrent_async_calls_keep_their_own_spans(
    otel: Any, redis_server: RedisServer, prefix: str
) -> None:
    """The hook's span stays current across the awaits of its own call only: calls
    interleaved on one loop each nest under the span of the task that made them."""
    import asyncio

    from opentelemetry import trace

    exporter, _, tracer_provider, meter_provider = otel
    tracer = trace.get_tracer("test", tracer_provider=tracer_provider)
    store = AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix)
    instrument(store, tracer_provider=tracer_provider, meter_provider=meter_provider)

    async def request(name: str) -> None:
        with tracer.start_as_current_span(name):
            for i in range(5):
                await store.append(name, Message(role="user", content=str(i)))
                await store.messages(name)

    await asyncio.gather(*(request(f"req{n}") for n in range(4)))
    spans = exporter.get_finished_spans()
    parents = {s.context.span_id: s.name for s in spans if s.name.startswith("req")}
    ours = [s for s in spans if not s.name.startswith("req")]
    assert len(ours) == 4 * 10
    for span in ours:
        assert span.parent is not None and span.parent.span_id in parents
    by_parent: dict[str, int] = {}
    for span in ours:
        assert span.parent is not None
        name = parents[span.parent.span_id]
        by_parent[name] = by_parent.get(name, 0) + 1
    assert by_parent == {f"req{n}": 10 for n in range(4)}
    await store.aclose()
