"""Every public ``Session`` operation reports bad caller input the same way (issue:
``Session.vrfy`` let a bare ``LocalProtocolError`` out, where ``sendmail`` gives
``SMTPProtocolError``): ``SMTPProtocolError`` with ``remote`` false and the engine's or
driver's message, raised before any request, with nothing written and the session
still usable (docs/design.md §2, "Errors"). Whether the mistake is found when the
operation is called (a command's constructor, an option) or when its driver starts (an
address) makes no difference to the caller. The adapters' side:
tests/adapters/test_bad_input_every_operation.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine_helpers import ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig
from smtpproto.drivers.session import Session
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.wire.errors import LocalProtocolError
from test_session_drivers import EHLO_FULL, MESSAGE, opened

OK = "a@example.org"

CALLS: dict[str, Callable[[Session], Any]] = {
    "open-until": lambda s: s.open(until="mail"),
    "vrfy-crlf": lambda s: s.vrfy("a\r\nNOOP"),
    "vrfy-nul": lambda s: s.vrfy("a\x00"),
    "vrfy-type": lambda s: s.vrfy(None),
    "vrfy-long": lambda s: s.vrfy("x" * 510),
    "xclient-crlf": lambda s: s.xclient({"NAME": "a\r\nb"}),
    "xclient-unknown": lambda s: s.xclient({"BOGUS": "x"}),
    "xclient-type": lambda s: s.xclient([("NAME", "x")]),
    "xforward-space": lambda s: s.xforward({"HELO": "a b"}),
    "xforward-empty": lambda s: s.xforward({}),
    "login-mechanism": lambda s: s.login("u", "p", mechanism="PLAIN"),
    "login-no-secret": lambda s: s.login("u"),
    "sendmail-crlf": lambda s: s.sendmail("a@b\r\nRSET", OK, MESSAGE),
    "sendmail-stop-after": lambda s: s.sendmail(OK, OK, MESSAGE, stop_after="ehlo"),
    "sendmail-progress": lambda s: s.sendmail(OK, OK, MESSAGE, progress="yes"),
    "sendmail-chunk-size": lambda s: s.sendmail(OK, OK, MESSAGE, chunk_size=True),
    "send_message-type": lambda s: s.send_message(MESSAGE),
    "send_message-progress": lambda s: s.send_message(MESSAGE, progress=1),
    "send_many-type": lambda s: s.send_many(None),
    "send_many-window": lambda s: s.send_many([], max_in_flight=0),
    "send_many-callback": lambda s: s.send_many([], on_outcome="print"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_caller_mistake_is_smtp_protocol_error_with_nothing_sent(name: str) -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]})
    written = len(transport.written)
    with pytest.raises(SMTPProtocolError) as caught:
        transport.run(CALLS[name](session))
    error = caught.value
    assert not error.remote and isinstance(error.error, LocalProtocolError)
    assert str(error) and "\r" not in str(error) and "\n" not in str(error)
    assert len(transport.written) == written  # nothing written for it
    assert session.usable and session.can_quit
    assert transport.run(session.noop()).code == 250
    assert server.lines[-1] == b"NOOP"


def test_the_message_is_the_engines() -> None:
    session, transport, _server = opened()
    with pytest.raises(SMTPProtocolError, match=r"^VRFY argument contains a control character"):
        transport.run(session.vrfy("a\r\nb"))
    with pytest.raises(SMTPProtocolError, match=r"^sender contains a control character"):
        transport.run(session.sendmail("a\r\nb", OK, MESSAGE))


def test_a_mistake_on_a_session_not_yet_open_changes_nothing() -> None:
    session = Session(ClientConfig())
    with pytest.raises(SMTPProtocolError, match="control character"):
        session.vrfy("a\nb")
    transport = Transport(ScriptedServer())
    assert transport.run(session.open()).code == 250
    assert session.usable
