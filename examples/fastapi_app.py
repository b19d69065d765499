"""A chat API on FastAPI whose conversations live in Redis through chatkeep.

    pip install "chatkeep[fast]" fastapi uvicorn
    REDIS_URL=redis://localhost:6379/0 uvicorn examples.fastapi_app:app

The store is configured from the environment (``CHATKEEP_*``, the URL also from
``REDIS_URL``), opened when the app starts and closed when it stops: the lifespan
first replays what the fallback journaled during an outage (``flush``), then closes
the store, which gives the connection pool back. The model is an offline stand-in
(``answer``): put your LLM call there.

    POST   /sessions/{id}/messages   {"content": "..."}  -> the reply and the session's length
    GET    /sessions/{id}/messages   -> the conversation
    DELETE /sessions/{id}            -> 204
    GET    /health                   -> whether Redis is reached, what waits for replay

The caller's user id comes in the ``X-User-Id`` header (in a real app: from your
authentication) and owns the sessions it starts; an ``Idempotency-Key`` header makes a
retried POST store its turn once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chatkeep import (
    AsyncConversationStore,
    ChatkeepError,
    InvalidArgumentError,
    Message,
    SessionOwnershipError,
)

logger = logging.getLogger("chat_api")

HISTORY_WINDOW = 20  # messages the model sees per turn, read from the tail


class Turn(BaseModel):
    content: str = Field(min_length=1, max_length=10_000)


class Reply(BaseModel):
    reply: str
    messages: int


class StoredMessage(BaseModel):
    role: str
    text: str


def answer(history: list[Message], question: str) -> str:
    """The model (offline stand-in): replace with your LLM call."""
    asked = sum(1 for m in history if m.role == "user")
    return f"You asked {asked} question(s) before this one: {question!r}."


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    store = AsyncConversationStore.from_env()
    app.state.store = store
    try:
        yield
    finally:
        # Writes journaled during an outage go to Redis now if it answers; close()
        # tries once more, then releases the connection.
        left = await store.flush()
        if left:
            logger.warning("%d journaled writes could not be replayed at shutdown", left)
        await store.aclose()


app = FastAPI(title="chat", lifespan=lifespan)


def store_of(request: Request) -> AsyncConversationStore:
    store: AsyncConversationStore = request.app.state.store
    return store


@app.exception_handler(SessionOwnershipError)
async def not_yours(request: Request, error: SessionOwnershipError) -> Response:
    return JSONResponse({"detail": "this conversation belongs to another user"}, status_code=403)


@app.exception_handler(InvalidArgumentError)
async def invalid(request: Request, error: InvalidArgumentError) -> Response:
    return JSONResponse({"detail": str(error)}, status_code=422)


@app.exception_handler(ChatkeepError)
async def backend(request: Request, error: ChatkeepError) -> Response:
    # Redis refused (e.g. a full journal during a long outage): retry later.
    logger.warning("chatkeep: %s", type(error).__name__)
    return JSONResponse({"detail": "conversation storage unavailable"}, status_code=503)


@app.post("/sessions/{session_id}/messages")
async def post_message(
    session_id: str,
    turn: Turn,
    request: Request,
    x_user_id: Annotated[str, Header()],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Reply:
    store = store_of(request)
    history = await store.messages(session_id, last=HISTORY_WINDOW, owner=x_user_id)
    reply = answer(history, turn.content)
    length = await store.append(
        session_id,
        [Message(role="user", content=turn.content), Message(role="assistant", content=reply)],
        owner=x_user_id,
        idempotency_key=idempotency_key,
    )
    return Reply(reply=reply, messages=length)


@app.get("/sessions/{session_id}/messages")
async def get_messages(
    session_id: str, request: Request, x_user_id: Annotated[str, Header()]
) -> list[StoredMessage]:
    messages = await store_of(request).messages(session_id, owner=x_user_id)
    return [StoredMessage(role=m.role, text=m.text) for m in messages]


@app.delete("/sessions/{session_id}", status_code=204)
async def delete_session(
    session_id: str, request: Request, x_user_id: Annotated[str, Header()]
) -> Response:
    await store_of(request).clear(session_id, owner=x_user_id)
    return Response(status_code=204)


@app.get("/health")
async def health(request: Request) -> dict[str, Any]:
    status = store_of(request).status()
    return {
        "redis": "degraded" if status.degraded else "ok",
        "pending_replay": status.pending_replay,
    }
