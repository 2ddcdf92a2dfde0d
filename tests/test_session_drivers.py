"""The session drivers (``smtpproto.drivers``) against an in-memory scripted server.

``session_helpers.Transport`` plays the adapter, so these tests check what the drivers
decide (commands, grouping, TLS, AUTH, exceptions) without any I/O.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_helpers import EHLO_PIPELINING, ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig, Timeouts, TLSPolicy
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.session import (
    LAST_WORDS_TIMEOUT,
    MailOptions,
    Read,
    Session,
    UpgradeTLS,
    Write,
    default_port,
    default_tls_policy,
    hello_name,
    make_timeouts,
)
from smtpproto.drivers.support import content_chunks
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from smtpproto.sasl import ChannelBinding, Plain
from smtpproto.wire.datacodec import LineEndNormalizer as LineEnds
from smtpproto.wire.errors import RemoteProtocolError

EHLO_FULL = (
    b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n"
    b"250-SMTPUTF8\r\n250-DSN\r\n250 AUTH PLAIN LOGIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n"
)
EHLO_CHUNKING = b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
EHLO_CHUNKING_ONLY = b"250-mx.example.org\r\n250 CHUNKING\r\n"
EHLO_TLS = b"250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


def opened(
    script: dict[bytes, list[bytes]] | None = None, **config: Any
) -> tuple[Session, Transport, ScriptedServer]:
    server = ScriptedServer(script)
    session = Session(ClientConfig(**config), local_hostname="client.example")
    transport = Transport(server)
    transport.run(session.open())
    return session, transport, server


def commands(server: ScriptedServer) -> list[bytes]:
    return [line.split(b" ", 1)[0].split(b":", 1)[0] for line in server.lines]


# -- small helpers --------------------------------------------------------------------------


def test_default_tls_policy_from_port_and_names() -> None:
    assert default_tls_policy(None, 465) is TLSPolicy.IMPLICIT
    assert default_tls_policy(None, 587) is TLSPolicy.REQUIRED
    assert default_tls_policy(None, 25) is TLSPolicy.OPPORTUNISTIC
    assert default_tls_policy("none", 465) is TLSPolicy.NONE
    assert default_tls_policy(TLSPolicy.REQUIRED, 25) is TLSPolicy.REQUIRED
    with pytest.raises(Exception, match="tls must be one of"):
        default_tls_policy("sometimes", 25)  # type: ignore[arg-type]  # invalid on purpose
    assert default_port(TLSPolicy.IMPLICIT) == 465
    assert default_port(TLSPolicy.REQUIRED) == 587
    assert default_port(TLSPolicy.OPPORTUNISTIC) == 25
    assert default_port(TLSPolicy.NONE, lmtp=True) == 24


def test_make_timeouts_and_hello_name() -> None:
    assert make_timeouts(None) == Timeouts()
    assert make_timeouts(2).data_termination == 2.0
    with pytest.raises(Exception, match="timeout must be"):
        make_timeouts("5")  # type: ignore[arg-type]  # invalid on purpose
    assert hello_name("me.example", "10.0.0.1") == "me.example"
    assert hello_name(None, "10.0.0.1") == "[10.0.0.1]"
    assert hello_name(None, "::1") == "[IPv6:::1]"
    assert hello_name(None, "fe80::1%eth0") == "[IPv6:fe80::1]"
    assert hello_name(None, None) == "localhost"


@given(st.binary(max_size=60), st.lists(st.integers(1, 60), max_size=8))
def test_bdat_line_ends_are_chunking_invariant(data: bytes, cuts: list[int]) -> None:
    whole = LineEnds()
    expected = whole.feed(data) + whole.finish()
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(data[start:cut])
        start = max(start, cut)
    pieces.append(data[start:])
    split = LineEnds()
    got = b"".join(split.feed(piece) for piece in pieces) + split.finish()
    assert got == expected
    stripped = expected.replace(b"\r\n", b"")
    assert b"\r" not in stripped and b"\n" not in stripped
    assert not expected or expected.endswith(b"\r\n")


def test_content_chunks_bound_every_source() -> None:
    for source in (b"x" * 10, "x" * 10, io.BytesIO(b"x" * 10), [b"xxxx", b"xxxxxx"]):
        chunks, _ = content_chunks(source, 4)
        got = list(chunks)
        assert b"".join(got) == b"x" * 10
        assert max(len(c) for c in got) <= 4
    assert content_chunks(io.BytesIO(b"abc"), 4)[1] == 3
    with pytest.raises(Exception, match="binary mode"):
        list(content_chunks(io.StringIO("text"), 4)[0])  # type: ignore[arg-type]  # on purpose
    with pytest.raises(Exception, match="chunks must be bytes"):
        list(content_chunks(["text"], 4)[0])  # type: ignore[list-item]  # on purpose
    with pytest.raises(Exception, match="chunks must be bytes, got NoneType"):
        list(content_chunks([b"a", None], 4)[0])  # type: ignore[list-item]  # on purpose
    with pytest.raises(Exception, match="content must be"):
        content_chunks(12, 4)  # type: ignore[arg-type]  # on purpose


# -- open -------------------------------------------------------------------------------------


def test_open_sends_ehlo_and_returns_its_reply() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]})
    assert server.lines == [b"EHLO client.example"]
    assert session.conn.capabilities is not None and session.conn.capabilities.pipelining
    assert session.usable
    assert [type(r) for r in transport.requests] == [Read, Write, Read]


def test_open_falls_back_to_helo_when_ehlo_is_not_supported() -> None:
    session, _, server = opened({b"EHLO": [b"502 5.5.1 no\r\n"]})
    assert commands(server) == [b"EHLO", b"HELO"]
    assert session.conn.capabilities is None and session.usable


def test_open_upgrades_with_starttls_and_says_ehlo_again() -> None:
    server = ScriptedServer({b"EHLO": [EHLO_TLS, EHLO_FULL]})
    session = Session(ClientConfig(), server_hostname="mx.example.org")
    transport = Transport(server)
    transport.binding = ChannelBinding("tls-server-end-point", b"\x01" * 32)
    transport.run(session.open())
    assert commands(server) == [b"EHLO", b"STARTTLS", b"EHLO"]
    upgrade = [r for r in transport.requests if isinstance(r, UpgradeTLS)]
    assert upgrade == [UpgradeTLS("mx.example.org", Timeouts().other)]
    assert session.conn.tls_active and session.channel_binding == transport.binding


def test_opportunistic_tls_continues_when_starttls_is_refused() -> None:
    session, transport, server = opened(
        {b"EHLO": [EHLO_TLS], b"STARTTLS": [b"454 4.7.0 not now\r\n"]}
    )
    assert commands(server) == [b"EHLO", b"STARTTLS"]
    assert transport.tls_upgrades == 0 and session.usable and not session.conn.tls_active


def test_required_tls_fails_without_starttls() -> None:
    server = ScriptedServer({b"EHLO": [EHLO_PIPELINING]})
    session = Session(ClientConfig(tls_policy=TLSPolicy.REQUIRED))
    with pytest.raises(SMTPTLSError, match="does not advertise STARTTLS"):
        Transport(server).run(session.open())
    assert not session.usable


def test_required_tls_fails_when_starttls_is_refused() -> None:
    server = ScriptedServer({b"EHLO": [EHLO_TLS], b"STARTTLS": [b"454 4.7.0 no\r\n"]})
    session = Session(ClientConfig(tls_policy=TLSPolicy.REQUIRED))
    with pytest.raises(SMTPTLSError, match="STARTTLS was refused"):
        Transport(server).run(session.open())


def test_implicit_tls_upgrades_before_the_greeting() -> None:
    session = Session(ClientConfig(tls_policy=TLSPolicy.IMPLICIT), server_hostname="mx")
    transport = Transport(ScriptedServer({b"EHLO": [EHLO_TLS]}))
    transport.run(session.open())
    assert isinstance(transport.requests[0], UpgradeTLS)
    assert transport.tls_upgrades == 1  # STARTTLS is not used again under TLS


@pytest.mark.parametrize("greeting", [b"554 5.3.2 go away\r\n", b"421 4.3.2 busy\r\n"])
def test_refused_greeting_raises_reply_error(greeting: bytes) -> None:
    session = Session()
    with pytest.raises(SMTPReplyError) as info:
        Transport(ScriptedServer(), greeting=greeting).run(session.open())
    assert info.value.code == int(greeting[:3])
    assert not session.usable


def test_refused_ehlo_and_helo_raise_with_the_verb() -> None:
    server = ScriptedServer({b"EHLO": [b"502 no\r\n"], b"HELO": [b"550 5.7.1 not you\r\n"]})
    with pytest.raises(SMTPReplyError, match="HELO refused") as info:
        Transport(server).run(Session().open())
    assert info.value.command == "HELO"


# -- login ------------------------------------------------------------------------------------


def test_login_picks_the_strongest_offered_mechanism() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]}, allow_cleartext_auth=True)
    server.script[b"AUTH"] = [b"235 2.7.0 ok\r\n"]
    # The scripted server cannot do SCRAM: give the mechanism to test the wire; the
    # choice itself is tested below.
    reply = transport.run(session.login("alice", mechanism=Plain("alice", "pw")))
    assert reply.code == 235 and session.conn.authenticated
    assert server.lines[-1] == b"AUTH PLAIN " + base64.b64encode(b"\0alice\0pw")


def test_login_choice_uses_scram_plus_with_channel_binding() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]}, allow_cleartext_auth=True)
    session.channel_binding = ChannelBinding("tls-server-end-point", b"\x02" * 32)
    server.script[b"AUTH"] = [b"535 5.7.8 no\r\n"]
    with pytest.raises(SMTPReplyError, match="AUTH refused"):
        transport.run(session.login("alice", "pw"))
    assert server.lines[-1].startswith(b"AUTH SCRAM-SHA-256-PLUS ")
    assert session.usable  # a refused AUTH leaves the session usable


def test_login_two_step_exchange_answers_challenges() -> None:
    session, transport, server = opened(
        {b"EHLO": [b"250-mx\r\n250 AUTH LOGIN\r\n"]}, allow_cleartext_auth=True
    )
    server.script[b"AUTH"] = [b"334 VXNlcm5hbWU6\r\n"]
    # ScriptedServer upper-cases the first word of a line to find its script.
    server.script[base64.b64encode(b"bob").upper()] = [b"334 UGFzc3dvcmQ6\r\n"]
    server.script[base64.b64encode(b"paz").upper()] = [b"235 2.7.0 ok\r\n"]
    assert transport.run(session.login("bob", "paz")).code == 235
    assert server.lines[-2:] == [base64.b64encode(b"bob"), base64.b64encode(b"paz")]


def test_login_without_auth_or_over_cleartext_is_refused_before_sending() -> None:
    session, transport, _ = opened()
    with pytest.raises(SMTPProtocolError, match="does not advertise AUTH"):
        transport.run(session.login("a", "b"))
    session, transport, _server = opened({b"EHLO": [EHLO_FULL]})
    with pytest.raises(SMTPProtocolError, match="cleartext") as info:
        transport.run(session.login("a", "b"))
    # Refused before a byte of AUTH existed: the session goes on (docs/design.md §2).
    assert not info.value.remote and session.usable
    assert transport.run(session.noop()).code == 250
    assert commands(_server)[-1] == b"NOOP" and not any(
        line.startswith(b"AUTH") for line in commands(_server)
    )


# -- sendmail ---------------------------------------------------------------------------------


def test_pipelined_sendmail_writes_the_envelope_once() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]})
    before = len(transport.written)
    result = transport.run(session.sendmail("a@example.org", ["b@x.org", "c@x.org"], MESSAGE))
    writes = transport.written[before:]
    assert writes[0] == (
        b"MAIL FROM:<a@example.org> SIZE=22\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\nDATA\r\n"
    )
    assert writes[1] == MESSAGE + b".\r\n"
    assert len(writes) == 2
    assert result.delivered == ("b@x.org", "c@x.org")
    assert server.messages == [MESSAGE]


def test_without_pipelining_commands_wait_for_replies() -> None:
    session, transport, server = opened({b"EHLO": [b"250 mx\r\n"]})
    before = len(transport.written)
    transport.run(session.sendmail("a@x.org", "b@x.org", "Subject: s\n\nbody\n"))
    writes = transport.written[before:]
    assert writes[:3] == [b"MAIL FROM:<a@x.org>\r\n", b"RCPT TO:<b@x.org>\r\n", b"DATA\r\n"]
    assert server.messages == [b"Subject: s\r\n\r\nbody\r\n"]


def test_pipelining_can_be_turned_off() -> None:
    session, transport, _server = opened({b"EHLO": [EHLO_FULL]})
    before = len(transport.written)
    transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE, pipelining=False))
    assert transport.written[before] == b"MAIL FROM:<a@x.org> SIZE=22\r\n"


def test_partial_refusal_returns_results_without_raising() -> None:
    session, transport, _ = opened({b"EHLO": [EHLO_FULL], b"RCPT": [b"550 5.1.1 no\r\n"]})
    result = transport.run(session.sendmail("a@x.org", ["b@x.org", "c@x.org"], MESSAGE))
    assert result.delivered == ("c@x.org",)
    assert [(a, r.code) for a, r in result.failed] == [("b@x.org", 550)]


@pytest.mark.parametrize("ehlo", [EHLO_FULL, b"250 mx\r\n", EHLO_CHUNKING])
def test_all_recipients_refused_raises_with_every_result(ehlo: bytes) -> None:
    refuse = [b"550 5.1.1 no\r\n", b"451 4.3.0 later\r\n"]
    session, transport, server = opened({b"EHLO": [ehlo], b"RCPT": refuse})
    big = b"x" * 100 + b"\r\n"
    with pytest.raises(SMTPRecipientsRefused) as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org", "c@x.org"], big, chunk_size=40))
    assert [(a, r.code) for a, r in info.value.results] == [("b@x.org", 550), ("c@x.org", 451)]
    # Pipelined DATA got a 354 with nobody accepted: a lone "." was sent (RFC 2920 §3.1).
    assert all(message == b"" for message in server.messages) and session.usable


def test_refused_mail_raises_reply_error_for_mail() -> None:
    session, transport, _ = opened({b"EHLO": [EHLO_FULL], b"MAIL": [b"553 5.1.8 bad\r\n"]})
    with pytest.raises(SMTPReplyError, match="MAIL refused") as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))
    assert info.value.code == 553 and session.usable
    session, transport, _ = opened({b"MAIL": [b"553 5.1.8 bad\r\n"], b"EHLO": [b"250 mx\r\n"]})
    with pytest.raises(SMTPReplyError, match="MAIL refused"):
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))


def test_refused_content_raises_reply_error() -> None:
    session, transport, _ = opened({b"EHLO": [EHLO_FULL], b".": [b"554 5.6.0 spam\r\n"]})
    with pytest.raises(SMTPReplyError, match="DATA refused") as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))
    assert info.value.code == 554 and session.usable
    assert transport.run(session.noop()).code == 250


def test_service_closing_during_a_transaction_ends_the_session() -> None:
    session, transport, _ = opened({b"EHLO": [EHLO_FULL], b"RCPT": [b"421 4.3.2 bye\r\n"]})
    with pytest.raises(SMTPReplyError) as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))
    assert info.value.code == 421 and not session.usable


def test_automatic_mail_parameters() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]})
    transport.run(session.sendmail("a@x.org", ["b@x.org"], "caf\u00e9\n"))
    # 6 octets, sent as 7: the bare LF goes out as CRLF, and SIZE= counts it (RFC 1870 §3)
    assert server.lines[-3] == b"MAIL FROM:<a@x.org> SIZE=7 BODY=8BITMIME"
    # A seekable file is read first (``prescan``): sent as 5 octets, ASCII (no BODY=).
    transport.run(session.sendmail("\u00e4@x.org", ["b@x.org"], io.BytesIO(b"abc")))
    assert server.lines[-3] == "MAIL FROM:<\u00e4@x.org> SIZE=5 SMTPUTF8".encode()
    options = MailOptions(ret="HDRS", envid="id1", notify=("FAILURE",))
    transport.run(session.sendmail("a@x.org", ["b@x.org"], b"x\r\n", options=options))
    assert server.lines[-3:-1] == [
        b"MAIL FROM:<a@x.org> SIZE=3 RET=HDRS ENVID=id1",
        b"RCPT TO:<b@x.org> NOTIFY=FAILURE",
    ]
    options = MailOptions(orcpt=True)
    transport.run(session.sendmail("a@x.org", ["b+x@x.org", "c@x.org"], b"x\r\n", options=options))
    assert server.lines[-3:-1] == [
        b"RCPT TO:<b+x@x.org> ORCPT=rfc822;b+2Bx@x.org",
        b"RCPT TO:<c@x.org> ORCPT=rfc822;c@x.org",
    ]


def test_content_is_streamed_in_bounded_writes_with_progress() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]})
    seen: list[tuple[int, int | None]] = []
    body = b"line of text\r\n" * 2000
    before = len(transport.written)
    transport.run(
        session.sendmail(
            "a@x.org",
            ["b@x.org"],
            io.BytesIO(body),
            chunk_size=1000,
            progress=lambda sent, total: seen.append((sent, total)),
        )
    )
    content_writes = transport.written[before + 1 :]
    assert max(len(w) for w in content_writes) <= 1100
    assert seen[-1] == (len(body), len(body)) and len(seen) == 28
    assert server.messages == [body]


def test_iterable_content_with_unknown_size() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_FULL]})
    seen: list[tuple[int, int | None]] = []
    chunks = (b"%d\n" % i for i in range(100))
    transport.run(
        session.sendmail("a@x.org", "b@x.org", chunks, progress=lambda s, t: seen.append((s, t)))
    )
    assert server.messages == [b"".join(b"%d\r\n" % i for i in range(100))]
    assert seen[-1][1] is None
    assert b"SIZE=" not in server.lines[-3]


def test_small_message_with_chunking_is_one_write() -> None:
    session, transport, server = opened({b"EHLO": [EHLO_CHUNKING]})
    before = len(transport.written)
    transport.run(session.sendmail("a@x.org", ["b@x.org"], b"Subject: s\n\nbody"))
    assert transport.written[before:] == [
        b"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nBDAT 20 LAST\r\nSubject: s\r\n\r\nbody\r\n"
    ]
    assert server.messages == [b"Subject: s\r\n\r\nbody\r\n"]


@pytest.mark.parametrize("ehlo", [EHLO_CHUNKING, EHLO_CHUNKING_ONLY])
def test_large_message_with_chunking_streams_bdat_chunks(ehlo: bytes) -> None:
    session, transport, server = opened({b"EHLO": [ehlo]})
    body = b"a\nb\r" * 300
    transport.run(session.sendmail("a@x.org", ["b@x.org"], body, chunk_size=100))
    assert server.messages == [body.replace(b"\r", b"\n").replace(b"\n", b"\r\n")]
    bdats = [line for line in server.lines if line.startswith(b"BDAT")]
    assert len(bdats) == 12 and bdats[-1].endswith(b"LAST")


def test_refused_bdat_chunk_stops_the_stream_and_resets() -> None:
    script = {b"EHLO": [EHLO_CHUNKING], b"BDAT": [b"250 ok\r\n", b"552 5.3.4 too big\r\n"]}
    session, transport, server = opened(script)
    with pytest.raises(SMTPReplyError, match="BDAT refused") as info:
        content = (b"x" * 98 + b"\r\n") * 50  # lines within 998 octets (RFC 3030 §3)
        transport.run(session.sendmail("a@x.org", ["b@x.org"], content, chunk_size=100))
    assert info.value.code == 552
    assert server.lines[-1] == b"RSET"
    assert len([line for line in server.lines if line.startswith(b"BDAT")]) <= 2 + 8
    assert session.usable


def test_chunking_true_without_the_extension_is_refused() -> None:
    session, transport, _ = opened({b"EHLO": [EHLO_FULL]})
    with pytest.raises(SMTPProtocolError, match="CHUNKING"):
        transport.run(session.sendmail("a@x.org", ["b@x.org"], b"x", chunking=True))


def test_bad_arguments_raise_protocol_errors() -> None:
    for args in (("a@x.org", [], b"x"), ("a@x.org", ["bad address"], b"x")):
        session, transport, _ = opened()
        with pytest.raises(SMTPProtocolError):
            transport.run(session.sendmail(*args))


# -- timeouts and lost connections ------------------------------------------------------------


def test_timeout_waiting_for_a_reply_names_it() -> None:
    session, transport, server = opened()
    server.script[b"NOOP"] = [b""]
    with pytest.raises(SMTPTimeoutError) as info:
        transport.run(session.noop())
    assert info.value.waiting_for == "NOOP reply"
    assert info.value.timeout == Timeouts().other
    assert not isinstance(info.value, SMTPDeliveryStatusUnknown) and not session.usable


def test_timeout_after_the_content_is_delivery_status_unknown() -> None:
    session, transport, _server = opened({b"EHLO": [EHLO_FULL], b".": [b""]})
    with pytest.raises(SMTPDeliveryTimeoutError) as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))
    assert info.value.delivery_status_unknown
    assert info.value.recipients == ("b@x.org",) and info.value.sender == "a@x.org"
    assert info.value.timeout == Timeouts().data_termination


def test_eof_after_the_content_is_delivery_status_unknown() -> None:
    session, transport, _server = opened({b"EHLO": [EHLO_FULL], b".": [b""]})
    transport.eof_when_silent = True
    with pytest.raises(SMTPDeliveryStatusUnknown) as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))
    assert not isinstance(info.value, SMTPTimeoutError)


def test_eof_while_waiting_is_a_lost_connection() -> None:
    # Was SMTPProtocolError (remote), while the same hang-up seen as a failed read or a
    # ConnectionClosed event was SMTPConnectError; the CLI exited 9 instead of 3.
    session, transport, _server = opened({b"MAIL": [b""]})
    transport.eof_when_silent = True
    with pytest.raises(SMTPConnectError, match=r"^connection lost: connection closed") as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE))
    assert isinstance(info.value.__cause__, RemoteProtocolError)
    assert not session.usable


def _throw_into(driver: Any, error: BaseException, last_words: bytes = b"") -> None:
    """Fail the driver's first request with ``error``; answer the read for the
    server's last words with ``last_words`` (``b""``: EOF)."""
    next(driver)  # the first request
    request = driver.throw(error)
    assert request == Read(LAST_WORDS_TIMEOUT)
    driver.send(last_words)
    raise AssertionError("the driver finished after a transport error")


