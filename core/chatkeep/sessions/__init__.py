"""Conversations: operations, the Redis family, the local backend and the index."""
