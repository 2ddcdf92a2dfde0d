"""Test helpers: ``run_server`` (the built-in server on a background thread) and the
``smtp_server`` pytest fixture (``pytest_plugins = ["smtpproto.testing"]``).

The public path of :mod:`smtpproto.builtin_server.testing`.
"""

from __future__ import annotations

from .builtin_server.testing import (
    RunningServer,
    run_server,
    smtp_server,
)

__all__ = [
    "RunningServer",
    "run_server",
    "smtp_server",
]