def _until_final_reply(session: Session, transport: Transport, server: ScriptedServer) -> Any:
    driver = session.sendmail("a@x.org", ["b@x.org"], MESSAGE)
    request = next(driver)
    while not (isinstance(request, Read) and session.conn.final_reply_pending):
        answer = None
        if isinstance(request, Write):
            transport.pending += server.receive(request.data)
        else:
            answer, transport.pending = transport.pending, b""
        request = driver.send(answer)
    return driver


def test_transport_errors_map_by_what_was_pending() -> None:
    session, transport, _ = opened()
    with pytest.raises(SMTPConnectError, match="connection lost"):
        _throw_into(session.noop(), ConnectionResetError("reset"))
    assert not session.usable
    session, transport, server = opened({b"EHLO": [EHLO_FULL], b".": [b""]})
    driver = _until_final_reply(session, transport, server)
    assert driver.throw(BrokenPipeError("pipe")) == Read(LAST_WORDS_TIMEOUT)
    with pytest.raises(SMTPDeliveryStatusUnknown, match="connection lost"):
        driver.throw(ConnectionResetError("no last words either"))


def test_last_words_after_a_transport_error_are_reported() -> None:
    session, _, _ = opened()
    with pytest.raises(SMTPReplyError) as info:
        _throw_into(session.noop(), BrokenPipeError("pipe"), b"421 4.3.2 going down\r\n")
    assert info.value.code == 421 and isinstance(info.value.__cause__, BrokenPipeError)
    session, transport, server = opened({b"EHLO": [EHLO_FULL], b".": [b""]})
    driver = _until_final_reply(session, transport, server)
    driver.throw(BrokenPipeError("pipe"))
    with pytest.raises(SMTPReplyError, match="DATA refused") as info:
        driver.send(b"554 5.6.0 rejected\r\n")
    assert info.value.code == 554  # refused, not "status unknown"


