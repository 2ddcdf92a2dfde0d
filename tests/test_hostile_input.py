"""Hostile peers: nothing but a ``ProtocolError`` ever escapes either engine.

docs/design.md §2: any other exception type escaping ``receive_data``/``next_event``/``send``
is a bug. The client is put in a state (greeting due, EHLO/MAIL/RCPT/DATA pipelined,
AUTH in progress, content sent, STARTTLS sent) and then fed random reply-like bytes in
random chunks; the server is fed random command-like lines, content and BDAT chunks.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import EHLO_ALL, feed, greeted, make_conn
from server_support import Session
from smtpproto.client_engine.events import (
    NEED_DATA,
    Auth,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Mail,
    Rcpt,
    StartTLS,
)
from smtpproto.sasl import Plain
from smtpproto.wire.errors import ProtocolError

# -- the client engine ----------------------------------------------------------------------

CODES = st.sampled_from([b"220", b"221", b"235", b"250", b"334", b"354", b"421", b"535", b"999"])
SEPARATORS = st.sampled_from([b" ", b"-", b"", b"\t"])
TEXT = st.binary(max_size=40) | st.sampled_from(
    [
        b"PIPELINING",
        b"SIZE 0",
        b"SIZE x",
        b"AUTH PLAIN",
        b"AUTH=LOGIN",
        b"LIMITS RCPTMAX=0",
        b"2.0.0 ok",
        b"5.9.9",
        b"dGVzdA==",
        b"=",
        b"*",
        b"\x00\xff",
        b"CHUNKING",
        b"8BITMIME",
    ]
)
ENDS = st.sampled_from([b"\r\n", b"\n", b"\r", b""])
LINE = st.builds(lambda c, s, t, e: c + s + t + e, CODES, SEPARATORS, TEXT, ENDS)
STREAM = st.lists(LINE | st.binary(max_size=20), max_size=12).map(b"".join)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _client_in(setup: str, parser_cls: Any) -> Any:
    if setup == "greeting":
        return make_conn(parser_cls)
    if setup == "ehlo":
        conn = make_conn(parser_cls)
        feed(conn, b"220 mx\r\n")
        conn.send(Ehlo(hostname="c.example"))
        return conn
    conn = greeted(parser_cls, EHLO_ALL, allow_cleartext_auth=True)
    if setup == "pipelined":
        conn.send(Mail(sender="a@b.example"))
        conn.send(Rcpt(recipient="c@d.example"))
        conn.send(Data())
    elif setup == "content":
        conn.send(Mail(sender="a@b.example"))
        conn.send(Rcpt(recipient="c@d.example"))
        conn.send(Data())
        feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
        conn.send(Content(data=b"hi\r\n"))
        conn.send(EndOfContent())
    elif setup == "auth":
        conn.send(Auth(mechanism=Plain("user", "secret-pw")))
    elif setup == "starttls":
        conn.send(StartTLS())
    return conn


# parser_cls is a class, never mutated: sharing it between examples is safe.
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    setup=st.sampled_from(["greeting", "ehlo", "pipelined", "content", "auth", "starttls"]),
    data=STREAM,
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    eof=st.booleans(),
)
def test_client_engine_raises_only_protocol_errors(
    parser_cls: Any, setup: str, data: bytes, cuts: list[int], eof: bool
) -> None:
    conn = _client_in(setup, parser_cls)
    try:
        for chunk in [*_chunks(data, cuts), *([b""] if eof else [])]:
            if chunk or eof:
                conn.receive_data(chunk)
            for _ in range(1000):
                if conn.next_event() is NEED_DATA:
                    break
                if conn.state.name in ("CLOSED", "ERROR"):
                    break
    except ProtocolError:
        pass


# -- the server engine ----------------------------------------------------------------------

VERBS = st.sampled_from(
    [
        b"EHLO",
        b"HELO",
        b"LHLO",
        b"MAIL FROM:",
        b"RCPT TO:",
        b"DATA",
        b"BDAT",
        b"AUTH",
        b"STARTTLS",
        b"RSET",
        b"NOOP",
        b"QUIT",
        b"VRFY",
        b"EXPN",
        b"HELP",
        b"XYZZY",
        b".",
    ]
)
ARGS = st.binary(max_size=40) | st.sampled_from(
    [
        b" c.example",
        b"<a@b.example>",
        b"<>",
        b" 10",
        b" 0 LAST",
        b" 5",
        b" PLAIN",
        b" PLAIN =",
        b" PLAIN AHVzZXIAcHc=",
        b" LOGIN",
        b" <a@b> SIZE=x BODY=8BITMIME",
        b" <a@b> NOTIFY=NEVER ORCPT=rfc822;x+2",
        b" 99999999999999999999",
        b"*",
        b" \xff",
    ]
)
CLIENT_LINE = st.builds(lambda v, a, e: v + a + e, VERBS, ARGS, ENDS)
CLIENT_STREAM = st.lists(CLIENT_LINE | st.binary(max_size=20), max_size=14).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    data=CLIENT_STREAM,
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    eof=st.booleans(),
    lmtp=st.booleans(),
)
def test_server_engine_raises_only_protocol_errors(
    data: bytes, cuts: list[int], eof: bool, lmtp: bool
) -> None:
    session = Session(lmtp=lmtp)
    with contextlib.suppress(ProtocolError):
        session.feed(*_chunks(data, cuts), *([b""] if eof else []))
