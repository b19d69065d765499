"""chatkeep in one page: a conversation kept in Redis, with a TTL, that keeps going
when Redis does not answer.

    python examples/quickstart.py            # Redis at $REDIS_URL, else localhost:6379

Without a reachable Redis it says so and runs on the in-memory fallback.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid

from chatkeep import ConversationStore, Message, ToolCall


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="  [log] %(name)s: %(message)s")
    url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    session = f"demo-{uuid.uuid4().hex[:8]}"
    with ConversationStore.from_url(url, key_prefix="chatkeep-demo", ttl=600) as store:
        store.append(session, [Message(role="user", content="What's the weather in Paris?")])
        if store.status().degraded:
            print("No Redis answered; running on the in-memory fallback (same API, same answers).")
        else:
            print(f"Connected to Redis at {store.config.safe_url}.")
        # One atomic round trip for the whole turn, tool call and result included.
        store.append(
            session,
            [
                Message(
                    role="assistant",
                    content="",
                    tool_calls=[ToolCall(id="call_1", name="weather", arguments={"city": "Paris"})],
                ),
                Message(role="tool", content="18°C, clear", tool_call_id="call_1"),
                Message(role="assistant", content="It's 18°C and clear in Paris."),
            ],
            idempotency_key="turn-1",
        )
        # A retried turn (same idempotency key) is stored once.
        store.append(session, [Message(role="assistant", content="dup")], idempotency_key="turn-1")

        print(f"\nSession {session!r}:")
        for message in store.messages(session):
            calls = ", ".join(f"{c.name}({c.arguments})" for c in message.tool_calls)
            print(f"  {message.role:>9}: {message.text or calls}")
        print(f"\nLast 2 messages: {[m.text for m in store.messages(session, last=2)]}")
        info = store.info(session)
        assert info is not None and info.message_count == 4
        left = store.ttl(session)
        print(f"{info.message_count} messages; expires in {left:.0f}s (sliding TTL)")
        status = store.status()
        print(
            f"status: backend={status.backend} serving={status.serving} degraded={status.degraded}"
        )
        store.clear(session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