def test_adapter_errors_pass_through_and_break_the_session() -> None:
    session, _, _ = opened()
    with pytest.raises(SMTPTLSError):
        _throw_into(session.noop(), SMTPTLSError("bad certificate"))
    assert not session.usable


def test_simple_commands() -> None:
    session, transport, server = opened()
    assert transport.run(session.noop()).code == 250
    assert transport.run(session.rset()).code == 250
    server.script[b"VRFY"] = [b"252 2.1.5 cannot verify\r\n", b"550 5.1.1 unknown\r\n"]
    assert transport.run(session.vrfy("postmaster")).code == 252
    with pytest.raises(SMTPReplyError, match="VRFY refused"):
        transport.run(session.vrfy("nobody"))
    assert transport.run(session.quit()).code == 221
    assert not session.usable


def test_lmtp_per_recipient_results() -> None:
    server = ScriptedServer({b".": [b"250 2.0.0 ok\r\n452 4.2.2 full\r\n"]})
    session = Session(ClientConfig(lmtp=True))
    transport = Transport(server)
    transport.run(session.open())
    assert server.lines == [b"LHLO localhost"]
    result = transport.run(session.sendmail("a@x.org", ["b@x.org", "c@x.org"], MESSAGE))
    assert result.delivered == ("b@x.org",)
    assert [(a, r.code) for a, r in result.failed] == [("c@x.org", 452)]


