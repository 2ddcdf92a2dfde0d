"""``python -m smtpproto`` and the ``smtpproto`` console script.

``main(argv=None) -> int`` runs the command line (see ``cli.main`` for the commands and the
table of exit codes); the console script calls it and exits with what it returns.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .cli.main import main as _main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``smtpproto`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    return _main(argv)


if __name__ == "__main__":
    sys.exit(main())
