"""examples/fastapi_app.py, the deployment recipe: a FastAPI app whose lifespan opens
the store, flushes the fallback journal and closes the store; driven through FastAPI's
TestClient (httpx) against throwaway redis-servers."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from chatkeep import ConversationStore
from tests.support.servers import RedisServer, TcpProxy

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app.py"
ADA = {"X-User-Id": "ada"}


def load_app() -> ModuleType:
    """A fresh import of the example (its module-level app and lifespan)."""
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, prefix: str) -> Iterator[object]:
    """Point the app (configured from the environment) at a URL, under the test's prefix."""

    def at(url: str) -> None:
        monkeypatch.delenv("CHATKEEP_URL", raising=False)
        monkeypatch.setenv("REDIS_URL", url)
        monkeypatch.setenv("CHATKEEP_PREFIX", prefix)

    yield at


def stored_texts(url: str, prefix: str, session: str) -> list[str]:
    with ConversationStore.from_url(url, prefix=prefix, fallback="raise") as store:
        return [m.text for m in store.messages(session)]


@pytest.mark.redis_server
def test_a_conversation_through_the_api_is_kept_in_redis(
    redis_server: RedisServer, configure: object, prefix: str
) -> None:
    configure(redis_server.url)  # type: ignore[operator]
    example = load_app()
    with TestClient(example.app) as client:
        first = client.post("/sessions/chat-1/messages", json={"content": "hi"}, headers=ADA)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "reply": "You asked 0 question(s) before this one: 'hi'.",
            "messages": 2,
        }
        retry = {**ADA, "Idempotency-Key": "turn-2"}
        for _ in range(2):  # a retried POST stores its turn once
            second = client.post(
                "/sessions/chat-1/messages", json={"content": "again"}, headers=retry
            )
            assert second.status_code == 200, second.text
        assert second.json()["messages"] == 4
        listed = client.get("/sessions/chat-1/messages", headers=ADA).json()
        assert [m["role"] for m in listed] == ["user", "assistant", "user", "assistant"]
        assert client.get("/health").json() == {"redis": "ok", "pending_replay": 0}
    assert stored_texts(redis_server.url, prefix, "chat-1")[::2] == ["hi", "again"]


@pytest.mark.redis_server
def test_another_user_gets_403_and_bad_input_422(
    redis_server: RedisServer, configure: object
) -> None:
    configure(redis_server.url)  # type: ignore[operator]
    example = load_app()
    with TestClient(example.app) as client:
        assert (
            client.post("/sessions/s/messages", json={"content": "mine"}, headers=ADA).status_code
            == 200
        )
        bob = {"X-User-Id": "bob"}
        denied = client.get("/sessions/s/messages", headers=bob)
        assert denied.status_code == 403
        assert "mine" not in denied.text
        assert client.delete("/sessions/s", headers=bob).status_code == 403
        too_long = "x" * 600  # session ids are 1..512 characters
        assert client.get(f"/sessions/{too_long}/messages", headers=ADA).status_code == 422
        assert client.delete("/sessions/s", headers=ADA).status_code == 204
        assert client.get("/sessions/s/messages", headers=ADA).json() == []


@pytest.mark.redis_server
def test_shutdown_replays_what_was_journaled_during_an_outage(
    proxy: TcpProxy, fresh_redis_server: RedisServer, configure: object, prefix: str
) -> None:
    """Turns taken while Redis is cut off are answered (fallback) and journaled; the
    lifespan's shutdown flushes them to Redis once it answers, before closing."""
    configure(proxy.url)  # type: ignore[operator]
    example = load_app()
    with TestClient(example.app) as client:
        client.post("/sessions/chat-9/messages", json={"content": "before"}, headers=ADA)
        proxy.cut()
        during = client.post("/sessions/chat-9/messages", json={"content": "during"}, headers=ADA)
        assert during.status_code == 200, during.text
        assert during.json()["messages"] == 4
        health = client.get("/health").json()
        assert health["redis"] == "degraded" and health["pending_replay"] >= 1
        assert stored_texts(fresh_redis_server.url, prefix, "chat-9")[::2] == ["before"]
        proxy.restore()
    # Leaving the client ran the lifespan's shutdown: flush, then close.
    assert stored_texts(fresh_redis_server.url, prefix, "chat-9")[::2] == ["before", "during"]
