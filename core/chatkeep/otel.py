"""Optional OpenTelemetry integration (``pip install "chatkeep[otel]"``).

>>> from chatkeep.otel import instrument
>>> instrumentation = instrument(store)          # global tracer/meter providers by default
>>> instrumentation.uninstrument()

Each store call becomes one CLIENT span and one ``db.client.operation.duration``
measurement, following the OpenTelemetry semantic conventions for database clients
and their Redis page:

* span name = ``db.operation.name`` = the chatkeep operation (``append``, ``read``,
  ``replace``, ``insert``, ``pop``, ``clear``, ``ttl``, ``info``, ``sessions``). A
  chatkeep call is one logical operation (a Lua script plus, at times, index updates
  in the same pipeline), so it is named after what the application asked for; an
  instrumented redis-py underneath adds one child span per Redis command.
* ``db.system.name="redis"``, ``db.namespace`` (the database index, when the URL
  tells it), ``server.address``, ``server.port``, ``error.type`` (the exception's
  qualified class name) and ``db.response.status_code`` (the Redis error prefix, e.g.
  ``WRONGTYPE``) on failure; ``chatkeep.prefix`` names the store's key namespace.
* No message content, no session id and no credentials are ever recorded.

Observable instruments export the store's counters (:meth:`ConversationStore.metrics`):
``chatkeep.errors`` (by ``chatkeep.error.kind``), ``chatkeep.fallback.transitions``
(by ``chatkeep.transition``: degraded/recovered), ``chatkeep.fallback.served``,
``chatkeep.fallback.journal.size``, ``chatkeep.fallback.replayed``,
``chatkeep.fallback.refused`` (writes refused with :class:`chatkeep.JournalFullError`
because the journal was full), ``chatkeep.fallback.rejected`` and
``chatkeep.records.skipped``.

The integration is one call hook of the store (entered around every call, sync or
async); :meth:`Instrumentation.uninstrument` removes it, and a store that is not
instrumented pays nothing for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError('chatkeep.otel needs OpenTelemetry: pip install "chatkeep[otel]"') from exc

from chatkeep import AsyncConversationStore, BackendError, ConversationStore, __version__

__all__ = ["DURATION_BUCKETS", "Instrumentation", "instrument"]

SCOPE = "chatkeep"
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""The buckets the semantic conventions advise for ``db.client.operation.duration``."""

Store = ConversationStore | AsyncConversationStore
_ERROR_PREFIX = re.compile(r"(?:^|: )([A-Z][A-Z_]{2,})\b")


