"""Engine scenarios: transcript hook with redaction, raw mode, input-injection properties."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest_datacodec import twins
from engine_helpers import EHLO_ALL, feed, greeted, make_conn
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.client_engine.events import (
    Auth,
    AuthContinue,
    CommandReply,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Expn,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Rcpt,
    UnsafeRawBytes,
    Vrfy,
)
from smtpproto.sasl import Plain
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.twins import CReplyParser, PyReplyParser

# -- transcript ------------------------------------------------------------------------


def _recording(parser_cls: Any, **config: Any) -> tuple[Any, list[tuple[str, bytes]]]:
    lines: list[tuple[str, bytes]] = []
    conn = greeted(
        parser_cls,
        EHLO_ALL,
        transcript=lambda direction, line: lines.append((direction, line)),
        tls_policy=TLSPolicy.IMPLICIT,
        **config,
    )
    return conn, lines


def test_transcript_reports_both_directions(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls)
    assert ("S", b"220 mx.example.org ESMTP") in lines
    assert ("C", b"EHLO c.example") in lines
    assert ("S", b"250-PIPELINING") in lines
    conn.send(Noop())
    feed(conn, b"250 ok\r\n")
    assert lines[-2:] == [("C", b"NOOP"), ("S", b"250 ok")]


def test_transcript_redacts_auth(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls)
    conn.send(Auth(mechanism=Plain("user", "hunter2")))
    feed(conn, b"334 \r\n")
    conn.send(AuthContinue())
    text = b"\n".join(line for _, line in lines)
    assert b"AUTH PLAIN <redacted>" in text
    assert b"hunter2" not in text
    assert base64.b64encode(b"\0user\0hunter2") not in text


def test_transcript_redacts_mechanism_secrets_everywhere(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls)
    conn.send(Auth(mechanism=Plain("user", "hunter2")))
    feed(conn, b"535 5.7.8 password hunter2 is wrong\r\n")
    assert lines[-1] == ("S", b"535 5.7.8 password <redacted> is wrong")
    assert all(b"hunter2" not in line for _, line in lines)


def test_transcript_redacts_continuation_lines(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls)
    conn.send(Auth(mechanism=Plain("user", "p" * 400)))
    feed(conn, b"334 \r\n")
    conn.send(AuthContinue())
    assert lines[-1] == ("C", b"<redacted>")
    assert all(b"cHBw" not in line for _, line in lines)


def test_short_secret_does_not_shred_the_transcript(parser_cls: Any) -> None:
    """A one-letter password is redacted on the AUTH line, not in every "e" of the log."""
    conn, lines = _recording(parser_cls)
    conn.send(Auth(mechanism=Plain("user", "e")))
    feed(conn, b"535 5.7.8 Sender rejected\r\n")
    assert lines[-2] == ("C", b"AUTH PLAIN <redacted>")
    assert lines[-1] == ("S", b"535 5.7.8 Sender rejected")


def test_overlapping_secrets_are_redacted_in_one_pass(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls)
    conn.send(Auth(mechanism=Plain("user", "redacted-pass")))
    feed(conn, b"535 5.7.8 redacted-pass is wrong\r\n")
    assert lines[-1] == ("S", b"535 5.7.8 <redacted> is wrong")


def _into_content(conn: Any) -> None:
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")


def test_transcript_summarises_content(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls)
    _into_content(conn)
    conn.send(Content(data=b"Subject: private\r\n\r\nsecret body\r\n"))
    conn.send(EndOfContent())
    text = b"\n".join(line for _, line in lines)
    assert b"secret" not in text and b"private" not in text
    assert b"<content: 33 octets, 3 line ends>" in text
    assert lines[-1] == ("C", b".")


def test_transcript_content_verbatim_when_asked(parser_cls: Any) -> None:
    conn, lines = _recording(parser_cls, transcript_content=True)
    _into_content(conn)
    conn.send(Content(data=b"Subject: shown\r\n"))
    assert lines[-1] == ("C", b"Subject: shown")


# -- raw mode --------------------------------------------------------------------------


def test_raw_needs_opt_in(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match="allow_unsafe_raw"):
        conn.send(UnsafeRawBytes(data=b"MAIL FROM:<a@b>\n", expected_replies=1))


def test_raw_bytes_go_out_verbatim_and_replies_are_matched(parser_cls: Any) -> None:
    conn = greeted(parser_cls, allow_unsafe_raw=True)
    raw = UnsafeRawBytes(data=b"NOOP\nNOOP\r\n", expected_replies=2)
    assert conn.send(raw) == b"NOOP\nNOOP\r\n"
    events = feed(conn, b"500 bare LF\r\n250 ok\r\n")
    assert [type(e) for e in events] == [CommandReply, CommandReply]
    assert all(isinstance(e, CommandReply) and e.command is raw for e in events)
    conn.receive_data(b"250 extra\r\n")
    with pytest.raises(Exception, match="unsolicited"):
        conn.next_event()


def test_raw_replies_still_parsed_strictly(parser_cls: Any) -> None:
    conn = greeted(parser_cls, allow_unsafe_raw=True)
    conn.send(UnsafeRawBytes(data=b"X\r\n", expected_replies=1))
    with pytest.raises(Exception, match="LF"):
        feed(conn, b"250 ok\n")


def test_raw_allowed_before_greeting(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, allow_unsafe_raw=True)
    assert conn.send(UnsafeRawBytes(data=b"EARLY\r\n", expected_replies=0)) == b"EARLY\r\n"


# -- no caller input with CR, LF or NUL reaches the wire --------------------------------

_bad_text = st.tuples(st.text(max_size=20), st.sampled_from("\r\n\x00"), st.text(max_size=20)).map(
    "".join
)


def _builders() -> list[Any]:
    return [
        lambda s: Ehlo(hostname=s),
        lambda s: Helo(hostname=s),
        lambda s: Lhlo(hostname=s),
        lambda s: Mail(sender=s),
        lambda s: Mail(sender="a@example.org", envid=s),
        lambda s: Mail(sender="a@example.org", by=s),
        lambda s: Mail(sender="a@example.org", auth=s),
        lambda s: Rcpt(recipient=s),
        lambda s: Rcpt(recipient="b@example.org", orcpt=s),
        lambda s: Rcpt(recipient="b@example.org", notify=[s]),
        lambda s: Vrfy(argument=s),
        lambda s: Expn(argument=s),
        lambda s: Help(topic=s),
        lambda s: Plain(s, "pw"),
        lambda s: Plain("user", s),
    ]


TWINS = st.sampled_from(twins(PyReplyParser, CReplyParser))  # a missing build fails


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_builders()))), _bad_text, TWINS)
def test_cr_lf_nul_never_reach_the_wire(index: int, text: str, twin: Any) -> None:
    build = _builders()[index]
    try:
        command = build(text)
    except LocalProtocolError:
        return
    # Plain accepted the value: AUTH base64-encodes it, so no raw CR/LF/NUL is sent.
    assert isinstance(command, Plain)
    conn = greeted(twin, tls_policy=TLSPolicy.IMPLICIT)
    wire = conn.send(Auth(mechanism=command))
    assert wire.count(b"\r\n") == 1 and wire.endswith(b"\r\n")
    assert b"\x00" not in wire


_addresses = st.text(max_size=40) | st.from_regex(
    r'[a-zA-Z0-9."\\ \r\n\x00\x7f\u2028\u0085é-]{1,20}@[a-z0-9.\r\n\x00-]{1,20}',
    fullmatch=True,
)


@settings(max_examples=300)
@given(_addresses, TWINS)
def test_any_accepted_address_yields_one_clean_line(text: str, twin: Any) -> None:
    try:
        command = Rcpt(recipient=text)
    except LocalProtocolError:
        return
    conn = greeted(twin)
    conn.send(Mail(sender="a@example.org", smtputf8=True))
    try:
        wire = conn.send(command)
    except LocalProtocolError:
        return
    assert wire.endswith(b"\r\n") and wire.count(b"\r") == 1 and wire.count(b"\n") == 1
    assert b"\x00" not in wire
