"""Raw DATA content: ``wire.rawdata.RawDataGuard``, the engine's ``RawContent`` and
``sendmail(raw=True)``. The octets go out exactly as given (no CRLF fixes, no
dot-stuffing); the one rule kept is that the content can never end the DATA early
(RFC 5321 §4.1.1.4: CRLF . CRLF), checked across chunk boundaries, and
``sendmail`` refuses such content before MAIL, so nothing is half-sent."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import ScriptedServer, feed, greeted, names
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import (
    Content,
    Data,
    EndOfContent,
    Mail,
    RawContent,
    Rcpt,
)
from smtpproto.client_engine.states import ClientState
from smtpproto.drivers.session import Session
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.wire.errors import LocalProtocolError, ProtocolError
from smtpproto.wire.rawdata import END_OF_DATA, RawDataGuard

SMUGGLING = b"Subject: x\r\n\r\nbare LF\n.\nbare CR\r.\r\n..not stuffed\r\nNUL\0\r\nend"
EHLO_8BIT = b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_7BIT = b"250-mx.example.org\r\n250 PIPELINING\r\n"
EHLO_CHUNKING = b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"


def guarded(content: bytes, cuts: list[int]) -> bytes:
    """``content`` fed in pieces cut at ``cuts``, then the end: the wire."""
    guard = RawDataGuard()
    out = b""
    start = 0
    for cut in [*sorted(cuts), len(content)]:
        out += guard.feed(content[start:cut])
        start = cut
    return out + guard.end()


# -- the guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a\n", b"a\n\r\n.\r\n"),
        (b"a\r", b"a\r\r\n.\r\n"),
        (SMUGGLING, SMUGGLING + b"\r\n.\r\n"),
        (b"\r\n.x\r\n", b"\r\n.x\r\n.\r\n"),
    ],
)
def test_the_wire_is_the_content_then_the_end(content: bytes, wire: bytes) -> None:
    assert guarded(content, []) == wire


@pytest.mark.parametrize(
    ("content", "offset"),
    [(b".\r\n", 0), (b"a\r\n.\r\nMAIL FROM:<x@y>\r\n", 3), (b"a\r\n.\r\n", 3), (b"\r\n.\r\n", 2)],
)
def test_the_end_of_data_inside_is_refused_with_its_offset(content: bytes, offset: int) -> None:
    for cut in range(len(content) + 1):
        with pytest.raises(LocalProtocolError, match=f"at content octet {offset}:"):
            guarded(content, [cut])


@pytest.mark.parametrize("content", [b".", b"a\r\n."])
def test_a_last_line_dot_without_crlf_is_refused_at_the_end(content: bytes) -> None:
    guard = RawDataGuard()
    guard.feed(content)
    with pytest.raises(LocalProtocolError, match="one line early"):
        guard.end()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\0", b"\xff"]), max_size=24),
    st.lists(st.integers(0, 24), max_size=4),
)
def test_the_guard_refuses_exactly_what_would_end_the_data_early(
    pieces: list[bytes], cuts: list[int]
) -> None:
    content = b"".join(pieces)
    cuts = [min(cut, len(content)) for cut in cuts]
    end = b".\r\n" if content.endswith(b"\r\n") or not content else END_OF_DATA
    whole = b"\r\n" + content + end
    early = whole.find(END_OF_DATA) != len(whole) - len(END_OF_DATA)
    try:
        wire = guarded(content, cuts)
    except LocalProtocolError:
        assert early
    else:
        assert not early and wire == content + end


# -- the engine ----------------------------------------------------------------------------


def in_content(parser_cls: Any, ehlo: bytes = EHLO_8BIT, **config: Any) -> Any:
    conn = greeted(parser_cls, ehlo, **config)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Data())
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.state is ClientState.CONTENT
    return conn


def test_raw_content_goes_out_as_given_and_the_end_follows(parser_cls: Any) -> None:
    conn = in_content(parser_cls)
    assert conn.send(RawContent(data=SMUGGLING[:20])) == SMUGGLING[:20]
    assert conn.send(RawContent(data=SMUGGLING[20:])) == SMUGGLING[20:]
    assert conn.send(EndOfContent()) == b"\r\n.\r\n"
    assert names(feed(conn, b"250 queued\r\n"))[-1] == "TransactionResult"
    assert conn.state is ClientState.READY


def test_raw_content_that_would_end_the_data_is_refused_and_sticky(parser_cls: Any) -> None:
    conn = in_content(parser_cls)
    conn.send(RawContent(data=b"x\r\n"))
    with pytest.raises(LocalProtocolError, match="at content octet 3"):
        conn.send(RawContent(data=b".\r\nRSET\r\n"))
    assert conn.state is ClientState.ERROR  # earlier chunks are on the wire
    with pytest.raises(ProtocolError):
        conn.send(EndOfContent())


@pytest.mark.parametrize("first", [Content, RawContent])
def test_raw_and_normal_content_do_not_mix(parser_cls: Any, first: type) -> None:
    conn = in_content(parser_cls)
    conn.send(first(data=b"x"))
    second = Content if first is RawContent else RawContent
    with pytest.raises(LocalProtocolError, match="do not mix"):
        conn.send(second(data=b"y"))
    assert conn.state is ClientState.ERROR


def test_raw_content_only_in_content_and_only_bytes(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_8BIT)
    with pytest.raises(LocalProtocolError, match="cannot be sent in state READY"):
        conn.send(RawContent(data=b"x"))
    assert conn.state is ClientState.ERROR  # content continues an exchange: as Content
    with pytest.raises(LocalProtocolError, match="raw content must be bytes"):
        RawContent(data="text")  # type: ignore[arg-type]  # wrong on purpose


def test_the_next_message_is_normal_content_again(parser_cls: Any) -> None:
    conn = in_content(parser_cls)
    conn.send(RawContent(data=b"a\nb"))
    conn.send(EndOfContent())
    feed(conn, b"250 queued\r\n")
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Data())
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.send(Content(data=b".a\nb")) == b"..a\r\nb"


# -- sendmail(raw=True) --------------------------------------------------------------------


def opened(ehlo: bytes = EHLO_8BIT) -> tuple[Session, Transport, ScriptedServer]:
    server = ScriptedServer({b"EHLO": [ehlo]})
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = Transport(server)
    transport.run(session.open())
    return session, transport, server


@pytest.mark.parametrize(
    "make",
    [
        lambda: SMUGGLING,
        lambda: bytearray(SMUGGLING),
        lambda: io.BytesIO(SMUGGLING),
        lambda: SMUGGLING.decode("ascii"),  # a str goes as UTF-8
    ],
)
@pytest.mark.parametrize("pipelining", [True, False])
def test_sendmail_raw_writes_the_content_as_given(make: Any, pipelining: bool) -> None:
    session, transport, _server = opened()
    content = make()
    result = transport.run(
        session.sendmail(
            "a@example.org",
            ["b@example.org"],
            content,
            raw=True,
            pipelining=pipelining,
            chunk_size=7,
        )
    )
    expected = SMUGGLING if not isinstance(content, str) else content.encode()
    assert b"".join(transport.written).endswith(b"DATA\r\n" + expected + b"\r\n.\r\n")
    assert result.delivered == ("b@example.org",) and session.usable


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"a\r\n.\r\nMAIL FROM:<evil@example.org>\r\n", "at content octet 3"),
        (io.BytesIO(b"x" * 100 + b"\r\n.\r\n" + b"y"), "at content octet 102"),
        (b"a\r\n.", "one line early"),
        (iter([b"a\r\n"]), "must be bytes, str or a seekable binary file"),
    ],
)
def test_sendmail_raw_refuses_before_mail(content: Any, match: str) -> None:
    session, transport, _server = opened()
    before = len(transport.written)
    with pytest.raises(SMTPProtocolError, match=match):
        transport.run(
            session.sendmail("a@example.org", ["b@example.org"], content, raw=True, chunk_size=7)
        )
    assert len(transport.written) == before and session.usable  # nothing was sent


def test_sendmail_raw_8bit_needs_8bitmime() -> None:
    session, transport, _ = opened(EHLO_7BIT)
    with pytest.raises(SMTPProtocolError, match="8BITMIME"):
        transport.run(
            session.sendmail("a@example.org", "b@example.org", io.BytesIO(b"\xff\r\n"), raw=True)
        )
    assert session.usable
    result = transport.run(
        session.sendmail("a@example.org", "b@example.org", io.BytesIO(b"ascii\n"), raw=True)
    )
    assert result.delivered == ("b@example.org",)


def test_sendmail_raw_uses_data_even_with_chunking() -> None:
    session, transport, server = opened(EHLO_CHUNKING)
    transport.run(session.sendmail("a@example.org", "b@example.org", b"a\nb", raw=True))
    assert b"DATA" in server.lines and not any(line.startswith(b"BDAT") for line in server.lines)
    with pytest.raises(SMTPProtocolError, match="not with chunking"):
        session.sendmail("a@example.org", "b@example.org", b"x", raw=True, chunking=True)
    with pytest.raises(SMTPProtocolError, match="raw must be True or False"):
        session.sendmail("a@example.org", "b@example.org", b"x", raw=1)  # type: ignore[arg-type]
