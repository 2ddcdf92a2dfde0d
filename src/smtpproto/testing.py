"""Test helpers: ``run_server`` (the built-in server on a background thread), the rules
that make it fail on purpose, and the pytest fixtures ``smtp_server``, ``smtp_messages``
and ``smtp_rules`` (registered by the ``pytest11`` entry point; without it, add
``pytest_plugins = ["smtpproto.testing"]`` to ``conftest.py``).

The public path of :mod:`smtpproto.builtin_server.testing`,
:mod:`smtpproto.builtin_server.rules`, :mod:`smtpproto.builtin_server.rulefile` and
:mod:`smtpproto.builtin_server.pytest_plugin`.
"""

from __future__ import annotations

from .builtin_server.rulefile import RuleFileError, load_rules, parse_rules
from .builtin_server.rules import (
    Accept,
    Action,
    Context,
    Disconnect,
    Drop,
    Greylist,
    Hook,
    Respond,
    Rule,
    RuleSet,
    Stage,
    Tarpit,
)
from .builtin_server.testing import ReceivedMessages, RunningServer, run_server

__all__ = [
    "Accept",
    "Action",
    "Context",
    "Disconnect",
    "Drop",
    "Greylist",
    "Hook",
    "ReceivedMessages",
    "Respond",
    "Rule",
    "RuleFileError",
    "RuleSet",
    "RunningServer",
    "Stage",
    "Tarpit",
    "load_rules",
    "parse_rules",
    "run_server",
]

try:
    from .builtin_server.pytest_plugin import (
        pytest_configure,
        smtp_certificate,
        smtp_messages,
        smtp_rules,
        smtp_server,
    )
except ImportError:  # without pytest there are no fixtures
    pass
else:
    __all__ += [
        "pytest_configure",
        "smtp_certificate",
        "smtp_messages",
        "smtp_rules",
        "smtp_server",
    ]
