"""chatkeep: conversation memory for LLM applications, kept in Redis with a TTL,
that keeps working when Redis does not.

>>> from chatkeep import ConversationStore, Message
>>> store = ConversationStore.from_url("memory://")
>>> store.append("s1", [Message(role="user", content="hi")])
1
>>> [m.text for m in store.messages("s1")]
['hi']
"""

from __future__ import annotations

import logging

from .config import DEFAULT_TTL, StoreConfig
from .errors import (
    BackendError,
    BackendUnavailableError,
    ChatkeepError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidMessageError,
    InvalidSessionId,
    MessageTooLargeError,
    SerializationError,
    SessionOwnershipError,
)
from .message import ContentPart, Message, Role, ToolCall
from .ops import SessionInfo, StoreStatus
from .store import UNSET, AsyncConversationStore, ConversationStore

__version__ = "0.1.0"

# Library logging etiquette: silent unless the application configures logging.
logging.getLogger("chatkeep").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_TTL",
    "UNSET",
    "AsyncConversationStore",
    "BackendError",
    "BackendUnavailableError",
    "ChatkeepError",
    "ConfigurationError",
    "ContentPart",
    "ConversationStore",
    "InvalidArgumentError",
    "InvalidMessageError",
    "InvalidSessionId",
    "Message",
    "MessageTooLargeError",
    "Role",
    "SerializationError",
    "SessionInfo",
    "SessionOwnershipError",
    "StoreConfig",
    "StoreStatus",
    "ToolCall",
    "__version__",
]
