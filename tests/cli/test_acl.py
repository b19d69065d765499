"""Issue 13: a user made from ``chatkeep.redis.acl_rules()`` runs every ``chatkeep``
command (``export``, ``stats`` and ``purge`` used to fail with NOPERM: the rules left
out the commands only the CLI sends)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatkeep import ConversationStore
from tests.cli.conftest import Result, invoke_cli, seed

pytestmark = pytest.mark.redis_server


def test_a_user_made_from_acl_rules_runs_every_command(
    least_privilege: str, store: ConversationStore, prefix: str, tmp_path: Path
) -> None:
    seed(store)

    def chatkeep(*args: str) -> Result:
        result = invoke_cli(["--url", least_privilege, "--prefix", prefix, *args])
        assert "NOPERM" not in result.err and "permission" not in result.err.lower(), result.err
        return result

    assert chatkeep("sessions").code == 0
    assert chatkeep("show", "chat-42").code == 0
    exported = chatkeep("export", "-o", str(tmp_path / "all.jsonl"))
    assert exported.code == 0 and "exported 4 sessions, 15 messages" in exported.err
    stats = chatkeep("stats", "--json")
    assert stats.code == 0
    data = json.loads(stats.out)
    assert data["sessions"] == 4 and data["index_entries"] == 4
    assert data["bytes_estimated"] is not None  # MEMORY USAGE is allowed too
    purged = chatkeep("purge", "--owner", "u1", "--yes")
    assert purged.code == 0 and "deleted 2 sessions (12 messages)" in purged.out
    imported = chatkeep("import", str(tmp_path / "all.jsonl"))
    assert imported.code == 0 and "imported 12 messages into 2 sessions" in imported.err
    assert chatkeep("delete", "anonymous", "--yes").code == 0
    doctor = chatkeep("doctor")
    assert "✓ permissions: every command chatkeep sends is allowed" in doctor.out, doctor.out
