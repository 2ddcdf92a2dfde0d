"""Point the app at the test server, as ``settings.EMAIL_HOST = ...`` in pytest-django.

The fixtures ``smtp_server``, ``smtp_messages`` and ``smtp_rules`` come from smtpproto's
pytest plugin, registered when smtpproto is installed: nothing to import here.
"""

from __future__ import annotations

from collections.abc import Iterator

import mailer
import pytest

from smtpproto.testing import RunningServer


@pytest.fixture(autouse=True)
def email_settings(smtp_server: RunningServer) -> Iterator[mailer.Settings]:
    saved = mailer.settings
    mailer.settings = mailer.Settings(EMAIL_HOST=smtp_server.host, EMAIL_PORT=smtp_server.port)
    yield mailer.settings
    mailer.settings = saved
