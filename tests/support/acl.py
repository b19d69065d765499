"""Least-privilege ACL users on throwaway servers (never on a server we did not start)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
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
