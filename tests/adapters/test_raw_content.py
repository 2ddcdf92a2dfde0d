"""``sendmail(raw=True)`` with every adapter against the built-in server: the octets
reach the server as given (bare CR and LF kept, no dot-stuffing added: the server's
own un-stuffing shows it), and content that would end the DATA early is refused
before MAIL, the client still usable."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest

from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import RunningServer, run_server

from .facade import SyncClient

Make = Callable[..., SyncClient]

RAW = b"Subject: raw\r\n\r\nbare LF\n.\nbare CR\r.\r\n..not stuffed\r\nlast line"
#: What the server stores: one leading dot removed (RFC 5321 §4.5.2), the last line's
#: CRLF from the end of data.
STORED = b"Subject: raw\r\n\r\nbare LF\n.\nbare CR\r.\r\n.not stuffed\r\nlast line\r\n"
TIMEOUT = 10.0


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, list[str]]]:
    lines: list[str] = []
    with run_server(transcript=lines.append) as server:
        yield server, lines


@pytest.mark.parametrize("pipelining", [True, False])
def test_raw_content_arrives_as_given(
    make_client: Make, served: tuple[RunningServer, list[str]], pipelining: bool
) -> None:
    server, _ = served
    with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
        result = client.sendmail(
            "a@example.org", ["b@example.org"], io.BytesIO(RAW), raw=True, pipelining=pipelining
        )
        assert result.delivered == ("b@example.org",)
    (stored,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert stored.data == STORED


def test_raw_content_that_would_end_the_data_is_refused_before_mail(
    make_client: Make, served: tuple[RunningServer, list[str]]
) -> None:
    server, lines = served
    smuggled = b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<evil@example.org>\r\n"
    with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
        with pytest.raises(SMTPProtocolError, match="at content octet 18"):
            client.sendmail("a@example.org", ["b@example.org"], smuggled, raw=True)
        assert client.noop().code == 250  # nothing was sent: the session goes on
    assert not any(line.startswith(("C: MAIL", "C: DATA")) for line in lines)
    assert server.messages == []
