"""deploy/compose.yaml, the local-development recipe: the file is consistent (images,
commands, published ports, health checks), and the Cluster service's own script,
run here on free ports with this machine's redis-server, makes a cluster chatkeep
uses. No image is pulled: `docker compose config` runs only where compose exists."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from chatkeep import ConversationStore, Message
from tests.support.cluster import free_cluster_port
from tests.support.servers import REDIS_SERVER, require_binary

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"
CLUSTER_PORTS = ["7000", "7001", "7002"]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host port, container port) pairs of a service."""
    return [tuple(str(p).split(":")) for p in service["ports"]]  # type: ignore[misc]


def cluster_script() -> str:
    command = compose()["services"]["redis-cluster"]["command"]
    assert command[:2] == ["sh", "-c"]
    script: str = command[2]
    return script


def test_compose_services_are_consistent() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "redis-cluster"}
    standalone, cluster = services["redis"], services["redis-cluster"]
    assert standalone["image"] == cluster["image"]
    assert re.fullmatch(r"redis:7\.\d+(-alpine)?", standalone["image"])

    # Standalone: the port redis-server listens on is the one published (same number
    # on the host, as the docs' redis://localhost:6379/0 says) and health-checked.
    command = standalone["command"]
    port = command[command.index("--port") + 1]
    assert published(standalone) == [(port, port)] == [("6379", "6379")]
    assert standalone["healthcheck"]["test"][-3:] == ["-p", port, "ping"]
    assert "noeviction" in command and command[command.index("--appendonly") + 1] == "yes"
    assert "profiles" not in standalone  # `up` starts it without a profile

    # Cluster: the nodes' ports, the published ports, the announced addresses and the
    # health check agree; compose-escaped `$$` only (a single `$` would be interpolated).
    script = cluster_script()
    assert cluster["profiles"] == ["cluster"]
    assert published(cluster) == [(p, p) for p in CLUSTER_PORTS]
    assert f"for port in {' '.join(CLUSTER_PORTS)}; do" in script
    create = re.search(r"redis-cli --cluster create ([^\\\n]+)", script)
    assert create is not None
    assert create.group(1).split() == [f"127.0.0.1:{p}" for p in CLUSTER_PORTS]
    assert "--cluster-enabled yes" in script and "--maxmemory-policy noeviction" in script
    assert re.search(r"(?<!\$)\$(?!\$)", script) is None
    assert f"-p {CLUSTER_PORTS[0]} cluster info" in cluster["healthcheck"]["test"][1]


@pytest.mark.redis_server
def test_the_cluster_service_script_makes_a_cluster_chatkeep_uses() -> None:
    require_binary(REDIS_SERVER, "redis-server")
    require_binary(shutil.which("redis-cli"), "redis-cli")
    ports = [str(free_cluster_port()) for _ in CLUSTER_PORTS]
    script = cluster_script().replace("$$", "$").replace("--bind 0.0.0.0", "--bind 127.0.0.1")
    for default, port in zip(CLUSTER_PORTS, ports, strict=True):
        script = script.replace(default, port)
    workdir = tempfile.mkdtemp(prefix="chatkeep-compose-")
    process = subprocess.Popen(
        ["sh", "-c", script],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its redis-servers are in its process group
    )
    try:
        deadline = time.monotonic() + 30
        clients = [redis.Redis(port=int(port)) for port in ports]
        while True:  # every node agrees (one node's ok came before another's once)
            try:
                if all(
                    b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
                    for client in clients
                ):
                    break
            except redis.RedisError:
                pass
            assert process.poll() is None, "the cluster script exited"
            assert time.monotonic() < deadline, "no cluster after 30 s"
            time.sleep(0.1)
        for client in clients:
            client.close()
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
        with ConversationStore.from_url(url, fallback="raise") as store:
            for n in range(20):  # sessions spread over the three masters' slots
                store.append(f"s{n}", [Message(role="user", content=f"hello {n}")])
            assert [store.messages(f"s{n}")[0].text for n in range(20)] == [
                f"hello {n}" for n in range(20)
            ]
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("docker compose is not installed (the file is checked above without it)")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "cluster", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
