"""Bad caller input to any operation, through every adapter (issue: ``Session.vrfy``
let a bare ``LocalProtocolError`` out): ``SMTPProtocolError`` with ``remote`` false,
the engine's or driver's message, nothing sent for the call (the server's transcript
shows no command between the connection's last good one and the next NOOP) and the
session still usable. Against the built-in server with AUTH offered in cleartext (so
``login`` gets past "AUTH not offered" to the credentials) and without XCLIENT."""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message
from typing import Any

import pytest

from smtpproto.drivers.support import MailOptions
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient
from .pool_facade import PoolFacade, make_pool
from .pool_server import flaky_server
from .test_constructor_checks import assert_caller_mistake

MakeClient = Callable[..., SyncClient]
__all__ = ["make_pool"]  # the fixture, used by name
OK = "a@example.org"


def _message(**headers: str) -> Message:
    message = Message()  # compat32: takes a CR/LF in a header value; we must refuse it
    for name, value in {"From": OK, "To": OK, **headers}.items():
        message[name] = value
    message.set_payload("hi\n")
    return message


CALLS: dict[str, tuple[Callable[[Any], object], str | None]] = {
    # VRFY: controls anywhere, over-long, wrong type, empty.
    "vrfy-crlf": (lambda c: c.vrfy("a\r\nNOOP"), "control character"),
    "vrfy-lf": (lambda c: c.vrfy("a\nb"), "control character"),
    "vrfy-nul": (lambda c: c.vrfy("a\x00b"), "control character"),
    "vrfy-del": (lambda c: c.vrfy("a\x7fb"), "control character"),
    "vrfy-long": (lambda c: c.vrfy("a" * 600), "512"),
    "vrfy-type": (lambda c: c.vrfy(5), "must be a str"),
    "vrfy-bytes": (lambda c: c.vrfy(b"a@b"), "must be a str"),
    "vrfy-empty": (lambda c: c.vrfy(""), "VRFY"),
    # XCLIENT / XFORWARD: bad values, unknown names, wrong types (and not offered).
    "xclient-crlf": (lambda c: c.xclient({"NAME": "a\r\nb"}), "printable ASCII"),
    "xclient-type": (lambda c: c.xclient(5), "mapping"),
    "xclient-empty": (lambda c: c.xclient({}), "non-empty"),
    "xclient-unknown": (lambda c: c.xclient({"BOGUS": "x"}), "unknown"),
    "xclient-not-offered": (lambda c: c.xclient({"NAME": "x"}), "XCLIENT"),
    "xforward-space": (lambda c: c.xforward({"NAME": "a b"}), "printable ASCII"),
    "xforward-value-type": (lambda c: c.xforward({"NAME": 1}), "must be str"),
    "xforward-not-offered": (lambda c: c.xforward({"NAME": "x"}), "XFORWARD"),
    # login: credentials with controls or of the wrong type, a bad mechanism.
    "login-user-crlf": (lambda c: c.login("u\r\nNOOP", "p"), None),
    "login-user-nul": (lambda c: c.login("u\x00", "p"), None),
    "login-user-type": (lambda c: c.login(5, "p"), None),
    "login-password-type": (lambda c: c.login("u", 5), None),
    "login-no-secret": (lambda c: c.login("u", None), None),
    "login-mechanism-str": (lambda c: c.login("u", "p", mechanism="PLAIN"), "mechanism"),
    # sendmail / send_message / send_many: addresses, options, content, items.
    "sendmail-sender-crlf": (lambda c: c.sendmail("a@b\r\nRSET", OK, b"x"), "control"),
    "sendmail-rcpt-type": (lambda c: c.sendmail(OK, [5], b"x"), "str"),
    "sendmail-no-rcpt": (lambda c: c.sendmail(OK, [], b"x"), "at least one"),
    "sendmail-content-type": (lambda c: c.sendmail(OK, OK, 5), "content"),
    "sendmail-options-type": (lambda c: c.sendmail(OK, OK, b"x", options=5), "options"),
    "sendmail-progress": (lambda c: c.sendmail(OK, OK, b"x", progress=5), "progress"),
    "sendmail-chunking-not-offered": (
        lambda c: c.sendmail(OK, OK, b"x", chunking=True, stop_after="data"),
        "chunking",
    ),
    "sendmail-stop-after": (lambda c: c.sendmail(OK, OK, b"x", stop_after="ehlo"), "stop_after"),
    "sendmail-envid-crlf": (
        lambda c: c.sendmail(OK, OK, b"x", options=MailOptions(envid="a\r\nb")),
        None,
    ),
    "sendmail-notify-type": (  # was a TypeError from tuple(5) that broke the session
        lambda c: c.sendmail(OK, OK, b"x", options=MailOptions(notify=5)),  # type: ignore[arg-type]
        "notify",
    ),
    # pipelining/chunking/drop/raw: a bool (or None) only; "no" or 0 is not a flag.
    "sendmail-pipelining-str": (
        lambda c: c.sendmail(OK, OK, b"x", pipelining="no"),
        "^pipelining must be True or False or None, got 'no'$",
    ),
    "sendmail-chunking-int": (lambda c: c.sendmail(OK, OK, b"x", chunking=0), "chunking"),
    "sendmail-drop-int": (lambda c: c.sendmail(OK, OK, b"x", drop=1, stop_after="rcpt"), "drop"),
    "sendmail-raw-str": (lambda c: c.sendmail(OK, OK, b"x", raw="yes"), "raw"),
    "send_message-pipelining-int": (
        lambda c: c.send_message(_message(), pipelining=1),
        "^pipelining must be True or False or None, got 1$",
    ),
    "send_message-chunking-str": (lambda c: c.send_message(_message(), chunking=""), "chunking"),
    "send_many-pipelining-str": (
        lambda c: c.send_many([(OK, OK, b"x")], pipelining="False"),
        "^pipelining must be True or False or None, got 'False'$",
    ),
    "send_many-chunking-int": (
        lambda c: c.send_many([(OK, OK, b"x")], chunking=1),
        "^chunking must be True or False or None, got 1$",
    ),
    "send_message-type": (lambda c: c.send_message(b"x"), "Message"),
    "send_message-header-crlf": (
        lambda c: c.send_message(_message(Subject="a\r\nBcc: x@example.org")),
        None,
    ),
    "send_many-type": (lambda c: c.send_many(5), "iterable"),
    "send_many-options-type": (  # was an SMTPProtocolError outcome per message
        lambda c: c.send_many([(OK, OK, b"x")], options=5),
        "options",
    ),
    "send_many-max-in-flight": (lambda c: c.send_many([], max_in_flight=0), "max_in_flight"),
    "send_many-on-outcome": (lambda c: c.send_many([], on_outcome=5), "on_outcome"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_input_is_a_typed_caller_mistake_with_nothing_sent(
    make_client: MakeClient, name: str
) -> None:
    call, words = CALLS[name]
    lines: list[str] = []
    with (
        run_server(
            starttls=False, users={"u": "p"}, allow_plaintext_auth=True, transcript=lines.append
        ) as server,
        make_client(
            host="127.0.0.1", port=server.port, tls="none", timeout=10, allow_cleartext_auth=True
        ) as client,
    ):
        before = len(lines)
        with pytest.raises(SMTPProtocolError, match=words) as caught:
            call(client)
        assert_caller_mistake(caught.value)
        assert client.session.usable
        assert client.noop().code == 250
        sent = [line for line in lines[before:] if line.startswith("C: ")]
        assert sent == ["C: NOOP"], sent


POOL_CALLS: dict[str, Callable[[PoolFacade], object]] = {
    "sendmail-crlf": lambda p: p.call("sendmail", "a@b\r\nRSET", OK, b"x"),
    "sendmail-no-rcpt": lambda p: p.call("sendmail", OK, [], b"x"),
    "sendmail-options": lambda p: p.call("sendmail", OK, OK, b"x", options=5),
    "sendmail-pipelining": lambda p: p.call("sendmail", OK, OK, b"x", pipelining="no"),
    "send_message-chunking": lambda p: p.call("send_message", _message(), chunking=0),
    "send_message-type": lambda p: p.call("send_message", b"x"),
    "send_message-header": lambda p: p.call("send_message", _message(Subject="a\r\nBcc: x@y.z")),
}


@pytest.mark.parametrize("name", sorted(POOL_CALLS))
def test_bad_input_to_a_pool_keeps_its_connection(
    make_pool: Callable[..., PoolFacade], name: str
) -> None:
    with flaky_server() as server:
        pool = make_pool(server)
        pool.send()  # one connection, idle again
        with pytest.raises(SMTPProtocolError) as caught:
            POOL_CALLS[name](pool)
        assert_caller_mistake(caught.value)
        assert pool.pool.connections == 1  # given back healthy, not dropped
        pool.send()
        assert server.connections == 1 and len(server.messages) == 2
        assert server.mail_commands == 2  # nothing of the mistaken call was sent


def test_connect_with_a_bad_stage_is_a_caller_mistake(make_client: MakeClient) -> None:
    with run_server(starttls=False) as server:
        client = make_client(host="127.0.0.1", port=server.port, tls="none", timeout=10)
        with pytest.raises(SMTPProtocolError, match="until must be one of") as caught:
            client.connect(until="bogus")
        assert_caller_mistake(caught.value)
