"""Flows: every Redis operation written once, for sync and async code alike.

A flow is a generator. It yields what it needs done and receives the outcome:

* a ``list`` of commands: sent in one round trip; it receives their replies, in
  order, an error reply in its place as the exception (raise it with
  :func:`chatkeep.redis.check`); a failure of the connection itself is raised into
  the flow as :class:`Unreachable` (or as the chatkeep error it translates to);
* :class:`Sleep`: wait that long (``time.sleep`` or ``asyncio.sleep``);
* :class:`Call`: call a function of the caller's (``await`` it in async code) and
  receive its result.

Two small drivers run flows: :func:`run` with a synchronous connection and
:func:`arun` with an asyncio one, the way httpx drives its auth flows. What a flow
returns is the operation's result. Anything raised into a flow (including
``KeyboardInterrupt`` or a cancellation) runs its ``except``/``finally`` clauses, so
state such as the circuit's is always restored.

:func:`gather` runs several flows side by side, one shared round trip per step.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

__all__ = [
    "NO_IO",
    "Call",
    "Command",
    "Flow",
    "Sleep",
    "arun",
    "async_method",
    "done",
    "gather",
    "run",
    "sync_method",
]

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")

Command = tuple[Any, ...]
"""One Redis command: ``("LRANGE", key, 0, -1)``."""


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Call:
    """Call ``function(*args)``; in async code a coroutine function is awaited."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()


Step = list[Command] | Sleep | Call
Flow = Generator[Step, Any, T]
"""A generator that yields steps and returns the operation's result."""


class Sender(Protocol):
    def send(self, commands: list[Command]) -> list[Any]: ...


class AsyncSender(Protocol):
    async def asend(self, commands: list[Command]) -> list[Any]: ...


def run(flow: Flow[T], sender: Sender) -> T:
    """Drive ``flow`` to its result with synchronous I/O."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value = error = None
        try:
            if type(step) is list:
                value = sender.send(step)
            elif type(step) is Sleep:
                time.sleep(step.seconds)
            elif type(step) is Call:
                value = step.function(*step.args)
            else:
                raise TypeError(f"a flow yielded {type(step).__name__}")
        except BaseException as exc:  # into the flow, whose finally clauses must run
            error = exc


async def arun(flow: Flow[T], sender: AsyncSender) -> T:
    """Drive ``flow`` to its result with asyncio I/O."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value = error = None
        try:
            if type(step) is list:
                value = await sender.asend(step)
            elif type(step) is Sleep:
                await asyncio.sleep(step.seconds)
            elif type(step) is Call:
                value = step.function(*step.args)
                if inspect.isawaitable(value):
                    value = await value
            else:
                raise TypeError(f"a flow yielded {type(step).__name__}")
        except BaseException as exc:
            error = exc


def done(value: T) -> Flow[T]:
    """A flow that needs nothing and returns ``value``."""
    return value
    yield  # pragma: no cover  (makes this a generator)


def gather(flows: Sequence[Flow[Any]]) -> Flow[list[Any]]:
    """Run ``flows`` side by side: the commands of their next steps go in one round
    trip. Returns each flow's result, or the exception it raised, in order. Only
    command steps are allowed. When a round trip itself fails, the flows still
    running are closed and the failure is raised."""
    results: list[Any] = [None] * len(flows)
    pending: dict[int, list[Command]] = {}

    def advance(i: int, value: Any) -> None:
        try:
            step = flows[i].send(value)
        except StopIteration as stop:
            results[i] = stop.value
            return
        except Exception as exc:
            results[i] = exc
            return
        if type(step) is not list:
            flows[i].close()
            raise TypeError("gather runs flows of command steps only")
        pending[i] = step

    for i in range(len(flows)):
        advance(i, None)
    while pending:
        order = sorted(pending)
        batch = [command for i in order for command in pending[i]]
        try:
            replies = yield batch
        except BaseException:
            for i in order:
                flows[i].close()
            raise
        at = 0
        for i in order:
            count = len(pending.pop(i))
            advance(i, replies[at : at + count])
            at += count
    return results


class _NoIO:
    """The sender of stores that keep everything in this process (``memory://``)."""

    def send(self, commands: list[Command]) -> list[Any]:
        raise AssertionError("a local store sent Redis commands")  # pragma: no cover

    async def asend(self, commands: list[Command]) -> list[Any]:
        raise AssertionError("a local store sent Redis commands")  # pragma: no cover


NO_IO = _NoIO()


def _named(method: Any, flow: Callable[..., Any], *, awaited: bool) -> None:
    """The public method takes the flow's docs and signature (returning what the flow
    returns), and its name without the underscore; the class it is set on fixes its
    qualified name (:class:`chatkeep.redis.RedisBacked`)."""
    functools.update_wrapper(method, flow)
    del method.__wrapped__
    name = flow.__name__.lstrip("_")
    method.__name__ = name
    method.__qualname__ = name
    method.__twin__ = "async" if awaited else "sync"
    signature = inspect.signature(flow)
    returned = signature.return_annotation
    if isinstance(returned, str) and returned.startswith("Flow[") and returned.endswith("]"):
        signature = signature.replace(return_annotation=returned[5:-1])
    method.__signature__ = signature


def sync_method(flow: Callable[Concatenate[S, P], Flow[T]]) -> Callable[Concatenate[S, P], T]:
    """The public method of a sync twin, from the flow ``flow`` (``_append`` makes
    ``append``): it drives the flow with ``self._drive``. The flow is the one place
    the operation is written."""

    def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = self._drive(flow(self, *args, **kwargs))  # type: ignore[attr-defined]
        return result

    _named(method, flow, awaited=False)
    return method


def async_method(
    flow: Callable[Concatenate[S, P], Flow[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """The public method of an asyncio twin: awaits ``self._adrive`` of the flow."""

    async def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await self._adrive(flow(self, *args, **kwargs))  # type: ignore[attr-defined]
        return result

    _named(method, flow, awaited=True)
    return method