def _base_attributes(store: Store) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "db.system.name": "redis",
        "chatkeep.prefix": store.config.prefix,
    }
    try:
        parts = urlsplit(store.config.url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return attrs
    if store.config.scheme in ("redis", "rediss"):
        if host:
            attrs["server.address"] = host
        attrs["server.port"] = port or 6379
        db = parts.path.strip("/")
        attrs["db.namespace"] = db if db.isdigit() else "0"
    return attrs


def _status_code(exc: BaseException) -> str | None:
    """The Redis error code (WRONGTYPE, NOAUTH, OOM...) behind a chatkeep error."""
    if isinstance(exc, BackendError) and exc.code:
        return exc.code
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith("redis."):
        # "WRONGTYPE Operation ...", or inside a script "Error running script ...: WRONGTYPE ..."
        match = _ERROR_PREFIX.search(str(cause))
        if match:
            return match.group(1)
    return None


class Instrumentation:
    """The OpenTelemetry instruments of one store; :meth:`uninstrument` undoes it."""

    def __init__(self, store: Store, tracer: Tracer, meter: Meter) -> None:
        self.store = store
        self._tracer = tracer
        self._active = True
        self._attrs = _base_attributes(store)
        self._duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._observe(meter)
        # The store enters its call hooks around every call, sync or async alike.
        store._hooks.append(self._call)

    # -- spans and durations ------------------------------------------------------------

    @contextmanager
    def _call(self, kind: str) -> Iterator[None]:
        """One store call: a CLIENT span and a duration, with the error if it fails."""
        attrs: dict[str, str | int] = {**self._attrs, "db.operation.name": kind}
        with self._tracer.start_as_current_span(
            kind,
            kind=SpanKind.CLIENT,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            started = perf_counter()
            try:
                yield
            except GeneratorExit:  # the call was abandoned, not failed
                raise
            except BaseException as exc:
                self._failed(span, attrs, exc)
                raise
            finally:
                self._duration.record(perf_counter() - started, attrs)

    def _failed(self, span: Any, attrs: dict[str, str | int], exc: BaseException) -> None:
        error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        attrs["error.type"] = error_type
        span.set_attribute("error.type", error_type)
        code = _status_code(exc)
        if code is not None:
            span.set_attribute("db.response.status_code", code)
        # The description is the type only: chatkeep's messages may name a session.
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    # -- counters -----------------------------------------------------------------------

    def _observe(self, meter: Meter) -> None:
        attrs = {k: v for k, v in self._attrs.items() if k != "db.namespace"}

        def callback_for(
            read: Callable[[Any], Iterable[Any]],
        ) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                if not self._active:
                    return []
                snap = self.store.metrics()
                return [Observation(value, {**attrs, **extra}) for value, extra in read(snap)]

            return callback

        def single(field: str) -> Callable[[Any], Iterable[Any]]:
            return lambda snap: [(getattr(snap, field), {})]

        counters = [
            (
                "chatkeep.errors",
                "{error}",
                "Failed store calls and unreachable-Redis events, by kind.",
                lambda snap: [(n, {"chatkeep.error.kind": k}) for k, n in snap.errors.items()],
            ),
            (
                "chatkeep.fallback.transitions",
                "{transition}",
                "Times Redis became unreachable (degraded) or came back (recovered).",
                lambda snap: [
                    (n, {"chatkeep.transition": k}) for k, n in snap.fallback_transitions.items()
                ],
            ),
            (
                "chatkeep.fallback.served",
                "{operation}",
                "Calls served by the in-memory fallback.",
                single("served_by_fallback"),
            ),
            (
                "chatkeep.fallback.replayed",
                "{write}",
                "Journaled writes replayed to Redis.",
                single("replayed"),
            ),
            (
                "chatkeep.fallback.refused",
                "{write}",
                "Writes refused (JournalFullError) because the fallback journal was full.",
                single("journal_refused"),
            ),
            (
                "chatkeep.fallback.rejected",
                "{write}",
                "Journaled writes Redis refused on replay.",
                single("replay_rejected"),
            ),
            (
                "chatkeep.records.skipped",
                "{record}",
                "Stored records that could not be decoded and were skipped.",
                single("skipped_records"),
            ),
        ]
        for name, unit, description, read in counters:
            meter.create_observable_counter(
                name,
                callbacks=[callback_for(read)],
                unit=unit,
                description=description,
            )
        meter.create_observable_up_down_counter(
            "chatkeep.fallback.journal.size",
            callbacks=[callback_for(single("journal_size"))],
            unit="{write}",
            description="Writes in the fallback journal, waiting for replay.",
        )

    def uninstrument(self) -> None:
        """Stop making spans and measurements for this store."""
        if self._active:
            self._active = False
            hooks = self.store._hooks
            if self._call in hooks:
                hooks.remove(self._call)
            vars(self.store).pop("_otel", None)


def instrument(
    store: Store,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Instrumentation:
    """Make spans and metrics for every call of ``store`` (sync or async).

    Uses the global providers unless others are given. Instrumenting a store twice
    returns the first :class:`Instrumentation`.
    """
    existing = vars(store).get("_otel")
    if isinstance(existing, Instrumentation):
        return existing
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
    meter = otel_metrics.get_meter(SCOPE, __version__, meter_provider)
    instrumentation = Instrumentation(store, tracer, meter)
    vars(store)["_otel"] = instrumentation
    return instrumentation
