"""Stopping early with every adapter against the built-in server: ``connect(until=)`` and
``sendmail(stop_after=)`` (the session drivers' stages), ``Session.greeting`` /
``capabilities_before_tls``, and ``tls_info``.

The server's transcript shows exactly which commands the client sent; nothing may be
delivered by a stage that stops before the end of the content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smtpproto import blocking
from smtpproto.adapters import tls as _tls
from smtpproto.adapters.tls import TLSInfo
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import RunningServer, run_server
from smtpproto.wire.errors import LocalProtocolError

from .facade import SyncClient

Make = Callable[..., SyncClient]

MESSAGE = b"Subject: stages\r\n\r\nhello\r\n"
TIMEOUT = 10.0


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, list[str]]]:
    lines: list[str] = []
    with run_server(transcript=lines.append) as server:
        yield server, lines


def _client(make_client: Make, server: RunningServer, **kwargs: Any) -> SyncClient:
    kwargs.setdefault("tls", "required")
    return make_client(
        host=server.host,
        port=server.port,
        ssl_context=server.ssl_context(),
        server_hostname="localhost",
        timeout=TIMEOUT,
        **kwargs,
    )


def _commands(lines: list[str]) -> list[str]:
    """The client's command verbs as the server logged them (notes in <...> left out)."""
    out = []
    for line in lines:
        if line.startswith("C: ") and not line.startswith("C: <"):
            out.append(line[3:].split(" ", 1)[0].split(":", 1)[0])
    return out


def _wait_until_closed(lines: list[str]) -> None:
    """Wait (bounded) until the server logged the end of the connection."""
    deadline = time.monotonic() + TIMEOUT
    while "* connection closed" not in lines:
        assert time.monotonic() < deadline, "the client did not close the connection"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("until", "verbs"),
    [
        ("greeting", ["QUIT"]),
        ("ehlo", ["EHLO", "QUIT"]),
        ("tls", ["EHLO", "STARTTLS", "EHLO", "QUIT"]),
    ],
)
def test_connect_until_stops_at_the_stage(
    make_client: Make, served: tuple[RunningServer, list[str]], until: Any, verbs: list[str]
) -> None:
    server, lines = served
    client = _client(make_client, server)
    reply = client.connect(until=until)
    session = client.session
    assert session.greeting is not None and session.greeting.code == 220
    assert reply.code == (220 if until == "greeting" else 250)
    assert (client.tls_info is not None) == (until == "tls")
    client.quit()
    assert _commands(lines) == verbs


def test_capabilities_before_and_after_tls(
    make_client: Make, served: tuple[RunningServer, list[str]]
) -> None:
    server, _ = served
    with _client(make_client, server) as client:
        before, after = client.session.capabilities_before_tls, client.capabilities
        assert before is not None and after is not None
        assert before.starttls and not after.starttls
        assert before is not after and "PIPELINING" in after.keywords


def test_tls_info_describes_the_handshake(
    make_client: Make, served: tuple[RunningServer, list[str]]
) -> None:
    server, _ = served
    with _client(make_client, server) as client:
        info = client.tls_info
        assert isinstance(info, TLSInfo) and blocking.TLSInfo is _tls.TLSInfo
        assert info.version is not None and info.version.startswith("TLSv1.")
        assert info.cipher and info.cipher_bits and info.cipher in info.describe()
        assert info.peer_certificate_der and info.peer_certificate.get("subject")
        assert 0 <= info.handshake_seconds < TIMEOUT
    with _client(make_client, server, tls="none") as plain:
        assert plain.tls_info is None


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    ("stage", "verbs"),
    [
        ("mail", ["MAIL", "RSET", "QUIT"]),
        ("rcpt", ["MAIL", "RCPT", "RCPT", "RSET", "QUIT"]),
        ("data", ["MAIL", "RCPT", "RCPT", "DATA"]),
    ],
)
def test_sendmail_stop_after_delivers_nothing(
    make_client: Make,
    served: tuple[RunningServer, list[str]],
    stage: Any,
    verbs: list[str],
    pipelining: bool,
) -> None:
    server, lines = served
    recipients = ["b@example.org", "c@example.org"]
    with _client(make_client, server) as client:
        result = client.sendmail(
            "a@example.org", recipients, MESSAGE, stop_after=stage, pipelining=pipelining
        )
        assert result.delivered == ()
        if stage == "data":
            assert result.data_reply is not None and result.data_reply.code == 354
            assert not client.session.usable
            _wait_until_closed(lines)  # closed by sendmail, inside the with block
            with pytest.raises(SMTPProtocolError):
                client.noop()  # the connection was closed at the 354
    assert _commands(lines)[-len(verbs) :] == verbs
    # A whole message afterwards is the only one stored.
    with _client(make_client, server) as client:
        client.sendmail("a@example.org", recipients, MESSAGE)
    (stored,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert stored.data == MESSAGE
    assert len(server.messages) == 1


def test_connect_with_an_unknown_stage_fails_before_any_command(
    make_client: Make,
    served: tuple[RunningServer, list[str]],
) -> None:
    server, lines = served
    client = _client(make_client, server)
    with pytest.raises(SMTPProtocolError, match="until must be one of") as caught:
        client.connect(until="mail")  # type: ignore[arg-type]  # invalid on purpose
    with pytest.raises(SMTPProtocolError, match="broken"):
        client.noop()  # closed at once, never reused
    assert isinstance(caught.value.error, LocalProtocolError)
    assert _commands(lines) == []


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    ("stage", "verbs"), [("mail", ["MAIL"]), ("rcpt", ["MAIL", "RCPT", "RCPT"])]
)
def test_sendmail_stop_after_with_drop_closes_without_rset_or_quit(
    make_client: Make,
    served: tuple[RunningServer, list[str]],
    stage: Any,
    verbs: list[str],
    pipelining: bool,
) -> None:
    server, lines = served
    recipients = ["b@example.org", "c@example.org"]
    with _client(make_client, server) as client:
        result = client.sendmail(
            "a@example.org", recipients, MESSAGE, stop_after=stage, pipelining=pipelining,
            drop=True,
        )  # fmt: skip
        assert result.delivered == () and result.data_reply is None
        assert not client.session.usable
        _wait_until_closed(lines)  # closed by sendmail, inside the with block
    assert _commands(lines)[-len(verbs) :] == verbs  # and nothing after: no RSET, no QUIT
    assert server.messages == []
