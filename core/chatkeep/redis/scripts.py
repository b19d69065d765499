"""What each chatkeep feature sends to Redis: shipped Lua scripts and direct commands.

Every feature (conversations, long-term memory, the result cache, locks, live updates,
the LangGraph checkpointer, the ``chatkeep`` command) declares a :class:`Feature`.
Its scripts' commands are read from the scripts themselves (every
``redis.call('NAME'``; a ``-- commands: A B`` line names the ones a script calls
through a variable), so :func:`acl_rules`, the union over every feature, always
covers what the code runs, and a test checks it against a least-privilege user.

Scripts run by ``EVALSHA``; on ``NOSCRIPT`` (a new, restarted or failed-over server)
the same call is sent once more as ``EVAL``, with ``SCRIPT LOAD`` of the feature's
other scripts at most once a second (a burst of callers loads them once).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from typing import Any

from redis import exceptions as rex

from .errors import check
from .flows import Command, Flow

__all__ = ["FEATURES", "Feature", "Script", "acl_rules", "load_features", "run_script"]

_CALL = re.compile(rb"redis\.p?call\(\s*'([A-Za-z]+)'")
_DECLARED = re.compile(rb"^--\s*commands:\s*(.+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True, eq=False)
class Script:
    """One Lua script: its text (prelude included), SHA1 and the commands it runs."""

    name: str
    text: bytes
    sha: str
    commands: frozenset[str]
    feature: Feature = field(repr=False)

    def evalsha(self, keys: Sequence[str], args: Sequence[Any]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval(self, keys: Sequence[str], args: Sequence[Any]) -> Command:
        return ("EVAL", self.text, len(keys), *keys, *args)


def script_commands(text: bytes) -> frozenset[str]:
    """The Redis commands a Lua script runs (upper case)."""
    found = {name.decode().upper() for name in _CALL.findall(text)}
    for line in _DECLARED.findall(text):
        found.update(word.upper() for word in line.decode().split())
    return frozenset(found)


FEATURES: dict[str, Feature] = {}
"""Every feature declared in this process, by name."""


class Feature:
    """The scripts and direct commands of one chatkeep feature (registered in
    :data:`FEATURES` when made)."""

    def __init__(
        self,
        name: str,
        *,
        package: str | None = None,
        scripts: Iterable[str] = (),
        prelude: str | None = None,
        folder: str = "lua",
        commands: Iterable[str] = (),
        channels: bool = False,
    ) -> None:
        self.name = name
        self.direct = frozenset(c.upper() for c in commands)
        self.channels = channels
        self.scripts: dict[str, Script] = {}
        self.files: list[str] = []
        """The shipped script files, as paths inside the wheel."""
        names = list(scripts)
        if names:
            assert package is not None, "scripts need the package that ships them"
            base = f"{package.replace('.', '/')}/{folder}"
            self.files = [f"{base}/{name}.lua" for name in names]
            if prelude:
                self.files.append(f"{base}/{prelude}")
            root = resources.files(package).joinpath(folder)
            head = root.joinpath(prelude).read_bytes() + b"\n" if prelude else b""
            for script_name in names:
                text = head + root.joinpath(f"{script_name}.lua").read_bytes()
                sha = hashlib.sha1(text, usedforsecurity=False).hexdigest()
                self.scripts[script_name] = Script(
                    script_name, text, sha, script_commands(text), self
                )
        self._loaded_at = -1.0
        self._lock = threading.Lock()
        FEATURES[name] = self

    def __getitem__(self, name: str) -> Script:
        return self.scripts[name]

    @property
    def commands(self) -> frozenset[str]:
        """Every command this feature sends, directly or from its scripts."""
        found = set(self.direct)
        if self.scripts:
            found.update(("EVALSHA", "EVAL"))
            for script in self.scripts.values():
                found.update(script.commands)
        return frozenset(found)

    def loads_due(self) -> list[Command]:
        """``SCRIPT LOAD`` of every script of this feature, at most once a second."""
        with self._lock:
            now = time.monotonic()
            if now - self._loaded_at < 1.0:
                return []
            self._loaded_at = now
        return [("SCRIPT", "LOAD", script.text) for script in self.scripts.values()]

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, scripts={sorted(self.scripts)})"


def run_script(
    script: Script,
    keys: Sequence[str],
    args: Sequence[Any],
    *extra: Command,
    session_id: str | None = None,
    cluster: bool = False,
) -> Flow[list[Any]]:
    """Run ``script`` with ``extra`` commands in the same round trip; return every
    reply (the script's first). ``EVALSHA`` first, ``EVAL`` on ``NOSCRIPT``. The
    error of the script or of an extra command is raised (chatkeep's)."""
    replies: list[Any] = yield [script.evalsha(keys, args), *extra]
    if isinstance(replies[0], rex.NoScriptError):
        # EVAL caches the script where it runs; on a Cluster a SCRIPT LOAD would reach
        # one node only, so the other scripts are loaded on a standalone server only.
        loads = [] if cluster else script.feature.loads_due()
        replies = yield [script.eval(keys, args), *extra, *loads]
    check(replies, session_id, 1 + len(extra))
    return replies


# What redis-py's RedisCluster needs on top: topology discovery and command key specs.
CLUSTER_COMMANDS = ("cluster|slots", "command")
_ENTRY_POINTS = "chatkeep.features"


def _load_plugins() -> None:
    """Import the features of installed packages that declare them (the adapters)."""
    for entry in metadata.entry_points(group=_ENTRY_POINTS):
        if entry.name not in FEATURES:
            try:
                entry.load()
            except ImportError:  # the adapter's framework is not installed: not used
                continue


def load_features() -> dict[str, Feature]:
    """Every feature of this process, with those of installed packages that declare
    one in the ``chatkeep.features`` entry-point group (the adapters) imported first:
    their families can then replay another process's durable journal."""
    import chatkeep.cli.admin  # noqa: F401  (imports every core feature, and the CLI's)

    _load_plugins()
    return FEATURES


def acl_rules(prefix: str, *, cluster: bool = False) -> list[str]:
    """``ACL SETUSER`` rules of a least-privilege user for one chatkeep prefix: keys
    and channels under the prefix, and every command of every feature."""
    load_features()
    commands = sorted({c.lower() for f in FEATURES.values() for c in f.commands})
    rules = ["resetkeys", f"~{prefix}:*", "resetchannels"]
    if any(f.channels for f in FEATURES.values()):
        rules.append(f"&{prefix}:*")
    rules.append("-@all")
    rules += [f"+{c}" for c in commands]
    if cluster:
        rules += [f"+{c}" for c in CLUSTER_COMMANDS]
    return rules
