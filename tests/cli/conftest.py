"""Run the ``chatkeep`` command in-process (or as a real process) and seed data."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")

from click.testing import CliRunner

from chatkeep import ConversationStore, Message, ToolCall
from chatkeep.cli import main
from tests.support.servers import RedisServer


@dataclass
class Result:
    code: int
    out: str
    err: str


Invoke = Callable[..., Result]


def invoke_cli(
    args: Sequence[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    """``chatkeep ARGS`` in this process, as the console script runs it."""
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as streams:
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return Result(code, out.decode(), err.decode())


def run_process(args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``chatkeep ARGS`` as a real process (``python -m chatkeep.cli``)."""
    return subprocess.run(
        [sys.executable, "-m", "chatkeep.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def chatkeep(redis_server: RedisServer, prefix: str) -> Invoke:
    """``chatkeep --url <test server> --prefix <test prefix> ARGS``."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return invoke_cli(
            ["--url", redis_server.url, "--prefix", prefix, *args], input=input, env=env
        )

    return run


@pytest.fixture
def store(redis_server: RedisServer, prefix: str) -> Iterator[ConversationStore]:
    with ConversationStore.from_url(redis_server.url, key_prefix=prefix, fallback="raise") as s:
        yield s


def seed(store: ConversationStore) -> dict[str, list[Message]]:
    """A few sessions of two owners and none: text, tool calls, parts, bytes."""
    conversations = {
        "chat-42": (
            "u1",
            [
                Message(role="system", content="You are terse."),
                Message(role="user", content="Weather in [Paris]?"),
                Message(
                    role="assistant",
                    tool_calls=[ToolCall(id="c1", name="weather", arguments={"city": "Paris"})],
                ),
                Message(role="tool", content="18°C", tool_call_id="c1"),
                Message(
                    role="assistant",
                    content=[
                        {"type": "text", "text": "It is 18°C."},
                        {"type": "image_url", "image_url": {"url": "https://example.invalid/x"}},
                    ],
                    metadata={"raw": b"\x00\xff", "tokens": 7},
                ),
            ],
        ),
        "chat 43 {odd} id": ("u1", [Message(role="user", content=f"m{i}") for i in range(7)]),
        "u2-only": (
            "u2",
            [Message(role="user", content="hello"), Message(role="ai", content="hi")],
        ),
        "anonymous": (None, [Message(role="user", content="who am I?")]),
    }
    for sid, (owner, messages) in conversations.items():
        store.append(sid, messages, owner=owner)
    return {sid: messages for sid, (_, messages) in conversations.items()}
