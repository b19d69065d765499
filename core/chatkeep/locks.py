"""Transitional: session locks still come from coordination.py (being replaced)."""

from .coordination import AsyncSessionLock, SessionLock

__all__ = ["AsyncSessionLock", "SessionLock"]