def test_quit_on_exit_policy() -> None:
    session, transport, _ = opened()
    assert session.quit_on_exit(None)
    assert session.quit_on_exit(SMTPReplyError)
    assert session.quit_on_exit(SMTPRecipientsRefused)
    assert session.quit_on_exit(SMTPProtocolError)  # refused before MAIL: usable
    assert not session.quit_on_exit(SMTPTimeoutError)
    assert not session.quit_on_exit(KeyboardInterrupt)
    transport.run(session.quit())
    assert not session.quit_on_exit(None)


EHLO_TLS_AUTH = b"250-mx.example.org\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
REPLY_CODES = [250, 251, 252, 354, 421, 450, 451, 452, 500, 501, 503, 550, 552, 554]
EHLOS = [EHLO_FULL, EHLO_CHUNKING, EHLO_CHUNKING_ONLY, b"250 mx\r\n", EHLO_PIPELINING]


@given(
    ehlo=st.sampled_from(EHLOS),
    script=st.dictionaries(
        st.sampled_from([b"MAIL", b"RCPT", b"DATA", b".", b"BDAT", b"RSET"]),
        st.lists(st.sampled_from(REPLY_CODES), max_size=4),
    ),
    recipients=st.integers(1, 3),
    size=st.integers(0, 300),
)
def test_any_reply_sequence_ends_in_a_result_or_an_smtp_error(
    ehlo: bytes, script: dict[bytes, list[int]], recipients: int, size: int
) -> None:
    """Whatever the server answers, sendmail returns a result or raises an
    ``SMTPError`` (never another type), and a returned result leaves the session
    usable for the next transaction."""
    replies = {verb: [b"%d x\r\n" % code for code in codes] for verb, codes in script.items()}
    session, transport, _ = opened({b"EHLO": [ehlo], **replies})
    transport.eof_when_silent = True  # a reply the server never sends ends as EOF
    rcpts = [f"r{i}@x.org" for i in range(recipients)]
    try:
        result = transport.run(session.sendmail("a@x.org", rcpts, b"x" * size, chunk_size=64))
    except SMTPError:
        return
    assert result.delivered
    assert session.usable


