"""Arguments of the wrong type to ``sendmail`` are caller misuse, reported as such.

Before the check a ``None`` sender or an ``int`` recipient escaped as ``AttributeError``
(``'NoneType' object has no attribute 'isascii'``), a non-iterable ``recipients`` as
``TypeError`` and a str ``options`` as ``AttributeError``, all from inside the driver.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest

from smtpproto.blocking import SMTPClient
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server
from smtpproto.wire.errors import LocalProtocolError


@pytest.mark.parametrize(
    ("sender", "recipients", "options"),
    [
        (None, ["x@example.org"], None),
        (b"a@example.org", ["x@example.org"], None),
        ("a@example.org", [1], None),
        ("a@example.org", ["x@example.org", None], None),
        ("a@example.org", None, None),
        ("a@example.org", 5, None),
        ("a@example.org", ["x@example.org"], "SIZE=1"),
    ],
)
def test_wrong_argument_types_are_caller_misuse(sender: Any, recipients: Any, options: Any) -> None:
    with run_server() as server, SMTPClient(server.host, server.port, tls="none", timeout=5) as c:
        with pytest.raises(SMTPProtocolError) as info:
            c.sendmail(sender, recipients, b"Subject: x\r\n\r\nbody\r\n", options=options)
        assert isinstance(info.value.__cause__, LocalProtocolError)
        assert not info.value.remote
        assert server.messages == []


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = "x@example.org"
    msg.set_content("body")
    return msg


@pytest.mark.parametrize(
    ("sender", "recipients", "options"),
    [
        (5, None, None),
        (b"a@example.org", None, None),
        (None, 5, None),
        (None, [5], None),
        (None, ["x@example.org", None], None),
        (None, None, "SIZE=1"),
        ("\u00e4@example.org", None, "SIZE=1"),  # international: options asked first
    ],
)
def test_send_message_wrong_argument_types_are_caller_misuse(
    sender: Any, recipients: Any, options: Any
) -> None:
    """Before, ``AttributeError``/``TypeError`` escaped ``send_message``."""
    with run_server() as server, SMTPClient(server.host, server.port, tls="none", timeout=5) as c:
        with pytest.raises(SMTPProtocolError) as info:
            c.send_message(_message(), sender=sender, recipients=recipients, options=options)
        assert isinstance(info.value.__cause__, LocalProtocolError)
        assert server.messages == []
