"""Least-privilege ACL users on throwaway servers (never on a server we did not start)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from chatkeep.redis import acl_rules


class AclUser:
    """A user with only chatkeep's minimal ACL for ``prefix``, made on every node of
    ``ports`` (a Cluster needs it on each node); ``drop()`` removes it."""

    def __init__(
        self,
        ports: Iterable[int],
        prefix: str,
        *,
        cluster: bool = False,
        name: str | None = None,
        password: str | None = None,
        **admin: Any,
    ) -> None:
        self.ports = list(ports)
        self.admin = admin
        self.name = name or f"chatkeep-{uuid.uuid4().hex[:8]}"
        self.password = password or f"hunter2-{uuid.uuid4().hex}"
        self.rules = acl_rules(prefix, cluster=cluster)
        for client in self._admins():
            try:
                client.execute_command(
                    "ACL", "SETUSER", self.name, "reset", "on", f">{self.password}", *self.rules
                )
            finally:
                client.close()

    def _admins(self) -> list[redis.Redis]:
        return [redis.Redis(port=port, socket_timeout=2, **self.admin) for port in self.ports]

    @property
    def userinfo(self) -> str:
        return f"{self.name}:{self.password}@"

    def drop(self) -> None:
        for client in self._admins():
            try:
                client.acl_deluser(self.name)
            finally:
                client.close()


@contextlib.contextmanager
def least_privilege_url(port: int, prefix: str) -> Iterator[str]:
    """The URL of a user with only ``acl_rules(prefix)`` on the server at ``port``;
    the user is dropped afterwards."""
    user = AclUser([port], prefix)
    try:
        yield f"redis://{user.userinfo}127.0.0.1:{port}/0"
    finally:
        user.drop()