@given(
    greeting=st.sampled_from([220, 221, 250, 354, 421, 554]),
    script=st.dictionaries(
        st.sampled_from([b"EHLO", b"HELO", b"STARTTLS", b"AUTH", b"NOOP"]),
        st.lists(st.sampled_from([*REPLY_CODES, 220, 235, 334, 535]), max_size=3),
    ),
    policy=st.sampled_from(list(TLSPolicy)),
)
def test_open_and_login_end_in_success_or_an_smtp_error(
    greeting: int, script: dict[bytes, list[int]], policy: TLSPolicy
) -> None:
    replies = {verb: [b"%d x\r\n" % code for code in codes] for verb, codes in script.items()}
    # After the scripted replies, a server that lets the exchange succeed.
    replies.setdefault(b"EHLO", []).extend([EHLO_TLS_AUTH, EHLO_TLS_AUTH])
    replies.setdefault(b"AUTH", []).append(b"235 2.7.0 ok\r\n")
    session = Session(
        ClientConfig(tls_policy=policy, allow_cleartext_auth=True), server_hostname="mx"
    )
    transport = Transport(ScriptedServer(replies), greeting=b"%d mx\r\n" % greeting)
    transport.eof_when_silent = True
    try:
        transport.run(session.open())
        transport.run(session.login("user", mechanism=Plain("user", "pw")))
        transport.run(session.noop())
    except SMTPError:
        return
    assert session.usable and session.conn.authenticated


