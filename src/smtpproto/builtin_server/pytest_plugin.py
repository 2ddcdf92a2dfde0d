"""The pytest plugin: a built-in SMTP server per test, its messages and its rules.

Registered through the ``pytest11`` entry point (``pyproject.toml``), so installing
smtpproto makes the fixtures available everywhere; without the entry point (a vendored
copy) add ``pytest_plugins = ["smtpproto.testing"]`` to ``conftest.py``. Importing this
module starts nothing and imports none of the server: the fixtures import it when a test
asks for them, so a test run that does not use them pays nothing.

- ``smtp_server``: a ``RunningServer`` on 127.0.0.1 (a free port, STARTTLS with a
  self-signed certificate made once per test run: ``smtp_certificate``);
  ``@pytest.mark.smtp_server(lmtp=True, ...)`` passes options to ``run_server``. A
  ``hook`` or ``Session`` subclass that raised fails the test at teardown.
- ``smtp_messages``: the messages it received, live (``len``, index, iterate,
  ``wait(count)``).
- ``smtp_rules``: its ``RuleSet``, live: ``smtp_rules.append(Rule(...))``.

Example::

    from smtpproto.testing import Respond, Rule

    def test_signup_survives_a_full_mailbox(smtp_server, smtp_rules, smtp_messages):
        smtp_rules.append(Rule(stage="rcpt", action=Respond(452, "Mailbox full", "4.2.2")))
        response = client.post("/signup", {"email": "ann@example.org"})
        assert response.status_code == 202  # queued for a retry, not a 500
        assert len(smtp_messages) == 0
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .rules import RuleSet
    from .testing import ReceivedMessages, RunningServer

__all__ = [
    "pytest_configure",
    "smtp_certificate",
    "smtp_messages",
    "smtp_rules",
    "smtp_server",
]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``smtp_server`` marker (``--strict-markers`` knows it then)."""
    config.addinivalue_line(
        "markers", "smtp_server(**options): options for the smtp_server fixture's run_server"
    )


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path] | None:
    """One self-signed certificate and key for every ``smtp_server`` of the test run
    (making one per test costs a fraction of a second each); ``None`` if it cannot be
    made (each server then says why and offers no STARTTLS)."""
    from .server import make_self_signed

    try:
        return make_self_signed(tmp_path_factory.mktemp("smtpproto-cert"))
    except (OSError, subprocess.SubprocessError):
        return None


@pytest.fixture
def smtp_server(
    request: pytest.FixtureRequest, smtp_certificate: tuple[Path, Path] | None
) -> Iterator[RunningServer]:
    """A built-in SMTP server on 127.0.0.1 for the test (options from the
    ``smtp_server`` marker, passed to ``run_server``)."""
    from .testing import run_server

    marker = request.node.get_closest_marker("smtp_server")
    if marker is not None and marker.args:
        raise TypeError("@pytest.mark.smtp_server takes keyword options only")
    options = {} if marker is None else dict(marker.kwargs)
    own_tls = "certfile" in options or "keyfile" in options or not options.get("starttls", True)
    if smtp_certificate is not None and not own_tls:
        options["certfile"], options["keyfile"] = smtp_certificate
    with run_server(**options) as running:
        yield running
        errors = running.policy_errors
    if errors:
        raise AssertionError(f"the server's policy raised: {errors[0]!r}") from errors[0]


@pytest.fixture
def smtp_messages(smtp_server: RunningServer) -> ReceivedMessages:
    """The messages ``smtp_server`` received, read live."""
    return smtp_server.received


@pytest.fixture
def smtp_rules(smtp_server: RunningServer) -> RuleSet:
    """The rules of ``smtp_server``; appending one takes effect at once."""
    return smtp_server.rules
