"""Throwaway Redis Cluster (masters + replicas) and Sentinel deployments on free
loopback ports, for the contract suite and failover tests.

Nothing here touches a server it did not start; everything is stopped and its
directory removed by ``cleanup()``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redis.sentinel

from tests.support.servers import RedisServer, free_port, require_binary, wait_for_port

REDIS_CLI = shutil.which("redis-cli")
REDIS_SENTINEL = shutil.which("redis-sentinel")
REDIS_SERVER = shutil.which("redis-server")

NODE_TIMEOUT_MS = 1000
# A replica's first full sync starts at once (the default waits 5 s for more replicas).
FAST_SYNC = ("--repl-diskless-sync-delay", "0")
T = TypeVar("T")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10_000):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _client(port: int, **options: object) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1, **options)  # type: ignore[arg-type]


class RedisClusterDeployment:
    """Masters with ``replicas`` replicas each, made by ``redis-cli --cluster create``."""

    def __init__(self, masters: int = 3, replicas: int = 1, *extra_args: str) -> None:
        self.cli = require_binary(REDIS_CLI, "redis-cli")
        self.nodes = [
            RedisServer(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # a replica may take over whatever its last contact with the master
                "--cluster-replica-validity-factor",
                "0",
                *FAST_SYNC,
                *extra_args,
                port=free_cluster_port(),
            )
            for _ in range(masters * (replicas + 1))
        ]
        self.replicas = replicas

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming two startup nodes."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    def start(self) -> RedisClusterDeployment:
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in self.ports),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            self.wait_healthy()
            for node in self.nodes:
                client = _client(node.port)
                try:
                    is_master = client.info("replication")["role"] == "master"
                finally:
                    client.close()
                if is_master:
                    wait_for_replicas(node.port)
        except BaseException:
            self.cleanup()
            raise
        return self

    def live_nodes(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node says the cluster is ok and every master has its replicas."""

        def healthy() -> bool:
            for node in self.live_nodes():
                client = _client(node.port)
                try:
                    if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                        return False
                    slots = client.execute_command("CLUSTER", "SLOTS")
                finally:
                    client.close()
                if not slots:
                    return False
            return True

        wait_until(healthy, timeout, "cluster_state:ok on every node")

    def owner_of(self, key: str) -> RedisServer:
        """The node that is master of ``key``'s slot now."""
        for node in self.live_nodes():
            client = _client(node.port)
            try:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
            finally:
                client.close()
        raise LookupError(key)

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        client = _client(master.port)
        try:
            info = client.info("replication")
        finally:
            client.close()
        ports = {int(v["port"]) for k, v in info.items() if k.startswith("slave")}
        return [n for n in self.nodes if n.port in ports]

    def wait_replicated(self, master: RedisServer, timeout: float = 10.0) -> None:
        """Wait until every replica of ``master`` has applied all it was sent."""
        wait_for_replicas(master.port, timeout)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def wait_for_replicas(master_port: int, timeout: float = 10.0) -> None:
    """Redis replication is asynchronous: wait until every replica's offset reached
    the master's (so killing the master now loses nothing it acknowledged)."""

    def caught_up() -> bool:
        client = _client(master_port)
        try:
            info = client.info("replication")
        finally:
            client.close()
        offset = int(info["master_repl_offset"])
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        if not replicas or any(r["state"] != "online" for r in replicas):
            return False
        for replica in replicas:  # ask each replica: the master learns of acks once a second
            client = _client(int(replica["port"]))
            try:
                if int(client.info("replication")["slave_repl_offset"]) < offset:
                    return False
            finally:
                client.close()
        return True

    wait_until(caught_up, timeout, "replicas catching up with the master")


class SentinelDeployment:
    """One master, ``replicas`` replicas and ``sentinels`` sentinels watching ``service``."""

    def __init__(self, service: str = "chatkeep", *, replicas: int = 1, sentinels: int = 3) -> None:
        # redis-sentinel is redis-server under another name; either will do.
        if REDIS_SENTINEL:
            self.command = [REDIS_SENTINEL]
        else:
            self.command = [require_binary(REDIS_SERVER, "redis-server"), "--sentinel"]
        self.service = service
        self.master = RedisServer(*FAST_SYNC)
        self.replicas = [
            RedisServer("--replicaof", "127.0.0.1", str(self.master.port), *FAST_SYNC)
            for _ in range(replicas)
        ]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.dir = Path(tempfile.mkdtemp(prefix="chatkeep-sentinel-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> SentinelDeployment:
        try:
            for server in self.servers:
                server.start()
            wait_for_replicas(self.master.port)
            for i, port in enumerate(self.sentinel_ports):
                conf = self.dir / f"sentinel-{i}.conf"
                conf.write_text(
                    f"port {port}\n"
                    "bind 127.0.0.1\n"
                    f"dir {self.dir}\n"
                    f"logfile {self.dir}/sentinel-{i}.log\n"
                    f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.service} 1000\n"
                    f"sentinel failover-timeout {self.service} 3000\n"
                    f"sentinel parallel-syncs {self.service} 1\n"
                )
                self.processes.append(
                    subprocess.Popen(
                        [self.command[0], str(conf), *self.command[1:]],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            for port in self.sentinel_ports:
                wait_for_port(port)
            self.wait_ready()
        except BaseException:
            self.cleanup()
            raise
        return self

    def sentinel_client(self, port: int | None = None) -> redis.Redis:
        return _client(port or self.sentinel_ports[0], decode_responses=True)

    def master_port(self) -> int:
        client = self.sentinel_client()
        try:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        finally:
            client.close()
        return int(port)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every sentinel knows the master, its replicas and the other sentinels."""

        def ready() -> bool:
            for port in self.sentinel_ports:
                client = self.sentinel_client(port)
                try:
                    fields = client.sentinel_master(self.service)
                    if fields["is_sdown"] or fields["is_odown"]:
                        return False
                    if int(fields["num-slaves"]) < len(self.replicas):
                        return False
                    if int(fields["num-other-sentinels"]) < len(self.sentinel_ports) - 1:
                        return False
                finally:
                    client.close()
            return True

        wait_until(ready, timeout, "sentinels agreeing on the deployment")

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes = []
        for server in self.servers:
            server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


_SHARED: dict[str, Any] = {}


def shared(config: pytest.Config, name: str, make: Callable[[], T]) -> T:
    """One deployment per test session, whichever conftest asks first; stopped when
    the session ends (so tests/contract and tests/scale do not each start one)."""
    if name not in _SHARED:
        try:
            made: Any = make()
        except BaseException as exc:  # also pytest's skip/fail: do not retry per test
            _SHARED[name] = exc
            raise
        _SHARED[name] = made
        config.add_cleanup(made.cleanup)
    found = _SHARED[name]
    if isinstance(found, BaseException):
        raise found
    result: T = found
    return result


def sentinel_master(deployment: SentinelDeployment) -> redis.Redis:
    """A raw client on the current master, found through the sentinels."""
    sentinel = redis.sentinel.Sentinel(
        [("127.0.0.1", p) for p in deployment.sentinel_ports], socket_timeout=2
    )
    client: redis.Redis = sentinel.master_for(deployment.service, socket_timeout=2)
    return client


def close_sentinel_client(client: redis.Redis) -> None:
    client.close()
    for sentinel in client.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
        sentinel.close()