def test_content_read_errors_are_not_connection_errors() -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            raise OSError("disk on fire")

    def failing_chunks() -> Iterator[bytes]:
        yield b"Subject: x\r\n\r\n"
        raise PermissionError("no access")

    def at_once_failing_chunks() -> Iterator[bytes]:
        raise PermissionError("no access")
        yield b""  # a generator

    # Failing at the first read (before MAIL is sent) leaves the session usable
    # (docs/design.md §2); failing after chunks went out breaks it.
    cases = [(Failing(), True), (at_once_failing_chunks(), True), (failing_chunks(), False)]
    for content, still_usable in cases:
        session, transport, _ = opened({b"EHLO": [EHLO_FULL]})
        before = len(transport.written)
        with pytest.raises(SMTPProtocolError, match="reading the content failed") as info:
            transport.run(session.sendmail("a@x.org", ["b@x.org"], content, chunk_size=4))
        assert not info.value.remote and isinstance(info.value.error.__cause__, OSError)
        assert session.usable is still_usable
        assert (len(transport.written) == before) is still_usable


# -- stopping early: open(until=...), sendmail(stop_after=...) -----------------------------


def test_open_until_greeting_sends_nothing_and_can_still_quit() -> None:
    server = ScriptedServer()
    session = Session(ClientConfig())
    transport = Transport(server)
    reply = transport.run(session.open(until="greeting"))
    assert reply.code == 220 and session.greeting == reply
    assert server.lines == [] and session.conn.capabilities is None
    assert session.usable and session.can_quit
    assert transport.run(session.quit()).code == 221
    assert commands(server) == [b"QUIT"]


def test_open_until_ehlo_stops_before_starttls_and_keeps_cleartext_capabilities() -> None:
    server = ScriptedServer({b"EHLO": [EHLO_TLS, EHLO_FULL]})
    session = Session(ClientConfig(), server_hostname="mx.example.org")
    transport = Transport(server)
    transport.run(session.open(until="ehlo"))
    assert commands(server) == [b"EHLO"] and transport.tls_upgrades == 0
    before = session.capabilities_before_tls
    assert before is not None and before.starttls and before is session.conn.capabilities
    assert session.greeting is not None and session.greeting.code == 220


def test_open_until_tls_remembers_greeting_and_capabilities_before_tls() -> None:
    server = ScriptedServer({b"EHLO": [EHLO_TLS, EHLO_FULL]})
    session = Session(ClientConfig(), server_hostname="mx.example.org")
    transport = Transport(server)
    transport.run(session.open(until="tls"))
    assert commands(server) == [b"EHLO", b"STARTTLS", b"EHLO"]
    before, after = session.capabilities_before_tls, session.conn.capabilities
    assert before is not None and before.starttls and not before.auth_mechanisms
    assert after is not None and not after.starttls and "PLAIN" in after.auth_mechanisms
    assert session.greeting is not None and session.greeting.text == "mx.example.org ESMTP"


