"""chatkeep: conversation memory for LLM applications, kept in Redis with a TTL,
that keeps working when Redis does not.

```pycon
>>> from chatkeep import ConversationStore, Message
>>> store = ConversationStore.from_url("memory://")
>>> store.append("s1", [Message(role="user", content="hi")])
1
>>> [m.text for m in store.messages("s1")]
['hi']
```
"""

from __future__ import annotations

import logging

from .cache import DEFAULT_CACHE_TTL, AsyncResultCache, ResultCache
from .codec import RECORD_VERSION, Conversion, model_builder
from .codec import decode as decode_record
from .codec import encode as encode_record
from .config import DEFAULT_TTL, BackendOptions, StoreConfig, StoreOptions
from .errors import (
    BackendError,
    BackendUnavailableError,
    ChatkeepError,
    ConfigurationError,
    ConflictError,
    FallbackWarning,
    IncompleteMirrorError,
    InvalidArgumentError,
    InvalidMessageError,
    InvalidSessionId,
    JournalFullError,
    LockTimeoutError,
    MessageTooLargeError,
    SerializationError,
    SessionOwnershipError,
    ValueTooLargeError,
)
from .locks import AsyncSessionLock, SessionLock
from .memory import DEFAULT_MEMORY_TTLS, AsyncMemoryStore, MemoryHit, MemoryStore, Namespace
from .message import ContentPart, Message, Role, ToolCall
from .sealing import KeyRing, Sealing
from .sessions.ops import RecentConversation, SessionInfo
from .status import StoreStatus
from .store import UNSET, AsyncConversationStore, ConversationStore
from .tokens import TokenCounter, estimate_tokens
from .updates import AsyncSubscription, Subscription

__version__ = "0.1.0"

# Library logging etiquette: silent unless the application configures logging.
logging.getLogger("chatkeep").addHandler(logging.NullHandler())

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_MEMORY_TTLS",
    "DEFAULT_TTL",
    "RECORD_VERSION",
    "UNSET",
    "AsyncConversationStore",
    "AsyncMemoryStore",
    "AsyncResultCache",
    "AsyncSessionLock",
    "AsyncSubscription",
    "BackendOptions",
    "BackendError",
    "BackendUnavailableError",
    "ChatkeepError",
    "ConfigurationError",
    "ConflictError",
    "ContentPart",
    "Conversion",
    "ConversationStore",
    "InvalidArgumentError",
    "InvalidMessageError",
    "FallbackWarning",
    "IncompleteMirrorError",
    "InvalidSessionId",
    "JournalFullError",
    "KeyRing",
    "LockTimeoutError",
    "MemoryHit",
    "MemoryStore",
    "Message",
    "MessageTooLargeError",
    "Namespace",
    "ResultCache",
    "RecentConversation",
    "Role",
    "Sealing",
    "SerializationError",
    "SessionInfo",
    "SessionLock",
    "SessionOwnershipError",
    "StoreConfig",
    "StoreOptions",
    "StoreStatus",
    "Subscription",
    "TokenCounter",
    "ToolCall",
    "ValueTooLargeError",
    "__version__",
    "decode_record",
    "encode_record",
    "estimate_tokens",
    "model_builder",
]
