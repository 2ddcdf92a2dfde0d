"""Engine scenarios: greeting, hello, sequencing, EOF, 421, sticky ERROR, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import EHLO_ALL, EHLO_PLAIN, drain, feed, greeted, make_conn, names
from smtpproto.client_engine.config import ClientConfig, Timeouts, TLSPolicy
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    NEED_DATA,
    Auth,
    Bdat,
    CommandReply,
    ConnectionClosed,
    Data,
    Ehlo,
    EhloAccepted,
    EndOfContent,
    Greeting,
    GreetingRefused,
    HelloRefused,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    ServiceClosing,
    StartTLS,
    Vrfy,
)
from smtpproto.client_engine.states import ClientState
from smtpproto.sasl import Plain
from smtpproto.wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError


def test_greeting_then_ehlo(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    assert conn.state is ClientState.GREETING
    assert conn.next_event() is NEED_DATA
    events = feed(conn, b"220 mx.example.org ESMTP\r\n")
    assert isinstance(events[0], Greeting) and events[0].reply.code == 220
    assert conn.state is ClientState.HELLO
    assert conn.send(Ehlo(hostname="client.example")) == b"EHLO client.example\r\n"
    (event,) = feed(conn, EHLO_ALL)
    assert isinstance(event, EhloAccepted)
    assert event.capabilities.pipelining and conn.capabilities is event.capabilities
    assert conn.state is ClientState.READY


def test_greeting_split_one_byte_at_a_time(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    events = []
    for byte in b"220-mx.example.org\r\n220 hello\r\n":
        events += feed(conn, bytes([byte]))
    assert names(events) == ["Greeting"]


@pytest.mark.parametrize("code", [554, 521, 450])
def test_greeting_other_than_220_allows_only_quit(parser_cls: Any, code: int) -> None:
    conn = make_conn(parser_cls)
    (event,) = feed(conn, b"%d no service\r\n" % code)
    assert isinstance(event, GreetingRefused)
    assert conn.state is ClientState.MUST_QUIT
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo(hostname="client.example"))


def test_greeting_refused_then_quit(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    feed(conn, b"554 go away\r\n")
    assert conn.send(Quit()) == b"QUIT\r\n"
    assert names(feed(conn, b"221 bye\r\n")) == ["CommandReply"]
    assert names(feed(conn, b"")) == ["ConnectionClosed"]


def test_greeting_421_is_service_closing(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    assert names(feed(conn, b"421 busy\r\n")) == ["GreetingRefused", "ServiceClosing"]
    assert conn.state is ClientState.CLOSING
    with pytest.raises(LocalProtocolError):
        conn.send(Quit())


def test_nothing_may_be_sent_before_the_greeting(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    with pytest.raises(LocalProtocolError, match="GREETING"):
        conn.send(Ehlo(hostname="client.example"))
    # Refused before a byte existed: nothing changed (docs/design.md §2).
    assert conn.state is ClientState.GREETING and conn.awaiting_reply
    assert names(feed(conn, b"220 hi\r\n")) == ["Greeting"]
    assert conn.send(Ehlo(hostname="client.example")) == b"EHLO client.example\r\n"


@pytest.mark.parametrize("code", [500, 502])
def test_ehlo_not_supported_allows_helo_fallback(parser_cls: Any, code: int) -> None:
    conn = make_conn(parser_cls)
    feed(conn, b"220 hi\r\n")
    conn.send(Ehlo(hostname="client.example"))
    (event,) = feed(conn, b"%d what?\r\n" % code)
    assert isinstance(event, HelloRefused) and event.helo_fallback
    assert conn.send(Helo(hostname="client.example")) == b"HELO client.example\r\n"
    assert names(feed(conn, b"250 mx\r\n")) == ["HeloAccepted"]
    assert conn.capabilities is None
    # no extension is available after HELO
    with pytest.raises(LocalProtocolError, match="SIZE"):
        conn.send(Mail(sender="a@example.org", size=10))


@pytest.mark.parametrize("code", [421, 451, 550, 501])
def test_ehlo_other_refusals_do_not_offer_helo(parser_cls: Any, code: int) -> None:
    conn = make_conn(parser_cls)
    feed(conn, b"220 hi\r\n")
    conn.send(Ehlo(hostname="client.example"))
    event = feed(conn, b"%d no\r\n" % code)[0]
    assert isinstance(event, HelloRefused) and not event.helo_fallback


def test_ehlo_fallback_not_offered_when_tls_required(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, tls_policy=TLSPolicy.REQUIRED)
    feed(conn, b"220 hi\r\n")
    conn.send(Ehlo(hostname="client.example"))
    events = feed(conn, b"502 no\r\n")
    assert names(events) == ["HelloRefused", "TLSUnavailable"]
    assert not events[0].helo_fallback  # type: ignore[attr-defined]
    assert conn.state is ClientState.MUST_QUIT
    with pytest.raises(LocalProtocolError):
        conn.send(Helo(hostname="client.example"))


def test_helo_under_required_tls_refused_even_when_asked_directly(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, tls_policy=TLSPolicy.REQUIRED)
    feed(conn, b"220 hi\r\n")
    with pytest.raises(LocalProtocolError, match="STARTTLS"):
        conn.send(Helo(hostname="client.example"))


def test_lmtp_needs_lhlo_and_smtp_refuses_it(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, lmtp=True)
    feed(conn, b"220 lmtp\r\n")
    with pytest.raises(LocalProtocolError, match="LMTP"):
        conn.send(Ehlo(hostname="client.example"))
    conn = make_conn(parser_cls)
    feed(conn, b"220 smtp\r\n")
    with pytest.raises(LocalProtocolError, match="LMTP"):
        conn.send(Lhlo(hostname="client.example"))


def test_without_pipelining_second_command_is_refused(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PLAIN)
    conn.send(Mail(sender="a@example.org"))
    state = conn.state
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt(recipient="b@example.org"))
    # Refused before a byte existed: nothing changed (docs/design.md §2).
    assert conn.state is state and len(conn.outstanding) == 1
    assert names(feed(conn, b"250 ok\r\n")) == ["CommandReply"]
    assert conn.send(Rcpt(recipient="b@example.org")) == b"RCPT TO:<b@example.org>\r\n"


def test_group_enders_stop_pipelining(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Noop())
    with pytest.raises(LocalProtocolError, match="pipelined after NOOP"):
        conn.send(Mail(sender="a@example.org"))


def test_rset_is_pipelinable(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    wire = conn.send(Rset()) + conn.send(Mail(sender="a@example.org"))
    assert wire == b"RSET\r\nMAIL FROM:<a@example.org>\r\n"
    assert names(feed(conn, b"250 ok\r\n250 ok\r\n")) == ["CommandReply", "CommandReply"]


def test_unsolicited_reply_is_an_error_and_error_is_sticky(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.receive_data(b"250 surprise\r\n")
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()
    assert conn.state is ClientState.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_unsolicited_421_is_an_event(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    (event,) = feed(conn, b"421 4.3.2 shutting down\r\n")
    assert isinstance(event, ServiceClosing)
    assert conn.state is ClientState.CLOSING
    assert names(feed(conn, b"")) == ["ConnectionClosed"]


def test_421_to_pipelined_mail_reports_transaction_with_421(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Data())
    events = feed(conn, b"421 4.3.2 bye\r\n")
    assert names(events) == ["CommandReply", "TransactionResult", "ServiceClosing"]
    result = events[1]
    assert result.recipients[0][1].code == 421  # type: ignore[attr-defined]
    assert conn.outstanding == ()


def test_bad_reply_grammar_raises(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    conn.receive_data(b"22O oops\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_eof_mid_reply_is_an_error(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Noop())
    conn.receive_data(b"250-still going\r\n")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_eof_waiting_for_a_reply_is_an_error(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Noop())
    with pytest.raises(RemoteProtocolError, match="waiting for a reply"):
        feed(conn, b"")


def test_eof_before_greeting_is_an_error(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    with pytest.raises(RemoteProtocolError, match="greeting"):
        feed(conn, b"")


def test_eof_when_idle_is_connection_closed_repeatedly(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    assert names(feed(conn, b"")) == ["ConnectionClosed"]
    assert isinstance(conn.next_event(), ConnectionClosed)
    assert conn.state is ClientState.CLOSED


def test_eof_after_quit_without_reply_is_closed(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Quit())
    assert names(feed(conn, b"")) == ["ConnectionClosed"]


def test_data_after_eof_is_refused(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"250 x\r\n")


def test_send_failed_is_sticky(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send_failed()
    assert conn.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_not_a_command(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match="not a command"):
        conn.send("NOOP")  # type: ignore[arg-type]


def test_vrfy_expn_help_replies(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PLAIN)
    assert conn.send(Vrfy(argument="postmaster")) == b"VRFY postmaster\r\n"
    (event,) = feed(conn, b"252 cannot verify\r\n")
    assert isinstance(event, CommandReply) and event.reply.code == 252
    assert conn.send(Help()) == b"HELP\r\n"
    feed(conn, b"214 see RFC 5321\r\n")
    assert conn.send(Help(topic="MAIL")) == b"HELP MAIL\r\n"


def test_multiline_reply_matched_once(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PLAIN)
    conn.send(Help())
    events = feed(conn, b"214-line one\r\n214-line two\r\n214 end\r\n")
    assert len(events) == 1 and events[0].reply.lines == (  # type: ignore[attr-defined]
        "line one",
        "line two",
        "end",
    )


def test_timeouts_follow_rfc_5321(parser_cls: Any) -> None:
    conn = make_conn(parser_cls)
    assert conn.timeout == 300
    feed(conn, b"220 hi\r\n")
    assert conn.timeout is None  # waiting on nothing
    conn.send(Ehlo(hostname="c.example"))
    assert conn.timeout == 300
    feed(conn, EHLO_ALL)
    conn.send(Mail(sender="a@example.org"))
    assert conn.timeout == 300
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Data())
    feed(conn, b"250 ok\r\n")
    assert conn.timeout == 300  # RCPT
    feed(conn, b"250 ok\r\n")
    assert conn.timeout == 120  # DATA initiation
    feed(conn, b"354 go\r\n")
    assert conn.timeout == 180  # data block while the caller writes
    conn.send(EndOfContent())
    assert conn.timeout == 600  # DATA termination
    assert conn.final_reply_pending


def test_timeouts_configurable(parser_cls: Any) -> None:
    conn = ClientConnection(
        ClientConfig(parser_factory=parser_cls, timeouts=Timeouts(greeting=5.0))
    )
    assert conn.timeout == 5.0
    with pytest.raises(LocalProtocolError):
        Timeouts(mail=-1)


def test_mask_extensions(parser_cls: Any) -> None:
    conn = greeted(parser_cls, mask_extensions=("CHUNKING", "pipelining"))
    caps = conn.capabilities
    assert caps is not None and not caps.chunking and not caps.pipelining
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt(recipient="b@example.org"))


def test_new_ehlo_resets_capabilities(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Ehlo(hostname="c.example"))
    assert conn.capabilities is None
    feed(conn, EHLO_PLAIN)
    caps = conn.capabilities
    assert caps is not None and not caps.pipelining


def test_timeouts_for_bdat_auth_quit_and_tls(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    feed(conn, b"250 ok\r\n250 ok\r\n")
    conn.send(Bdat(data=b"chunk"))
    assert conn.timeout == 180  # a BDAT chunk that is not the last: data block
    conn.send(Bdat(data=b"end", last=True))
    feed(conn, b"250 ok\r\n")
    assert conn.timeout == 600  # BDAT LAST: DATA termination
    conn = greeted(parser_cls, tls_policy=TLSPolicy.IMPLICIT)
    conn.send(Auth(mechanism=Plain("u", "p")))
    assert conn.timeout == 300
    feed(conn, b"235 ok\r\n")
    conn.send(Quit())
    assert conn.timeout == 300
    feed(conn, b"221 bye\r\n")
    assert conn.timeout is None  # only EOF is awaited
    conn = greeted(parser_cls)
    conn.send(StartTLS())
    feed(conn, b"220 go\r\n")
    assert conn.timeout is None  # the caller's handshake has its own timeout
