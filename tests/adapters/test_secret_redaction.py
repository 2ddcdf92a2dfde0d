"""A server that echoes the password never gets it into an exception (issue 11, item 2).

The transcript already removed AUTH secrets; the ``SMTPReplyError`` raised for the same
``535`` showed them in ``str()``, ``repr()``, ``args``, ``reply`` and ``explain()``.
Now the client engine's ``Redactor`` (``client_engine/transcript.py``) removes every
secret from each reply it parses after AUTH, so every event, exception and transcript
line built from a reply is clean; run through the three adapters against scripted
servers on socket pairs. The engine side (both twins) is ``tests/test_secret_redaction.py``.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable

import pytest

from smtpproto.client_engine.config import ClientConfig
from smtpproto.exceptions import SMTPRecipientsRefused, SMTPReplyError

from .facade import SyncClient
from .peer import Peer, scripted

MakeClient = Callable[..., SyncClient]
USER = "alice"
PASSWORD = "s3cret-Pa55w0rd"
PLAIN = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
EHLO_AUTH = b"250-mx.example.org\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"
#: Every form a server could echo the secret in.
ECHOES = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), PLAIN]


def _views(error: BaseException) -> list[str]:
    """Every text a caller (or a logger, or a traceback) can see of ``error``."""
    views = [str(error), repr(error), repr(error.args), repr(pickle.loads(pickle.dumps(error)))]
    views += getattr(error, "__notes__", [])
    # smtplib-compatible twins (adapters/smtplib_compat.py) and the chained errors
    views += [repr(getattr(error, "smtp_error", b"")), repr(getattr(error, "recipients", None))]
    views += [repr(error.__cause__), repr(error.__context__)]
    reply = getattr(error, "reply", None)
    if reply is not None:
        views += [str(reply), repr(reply), reply.text, repr(reply.raw_lines)]
        views.append(error.explain())  # type: ignore[attr-defined]
    for _, each in getattr(error, "results", ()):
        views += [str(each), repr(each.raw_lines)]
    return views


def _clean(error: BaseException) -> None:
    for view in _views(error):
        for secret in ECHOES:
            assert secret not in view, view
    assert "<redacted>" in str(error)


@pytest.mark.parametrize("echo", ECHOES)
def test_a_535_echoing_the_password(make_client: MakeClient, echo: str) -> None:
    lines: list[str] = []

    def script(peer: Peer) -> None:
        peer.greet(EHLO_AUTH)
        peer.expect(b"AUTH PLAIN")
        peer.send(
            f"535-5.7.8 bad credentials for {echo}\r\n535 5.7.8 try {echo} again\r\n".encode()
        )
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with (
        scripted(script) as sock,
        make_client(
            sock=sock,
            timeout=5,
            config=ClientConfig(
                allow_cleartext_auth=True,
                transcript=lambda _direction, line: lines.append(line.decode()),
            ),
        ) as client,
        pytest.raises(SMTPReplyError) as caught,
    ):
        client.login(USER, PASSWORD)
    _clean(caught.value)
    assert caught.value.code == 535
    assert not any(PASSWORD in line or PLAIN in line for line in lines)


def test_a_later_reply_echoing_the_password(make_client: MakeClient) -> None:
    """The secrets stay known for the rest of the connection: a MAIL or RCPT reply
    after a successful AUTH is redacted too."""

    def script(peer: Peer) -> None:
        peer.greet(EHLO_AUTH)
        peer.expect(b"AUTH PLAIN")
        peer.send(b"235 2.7.0 ok\r\n")
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        peer.send(f"250 ok\r\n550 5.1.1 no {PASSWORD}\r\n554 no valid recipients\r\n".encode())
        peer.expect(b"RSET")  # the refused transaction is ended before the next MAIL
        peer.send(b"250 ok\r\n")
        peer.expect(b"MAIL")
        peer.expect(b"RCPT")
        peer.expect(b"DATA")
        peer.send(f"451 4.3.0 {PASSWORD} is busy\r\n503 no\r\n503 no\r\n".encode())
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with (
        scripted(script) as sock,
        make_client(sock=sock, timeout=5, allow_cleartext_auth=True) as client,
    ):
        client.login(USER, PASSWORD)
        with pytest.raises(SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
        _clean(refused.value)
        with pytest.raises(SMTPReplyError) as caught:
            client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
        _clean(caught.value)


def test_a_challenge_echoing_the_password_is_cancelled(make_client: MakeClient) -> None:
    """LOGIN: a server whose second challenge carries the password gets ``*``
    instead of an answer, and the 501 that follows is redacted."""
    sent: list[bytes] = []

    def script(peer: Peer) -> None:
        peer.greet(b"250-mx.example.org\r\n250 AUTH LOGIN\r\n")
        peer.expect(b"AUTH LOGIN")
        peer.send(b"334 " + base64.b64encode(b"Username:") + b"\r\n")
        peer.expect(b"")
        peer.send(b"334 " + base64.b64encode(b"Password, not " + PASSWORD.encode()) + b"\r\n")
        sent.append(peer.line())  # without CRLF
        peer.send(f"501 5.7.0 cancelled, {PASSWORD}\r\n".encode())
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with (
        scripted(script) as sock,
        make_client(sock=sock, timeout=5, allow_cleartext_auth=True) as client,
    ):
        with pytest.raises(SMTPReplyError) as caught:
            client.login(USER, PASSWORD)
        _clean(caught.value)
    assert sent == [b"*"]


#: The PLAIN response as a server may echo it: cut over two lines, or inside a longer
#: base64 value (where the password's base64 depends on its offset).
SHIFTED = base64.b64encode(b"you sent: " + b"\0alice\0" + PASSWORD.encode()).decode()
ECHO_LINES = [
    f"535-5.7.8 {PLAIN[:10]}\r\n535 5.7.8 {PLAIN[10:]}\r\n",
    f"535-{PLAIN[:13]}\r\n535 {PLAIN[13:]}\r\n",
    f"535 5.7.8 {SHIFTED}\r\n",
]


@pytest.mark.parametrize("echo", ECHO_LINES)
def test_a_535_echoing_the_password_cut_or_shifted(make_client: MakeClient, echo: str) -> None:
    """What the caller sees of the error (and the transcript) holds no part of the
    echo that encodes the password."""
    lines: list[str] = []

    def script(peer: Peer) -> None:
        peer.greet(EHLO_AUTH)
        peer.expect(b"AUTH PLAIN")
        peer.send(echo.encode())
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with (
        scripted(script) as sock,
        make_client(
            sock=sock,
            timeout=5,
            config=ClientConfig(
                allow_cleartext_auth=True,
                transcript=lambda _direction, line: lines.append(line.decode()),
            ),
        ) as client,
        pytest.raises(SMTPReplyError) as caught,
    ):
        client.login(USER, PASSWORD)
    carrying = [PLAIN[10:], PLAIN[13:], SHIFTED]  # each encodes the password
    for view in [*_views(caught.value), *lines]:
        assert not any(part in view for part in carrying), view
    assert "<redacted>" in str(caught.value)


@pytest.mark.parametrize("echo", [PASSWORD.upper(), PASSWORD.lower(), PASSWORD.swapcase()])
def test_a_535_echoing_the_password_in_another_case(make_client: MakeClient, echo: str) -> None:
    """The password echoed as "S3CRET-PA55W0RD" (an upper-cased log line) is the same
    secret: no exception text shows it, nor the transcript."""
    lines: list[str] = []

    def script(peer: Peer) -> None:
        peer.greet(EHLO_AUTH)
        peer.expect(b"AUTH PLAIN")
        peer.send(f"535 5.7.8 bad credentials for {echo}\r\n".encode())
        peer.expect(b"QUIT")
        peer.send(b"221 bye\r\n")

    with (
        scripted(script) as sock,
        make_client(
            sock=sock,
            timeout=5,
            config=ClientConfig(
                allow_cleartext_auth=True,
                transcript=lambda _direction, line: lines.append(line.decode()),
            ),
        ) as client,
        pytest.raises(SMTPReplyError) as caught,
    ):
        client.login(USER, PASSWORD)
    for view in _views(caught.value):
        assert echo not in view, view
    assert "<redacted>" in str(caught.value)
    assert not any(echo in line for line in lines)