def test_open_until_rejects_unknown_stages_before_any_request() -> None:
    session = Session(ClientConfig())
    with pytest.raises(SMTPProtocolError, match="until must be one of"):
        session.open(until="mail")  # type: ignore[arg-type]  # invalid on purpose
    with pytest.raises(SMTPProtocolError, match="stop_after must be one of"):
        session.sendmail("a@example.org", "b@example.org", MESSAGE, stop_after="ehlo")  # type: ignore[arg-type]  # invalid on purpose


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    ("stage", "sent"),
    [("mail", [b"MAIL", b"RSET"]), ("rcpt", [b"MAIL", b"RCPT", b"RCPT", b"RSET"])],
)
def test_stop_after_mail_or_rcpt_resets_and_stays_usable(
    stage: Any, sent: list[bytes], pipelining: bool
) -> None:
    session, transport, server = opened()
    recipients = ["b@example.org", "c@example.org"]
    result = transport.run(
        session.sendmail(
            "a@example.org", recipients, MESSAGE, stop_after=stage, pipelining=pipelining
        )
    )
    assert commands(server)[1:] == sent
    assert server.messages == [] and result.delivered == () and result.data_reply is None
    assert result.sender_reply is not None and result.sender_reply.code == 250
    assert [address for address, _ in result.recipients] == (recipients if stage == "rcpt" else [])
    assert session.usable and session.can_quit
    if pipelining and stage == "rcpt":  # MAIL and both RCPTs went out in one write
        assert transport.written[1].count(b"\r\n") == 3


@pytest.mark.parametrize("pipelining", [True, False])
def test_stop_after_data_stops_at_354_and_ends_the_session(pipelining: bool) -> None:
    session, transport, server = opened({b"EHLO": [EHLO_CHUNKING]})
    result = transport.run(
        session.sendmail(
            "a@example.org", ["b@example.org"], MESSAGE, stop_after="data", pipelining=pipelining
        )
    )
    assert commands(server)[1:] == [b"MAIL", b"RCPT", b"DATA"]  # DATA, not BDAT
    assert server.content == b"" and server.messages == []
    assert result.data_reply is not None and result.data_reply.code == 354
    assert result.recipients[0][1].code == 250 and result.delivered == ()
    assert not session.usable and not session.can_quit
    with pytest.raises(SMTPProtocolError, match="broken"):
        transport.run(session.noop())


def test_stop_after_data_refuses_chunking() -> None:
    session = Session(ClientConfig())
    with pytest.raises(SMTPProtocolError, match="not with chunking"):
        session.sendmail(
            "a@example.org", "b@example.org", MESSAGE, stop_after="data", chunking=True
        )


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_stop_after_reports_a_refused_sender(stage: Any, pipelining: bool) -> None:
    session, transport, _ = opened(
        {b"MAIL": [b"550 5.1.0 no\r\n"], b"RCPT": [b"503 5.5.1 seq\r\n"]}
    )
    with pytest.raises(SMTPReplyError) as caught:
        transport.run(
            session.sendmail(
                "a@example.org", "b@example.org", MESSAGE, stop_after=stage, pipelining=pipelining
            )
        )
    assert caught.value.command == "MAIL" and caught.value.reply.code == 550
    assert session.usable


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_stop_after_reports_refused_recipients(stage: Any, pipelining: bool) -> None:
    refusal = b"550 5.1.1 unknown\r\n"
    session, transport, server = opened(
        {b"RCPT": [refusal, refusal], b"DATA": [b"554 5.5.1 no valid recipients\r\n"]}
    )
    with pytest.raises(SMTPRecipientsRefused):
        transport.run(
            session.sendmail(
                "a@example.org",
                ["b@example.org", "c@example.org"],
                MESSAGE,
                stop_after=stage,
                pipelining=pipelining,
            )
        )
    sent = commands(server)[1:]
    assert b"DATA" not in sent or (pipelining and stage == "data")
    assert server.messages == [] and session.usable


@pytest.mark.parametrize("code", [334, 354])
@pytest.mark.parametrize("verb", ["noop", "rset", "vrfy", "quit"])
def test_an_intermediate_reply_to_a_one_step_command_is_a_protocol_error(
    verb: str, code: int
) -> None:
    """RFC 5321 §4.2.1: 3yz asks for more information, which NOOP, RSET, VRFY and QUIT
    never send (§4.3.2 lists 2yz, 4yz, 5yz for them): such a reply is not the
    command's success (as a 3yz to MAIL is not, ``raise_for``) but a protocol error,
    and the session is not reused."""
    session, transport, server = opened()
    server.script[verb.upper().encode()] = [b"%d 5.5.0 go on\r\n" % code]
    call = session.vrfy("a@example.org") if verb == "vrfy" else getattr(session, verb)()
    with pytest.raises(SMTPProtocolError, match=f"unexpected {code} reply to {verb.upper()}"):
        transport.run(call)
    assert not session.usable


