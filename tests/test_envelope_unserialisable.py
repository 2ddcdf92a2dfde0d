"""A message the ``email`` generator cannot serialise is caller misuse.

Before, ``flatten_message`` (run by ``send_message``) let ``UnicodeEncodeError`` (a
``compat32`` message with a non-ASCII str payload and no charset) or ``AttributeError``
(a payload that is no str) or ``HeaderParseError`` (a header value with an embedded
header line) escape.
"""

from __future__ import annotations

from email.message import Message
from typing import Any

import pytest

from smtpproto.blocking import SMTPClient
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.envelope import flatten_message
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server
from smtpproto.wire.errors import LocalProtocolError


def _legacy(payload: Any) -> Message:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = "x@example.org"
    msg.set_payload(payload)
    return msg


@pytest.mark.parametrize("payload", ["caf\u00e9", 5, [1, 2]])
def test_unserialisable_message_is_a_local_protocol_error(payload: Any) -> None:
    with pytest.raises(LocalProtocolError, match="cannot be serialised"):
        flatten_message(_legacy(payload))


def test_an_embedded_header_line_is_a_local_protocol_error() -> None:
    msg = _legacy("plain\n")
    msg["Cc"] = "x@example.org\r\nBcc: hidden@example.org"
    with pytest.raises(LocalProtocolError, match="embedded header"):
        flatten_message(msg)


def test_a_well_formed_legacy_message_still_flattens() -> None:
    assert flatten_message(_legacy("plain\n")).endswith(b"\r\n\r\nplain\r\n")


def test_send_many_reports_an_unserialisable_message_and_goes_on() -> None:
    """Before, the ``UnicodeEncodeError`` ended the whole batch."""
    good = _legacy("plain\n")
    items = [good, _legacy("caf\u00e9"), good]
    with run_server() as server, SMTPClient(server.host, server.port, tls="none", timeout=5) as c:
        outcomes = c.send_many(items)
        assert isinstance(outcomes[0], TransactionResult)
        assert isinstance(outcomes[1], SMTPProtocolError)
        assert "cannot be serialised" in str(outcomes[1])
        assert isinstance(outcomes[2], TransactionResult)
        assert len(server.wait_for_messages(2)) == 2
