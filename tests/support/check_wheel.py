"""Check a built wheel: every package, every feature's Lua scripts and py.typed are inside."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from chatkeep.redis import load_features

REQUIRED = [
    "chatkeep/__init__.py",
    "chatkeep/py.typed",
    "chatkeep/redis/__init__.py",
    "chatkeep_langchain/__init__.py",
    "chatkeep_llama_index/__init__.py",
    "chatkeep_langgraph/__init__.py",
]


def main(folder: str) -> int:
    scripts = [path for feature in load_features().values() for path in feature.files]
    assert any(path.startswith("chatkeep_langgraph/") for path in scripts), scripts
    wheels = sorted(Path(folder).glob("chatkeep-*.whl"))
    if len(wheels) != 1:
        print(f"expected one chatkeep wheel in {folder}, found {wheels}")
        return 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [name for name in [*REQUIRED, *scripts] if name not in names]
    if missing:
        print(f"{wheels[0].name} lacks: {', '.join(missing)}")
        return 1
    print(f"{wheels[0].name}: {len(names)} files, the {len(scripts)} scripts among them")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
