"""Check a built wheel: every package, the Lua scripts and py.typed are inside."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

REQUIRED = [
    "chatkeep/__init__.py",
    "chatkeep/py.typed",
    "chatkeep/backends/lua/append.lua",
    "chatkeep/backends/lua/common.lua",
    "chatkeep_langchain/__init__.py",
    "chatkeep_llama_index/__init__.py",
    "chatkeep_langgraph/__init__.py",
    "chatkeep_langgraph/lua/put.lua",
]


def main(folder: str) -> int:
    wheels = sorted(Path(folder).glob("chatkeep-*.whl"))
    if len(wheels) != 1:
        print(f"expected one chatkeep wheel in {folder}, found {wheels}")
        return 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        print(f"{wheels[0].name} lacks: {', '.join(missing)}")
        return 1
    print(f"{wheels[0].name}: {len(names)} files, all required ones present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
