"""Transitional: live updates still come from coordination.py (being replaced)."""

from .coordination import AsyncSubscription, LocalHub, Subscription

__all__ = ["AsyncSubscription", "LocalHub", "Subscription"]