@pytest.mark.parametrize("code", [250, 251, 354])
@pytest.mark.parametrize("step", ["greeting", "EHLO", "HELO", "STARTTLS", "AUTH", "XCLIENT"])
def test_a_reply_neither_success_nor_refusal_is_a_protocol_error(step: str, code: int) -> None:
    """Where the step's success reply was due (220 to the greeting, STARTTLS and
    XCLIENT, 250 to a hello, 235 or 334 to AUTH; RFC 5321 §4.3.2, RFC 3207 §4, RFC
    4954 §4) another 2yz or a 3yz is no refusal (``SMTPReplyError`` holds a 4yz or
    5yz): a protocol error, the session not reused (nor continued in cleartext after
    a STARTTLS answered so)."""
    reply = b"%d 2.0.0 what\r\n" % code
    if code == 250 and step in ("EHLO", "HELO"):
        reply = b"251 2.0.0 what\r\n"  # 250 is a hello's success
    greeting = reply if step == "greeting" else b"220 mx.example.org ESMTP\r\n"
    ehlo = EHLO_TLS if step == "STARTTLS" else b"250-mx\r\n250-XCLIENT NAME\r\n250 AUTH PLAIN\r\n"
    script = {b"EHLO": [reply if step == "EHLO" else ehlo], step.encode(): [reply]}
    server = ScriptedServer(script)
    config = ClientConfig(helo_only=step == "HELO", allow_cleartext_auth=True)
    session = Session(config, local_hostname="client.example")
    transport = Transport(server, greeting)
    verb = "the greeting" if step == "greeting" else step
    with pytest.raises(SMTPProtocolError, match=f"unexpected {reply[:3].decode()} reply to {verb}"):
        transport.run(session.open())
        if step == "AUTH":
            transport.run(session.login("user", "secret"))
        elif step == "XCLIENT":
            transport.run(session.xclient({"NAME": "client.example"}))
    assert not session.usable
    assert transport.tls_upgrades == 0


@pytest.mark.parametrize("many", [False, True])
def test_no_bdat_chunk_goes_to_a_transaction_whose_mail_was_refused(many: bool) -> None:
    """PIPELINING and CHUNKING, a message of several chunks: the envelope's replies
    are read before any chunk (RFC 2920 §3.1: every reply of the group is checked). A
    refused MAIL ends the transaction even when the RCPT behind it got 250 (a server
    answering the pipelined RCPT on its own): no BDAT, whose content a server without
    the transaction would take as commands; the refusal raises, or is the message's
    outcome, the session usable."""
    session, transport, server = opened(
        {b"EHLO": [EHLO_CHUNKING], b"MAIL": [b"550 5.7.1 sender refused\r\n"]}
    )
    content = b"Subject: x\r\n\r\n" + (b"a" * 70 + b"\r\n") * 1000  # two chunks
    if many:
        (outcome,) = transport.run(session.send_many([("a@ex.org", ["b@ex.org"], content)]))
        assert isinstance(outcome, SMTPReplyError) and outcome.code == 550
    else:
        with pytest.raises(SMTPReplyError, match="MAIL refused: 550"):
            transport.run(session.sendmail("a@ex.org", ["b@ex.org"], content))
    assert b"BDAT" not in commands(server) and server.messages == []
    assert session.usable
    assert transport.run(session.noop()).code == 250


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("ehlo", [EHLO_PIPELINING, b"250 mx.example.org\r\n", EHLO_CHUNKING])
def test_an_intermediate_reply_to_a_rcpt_does_not_hide_a_delivery(ehlo: bytes, many: bool) -> None:
    """A 354 to one RCPT (no RCPT reply of RFC 5321 §4.3.2) and 250 to the other: the
    message goes to the accepted one and the server queues it. The result says so,
    with the odd recipient in ``failed`` (its 354), as for a refused one: an
    ``SMTPProtocolError`` raised after the content was taken would read as "not
    sent", and a retry would deliver the message twice."""
    session, transport, server = opened(
        {b"EHLO": [ehlo], b"RCPT": [b"250 2.1.5 ok\r\n", b"354 2.1.5 what\r\n"]}
    )
    rcpts = ["b@ex.org", "c@ex.org"]
    if many:
        (result,) = transport.run(session.send_many([("a@ex.org", rcpts, b"hi\r\n")]))
    else:
        result = transport.run(session.sendmail("a@ex.org", rcpts, b"hi\r\n"))
    assert len(server.messages) == 1
    assert isinstance(result, TransactionResult)
    assert result.delivered == ("b@ex.org",)
    assert [(a, r.code) for a, r in result.failed] == [("c@ex.org", 354)]
    assert session.usable


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("pipelining", [False, True])
def test_a_421_to_one_lmtp_recipient_does_not_hide_another_ones_delivery(
    many: bool, pipelining: bool
) -> None:
    """LMTP, two recipients: after the content the first gets 250 (delivered), the
    second 421 (RFC 2033 §4.2: one reply each; RFC 5321 §3.8: the server closes).
    The result says the message was delivered to the first, the second in ``failed``
    with the 421, the session no longer usable; an ``SMTPReplyError`` for the 421
    would read as "not sent", and a retry would deliver twice to the first."""
    ehlo = EHLO_PIPELINING if pipelining else b"250 mx.example.org\r\n"
    final = b"250 2.0.0 b ok\r\n421 4.3.0 shutting down\r\n"
    session, transport, server = opened({b"LHLO": [ehlo], b".": [final]}, lmtp=True)
    rcpts = ["b@ex.org", "c@ex.org"]
    if many:
        (result,) = transport.run(session.send_many([("a@ex.org", rcpts, b"hi\r\n")]))
    else:
        result = transport.run(session.sendmail("a@ex.org", rcpts, b"hi\r\n"))
    assert isinstance(result, TransactionResult)
    assert result.delivered == ("b@ex.org",)
    assert [(a, r.code) for a, r in result.failed] == [("c@ex.org", 421)]
    assert not session.usable and len(server.messages) == 1
