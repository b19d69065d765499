"""The ``chatkeep`` command: see and manage the conversations kept in Redis.

Installed with ``pip install "chatkeep[cli]"`` (click and rich); the core library
does not need them. :mod:`chatkeep.cli.admin` (export, import, purge, stats) and
:mod:`chatkeep.cli.doctor` work without them, from Python.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

INSTALL_HINT = 'chatkeep: the command-line tool needs click and rich: pip install "chatkeep[cli]"'


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``[project.scripts] chatkeep = "chatkeep.cli:main"``)."""
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr, flush=True)
        return 1
    from .app import run

    return run(argv)
