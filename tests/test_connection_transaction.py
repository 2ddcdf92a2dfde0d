"""Engine scenarios: MAIL/RCPT parameters, pipelining groups, DATA, BDAT, LMTP."""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import (
    EHLO_ALL,
    EHLO_PIPELINING,
    EHLO_PLAIN,
    ScriptedServer,
    feed,
    greeted,
    names,
    run,
)
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.client_engine.events import (
    Bdat,
    CommandReply,
    Content,
    Data,
    DeliveryStatusUnknown,
    EndOfContent,
    Mail,
    NoRecipientsAccepted,
    Rcpt,
    ReadyForContent,
    Rset,
    TransactionResult,
)
from smtpproto.client_engine.states import ClientState
from smtpproto.wire.errors import LocalProtocolError


def _result(events: list[Any]) -> TransactionResult:
    results = [event for event in events if isinstance(event, TransactionResult)]
    assert len(results) == 1, events
    return results[0]


# -- MAIL / RCPT parameters -------------------------------------------------------------


def test_mail_parameters_when_advertised(parser_cls: Any) -> None:
    conn = greeted(parser_cls, tls_policy=TLSPolicy.IMPLICIT)
    wire = conn.send(
        Mail(
            sender="a@example.org",
            size=1000,
            body="8BITMIME",
            smtputf8=True,
            ret="HDRS",
            envid="id+1 x",
            requiretls=True,
            mt_priority=-3,
            by="120;r",
            auth="a@example.org",
        )
    )
    assert wire == (
        b"MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS "
        b"ENVID=id+2B1+20x REQUIRETLS MT-PRIORITY=-3 BY=120;R AUTH=a@example.org\r\n"
    )


@pytest.mark.parametrize(
    ("kwargs", "extension"),
    [
        ({"size": 10}, "SIZE"),
        ({"body": "8BITMIME"}, "8BITMIME"),
        ({"body": "BINARYMIME"}, "BINARYMIME"),
        ({"smtputf8": True}, "SMTPUTF8"),
        ({"ret": "FULL"}, "DSN"),
        ({"envid": "x"}, "DSN"),
        ({"requiretls": True}, "REQUIRETLS"),
        ({"mt_priority": 1}, "MT-PRIORITY"),
        ({"by": "10;N"}, "DELIVERBY"),
        ({"auth": ""}, "AUTH"),
    ],
)
def test_mail_parameter_needs_its_extension(
    parser_cls: Any, kwargs: dict[str, Any], extension: str
) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING)
    with pytest.raises(LocalProtocolError, match=extension):
        conn.send(Mail(sender="a@example.org", **kwargs))
    # Refused before a byte existed: nothing changed, MAIL without it goes out.
    assert conn.state is ClientState.READY and not conn.outstanding
    assert conn.send(Mail(sender="a@example.org")) == b"MAIL FROM:<a@example.org>\r\n"


def test_requiretls_needs_active_tls(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match="TLS to be active"):
        conn.send(Mail(sender="a@example.org", requiretls=True))


def test_size_above_server_limit_fails_before_mail(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    assert conn.send(Mail(sender="a@example.org", size=1_000_000)).endswith(b"SIZE=1000000\r\n")
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match="above the server's SIZE"):
        conn.send(Mail(sender="a@example.org", size=1_000_001))


def test_size_zero_means_no_limit(parser_cls: Any) -> None:
    conn = greeted(parser_cls, b"250-mx\r\n250 SIZE 0\r\n")
    assert b"SIZE=99999999" in conn.send(Mail(sender="a@example.org", size=99_999_999))


def test_null_sender_and_postmaster(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    assert conn.send(Mail(sender="")) == b"MAIL FROM:<>\r\n"
    assert conn.send(Rcpt(recipient="Postmaster")) == b"RCPT TO:<Postmaster>\r\n"


def test_rcpt_dsn_parameters(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    wire = conn.send(Rcpt(recipient="b@example.org", notify=["failure", "DELAY"], orcpt="b@x.y"))
    assert wire == b"RCPT TO:<b@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@x.y\r\n"
    wire = conn.send(Rcpt(recipient="c@example.org", notify=["NEVER"], orcpt="ü@x.y"))
    assert wire == b"RCPT TO:<c@example.org> NOTIFY=NEVER ORCPT=utf-8;\\x{FC}@x.y\r\n"


@pytest.mark.parametrize(
    "notify",
    [["NEVER", "SUCCESS"], [], ["SOMETIMES"], "SUCCESS", 5, 1.5],  # 5: no TypeError
)
def test_rcpt_bad_notify(notify: Any) -> None:
    with pytest.raises(LocalProtocolError):
        Rcpt(recipient="b@example.org", notify=notify)


def test_rcpt_dsn_needs_dsn(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING)
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match="DSN"):
        conn.send(Rcpt(recipient="b@example.org", notify=["SUCCESS"]))


def test_non_ascii_address_needs_smtputf8(parser_cls: Any) -> None:
    with pytest.raises(LocalProtocolError):
        Mail(sender="jörg@example.org")
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match=r"SMTPUTF8|smtputf8"):
        conn.send(Rcpt(recipient="jörg@example.org"))
    conn = greeted(parser_cls)
    assert conn.send(Mail(sender="jörg@example.org", smtputf8=True)) == (
        "MAIL FROM:<jörg@example.org> SMTPUTF8\r\n".encode()
    )
    assert conn.send(Rcpt(recipient="zoë@example.org")) == "RCPT TO:<zoë@example.org>\r\n".encode()


def test_rcptmax_honoured(parser_cls: Any) -> None:
    conn = greeted(parser_cls)  # LIMITS RCPTMAX=3
    conn.send(Mail(sender="a@example.org"))
    for index in range(3):
        conn.send(Rcpt(recipient=f"r{index}@example.org"))
    with pytest.raises(LocalProtocolError, match="RCPTMAX"):
        conn.send(Rcpt(recipient="r3@example.org"))


def test_rcpt_outside_transaction_refused(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match="READY"):
        conn.send(Rcpt(recipient="b@example.org"))


def test_data_without_rcpt_refused(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match="no RCPT"):
        conn.send(Data())


# -- a whole transaction ---------------------------------------------------------------


def test_pipelined_transaction_with_refused_recipient(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    server = ScriptedServer({b"RCPT": [b"250 ok\r\n", b"550 5.1.1 no such user\r\n"]})
    wire = (
        conn.send(Mail(sender="a@example.org"))
        + conn.send(Rcpt(recipient="b@example.org"))
        + conn.send(Rcpt(recipient="c@example.org"))
        + conn.send(Data())
    )
    events = run(conn, server, wire)
    assert names(events) == ["CommandReply"] * 3 + ["ReadyForContent"]
    wire = conn.send(Content(data=b"Subject: hi\n\n.dot\r")) + conn.send(Content(data=b"\nend"))
    wire += conn.send(EndOfContent())
    result = _result(run(conn, server, wire))
    assert server.messages == [b"Subject: hi\r\n\r\n.dot\r\nend\r\n"]
    assert result.delivered == ("b@example.org",)
    assert [(a, r.code) for a, r in result.failed] == [("c@example.org", 550)]
    assert conn.state is ClientState.READY and conn.outstanding == ()


def test_no_pipelining_one_at_a_time(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PLAIN)
    server = ScriptedServer()
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        assert len(run(conn, server, conn.send(command))) == 1
    assert isinstance(conn.state, ClientState) and conn.state is ClientState.CONTENT
    result = _result(run(conn, server, conn.send(EndOfContent())))
    assert result.data_reply is not None and result.data_reply.code == 250
    assert server.messages == [b""]


def test_mail_refused_alone_ends_transaction(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    events = feed(conn, b"550 no\r\n")
    assert names(events) == ["CommandReply", "TransactionResult"]
    assert conn.state is ClientState.READY
    conn.send(Mail(sender="b@example.org"))


def test_mail_refused_in_pipelined_group(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    events = feed(conn, b"550 no\r\n503 need MAIL\r\n503 need RCPT\r\n")
    assert names(events) == ["CommandReply", "CommandReply", "TransactionResult"]
    result = _result(events)
    assert result.delivered == () and result.data_reply is not None
    assert result.data_reply.code == 503
    assert conn.state is ClientState.READY


def test_354_without_accepted_recipient_sends_lone_dot(parser_cls: Any) -> None:
    """RFC 2920 §3.1: DATA accepted although every RCPT failed: send only '.'."""
    conn = greeted(parser_cls)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    events = feed(conn, b"250 ok\r\n550 no\r\n354 go\r\n")
    assert isinstance(events[-1], NoRecipientsAccepted)
    assert conn.state is ClientState.DISCARD_CONTENT
    with pytest.raises(LocalProtocolError):
        conn.send(Content(data=b"secret body"))
    conn = greeted(parser_cls)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n550 no\r\n354 go\r\n")
    assert conn.send(EndOfContent()) == b".\r\n"
    result = _result(feed(conn, b"554 no valid recipients\r\n"))
    assert result.delivered == ()


def test_rset_ends_transaction_with_result(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Rset())
    assert conn.state is ClientState.READY
    events = feed(conn, b"250 ok\r\n250 ok\r\n250 reset\r\n")
    assert names(events) == ["CommandReply"] * 3 + ["TransactionResult"]
    assert _result(events).data_reply is None


def test_8bit_content_needs_8bitmime(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(Content(data=b"ascii line\r\n"))
    with pytest.raises(LocalProtocolError):
        conn.send(Content(data="caf\u00e9\r\n".encode()))
    assert conn.state is ClientState.ERROR  # content partly sent: the caller must close
    conn = greeted(parser_cls)
    for command in (
        Mail(sender="a@example.org", body="8BITMIME"),
        Rcpt(recipient="b@example.org"),
        Data(),
    ):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.send(Content(data="café\r\n".encode())) == "café\r\n".encode()


def test_each_message_gets_a_fresh_encoder_of_its_kind(parser_cls: Any) -> None:
    """The engine reuses the last message's DATA encoder when it is of the same kind
    (7-bit, BODY=8BITMIME), reset at the 354: nothing of a message's encoding reaches
    the next (a CR that ended it, its counters), and 8-bit stays refused in a message
    not declared 8BITMIME."""
    conn = greeted(parser_cls)
    last: tuple[bool, object] | None = None
    for body in (None, None, "8BITMIME", None, "8BITMIME", "8BITMIME", None):
        for command in (Mail(sender="a@example.org", body=body), Rcpt(recipient="b@example.org")):
            conn.send(command)
        conn.send(Data())
        feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
        encoder = conn._s.encoder
        kind = body == "8BITMIME"
        assert (encoder is last[1]) is (last[0] is kind) if last else encoder is not None
        last = (kind, encoder)
        assert encoder is not None and (encoder.octets_in, encoder.octets_out) == (0, 0)
        # A leaked "after CR" would swallow this LF; a leaked line length would
        # leave the dot unstuffed.
        assert conn.send(Content(data=b"\n.a")) == b"\r\n..a"
        if body == "8BITMIME":
            assert conn.send(Content(data="\r\u00e9\r".encode())) == "\r\n\u00e9\r\n".encode()
        else:
            assert conn.send(Content(data=b"\r")) == b"\r\n"
        assert conn.send(EndOfContent()) == b".\r\n"
        assert isinstance(_result(feed(conn, b"250 queued\r\n")), TransactionResult)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    with pytest.raises(LocalProtocolError, match="8BITMIME"):
        conn.send(Content(data="caf\u00e9\r\n".encode()))


@pytest.mark.parametrize("bad", [b"nul\x00here\r\n", b"x" * 999 + b"\r\n"])
def test_encoder_failure_mid_stream_is_sticky(parser_cls: Any, bad: bytes) -> None:
    conn = greeted(parser_cls)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(Content(data=b"first\r\n"))
    with pytest.raises(LocalProtocolError):
        conn.send(Content(data=bad))
    assert conn.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(EndOfContent())


def test_long_lines_allowed_when_opted_out(parser_cls: Any) -> None:
    conn = greeted(parser_cls, enforce_line_length=False)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert len(conn.send(Content(data=b"x" * 5000))) == 5000


def test_eof_after_final_dot_is_delivery_status_unknown(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(EndOfContent())
    events = feed(conn, b"")
    assert names(events) == ["DeliveryStatusUnknown", "ConnectionClosed"]
    unknown = events[0]
    assert isinstance(unknown, DeliveryStatusUnknown)
    assert unknown.recipients == ("b@example.org",)


# -- BDAT ------------------------------------------------------------------------------


def test_bdat_pipelined_with_exact_sizes(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = conn.send(Mail(sender="a@example.org", body="BINARYMIME"))
    wire += conn.send(Rcpt(recipient="b@example.org"))
    wire += conn.send(Bdat(data=b"\x00\xff\r.\n"))
    assert conn.state is ClientState.BDAT
    wire += conn.send(Bdat(data=b"tail", last=True))
    assert wire.endswith(b"BDAT 5\r\n\x00\xff\r.\nBDAT 4 LAST\r\ntail")
    events = run(conn, server, wire)
    assert names(events) == ["CommandReply"] * 3 + ["TransactionResult"]
    assert server.messages == [b"\x00\xff\r.\ntail"]
    assert _result(events).delivered == ("b@example.org",)


def test_bdat_needs_chunking_and_8bit_body(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        conn.send(Bdat(data=b"x", last=True))
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    with pytest.raises(LocalProtocolError, match="8BITMIME"):
        conn.send(Bdat(data=b"\xff", last=True))


def test_binarymime_refused_with_data(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org", body="BINARYMIME"))
    conn.send(Rcpt(recipient="b@example.org"))
    with pytest.raises(LocalProtocolError, match="BDAT"):
        conn.send(Data())


def test_bdat_failure_recorded(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Bdat(data=b"one"))
    conn.send(Bdat(data=b"two", last=True))
    events = feed(conn, b"250 ok\r\n250 ok\r\n552 too big\r\n503 no\r\n")
    result = _result(events)
    assert result.data_reply is not None and result.data_reply.code == 552
    assert result.delivered == ()


def test_eof_after_bdat_last_is_unknown(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    conn.send(Bdat(data=b"x", last=True))
    assert conn.final_reply_pending
    events = feed(conn, b"250 ok\r\n250 ok\r\n")
    assert names(events) == ["CommandReply", "CommandReply"]
    assert names(feed(conn, b"")) == ["DeliveryStatusUnknown", "ConnectionClosed"]


def test_bdat_without_pipelining_waits(parser_cls: Any) -> None:
    conn = greeted(parser_cls, b"250-mx\r\n250 CHUNKING\r\n")
    server = ScriptedServer()
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="b@example.org")):
        run(conn, server, conn.send(command))
    conn.send(Bdat(data=b"abc"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Bdat(data=b"def", last=True))


# -- LMTP ------------------------------------------------------------------------------


def test_lmtp_one_reply_per_accepted_recipient(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING, lmtp=True)
    for command in (
        Mail(sender="a@example.org"),
        Rcpt(recipient="b@example.org"),
        Rcpt(recipient="c@example.org"),
        Rcpt(recipient="d@example.org"),
        Data(),
    ):
        conn.send(command)
    events = feed(conn, b"250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n")
    assert isinstance(events[-1], ReadyForContent)
    conn.send(Content(data=b"hello\r\n"))
    conn.send(EndOfContent())
    assert feed(conn, b"250 b delivered\r\n") == []
    result = _result(feed(conn, b"452 d over quota\r\n"))
    assert [(a, r.code) for a, r in result.lmtp_replies] == [
        ("b@example.org", 250),
        ("d@example.org", 452),
    ]
    assert result.delivered == ("b@example.org",)
    assert {a for a, _ in result.failed} == {"c@example.org", "d@example.org"}


def test_lmtp_bdat_counts_at_first_reply(parser_cls: Any) -> None:
    conn = greeted(parser_cls, b"250-lmtp\r\n250-PIPELINING\r\n250 CHUNKING\r\n", lmtp=True)
    for command in (
        Mail(sender="a@example.org"),
        Rcpt(recipient="b@example.org"),
        Rcpt(recipient="c@example.org"),
        Bdat(data=b"msg", last=True),
    ):
        conn.send(command)
    events = feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n250 b\r\n")
    assert not any(isinstance(event, TransactionResult) for event in events)
    result = _result(feed(conn, b"250 c\r\n"))
    assert result.delivered == ("b@example.org", "c@example.org")


def test_lmtp_eof_midway_reports_unanswered_recipients(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING, lmtp=True)
    for command in (
        Mail(sender="a@example.org"),
        Rcpt(recipient="b@example.org"),
        Rcpt(recipient="c@example.org"),
        Data(),
    ):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(EndOfContent())
    feed(conn, b"250 b ok\r\n")
    events = feed(conn, b"")
    assert isinstance(events[0], DeliveryStatusUnknown)
    assert events[0].recipients == ("c@example.org",)


def test_command_reply_carries_command(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_ALL)
    rcpt = Rcpt(recipient="b@example.org")
    conn.send(Mail(sender="a@example.org"))
    conn.send(rcpt)
    events = feed(conn, b"250 ok\r\n251 forwarded\r\n")
    assert isinstance(events[1], CommandReply) and events[1].command is rcpt


@pytest.mark.parametrize("lmtp", [False, True])
def test_eof_before_any_reply_to_a_pipelined_bdat_last_names_every_recipient(
    parser_cls: Any, lmtp: bool
) -> None:
    """MAIL, RCPTs and BDAT LAST in one write (RFC 3030 §4.2), then EOF before any reply:
    the server may have taken the message for every recipient whose RCPT was not
    refused (an unanswered one included), so the delivery status is unknown for all
    of them -- not for none (RFC 1047), and never for one it refused."""
    ehlo = b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    conn = greeted(parser_cls, ehlo, lmtp=lmtp)
    for command in (
        Mail(sender="a@example.org"),
        Rcpt(recipient="b@example.org"),
        Rcpt(recipient="c@example.org"),
        Rcpt(recipient="d@example.org"),
        Bdat(data=b"msg\r\n", last=True),
    ):
        conn.send(command)
    feed(conn, b"250 ok\r\n550 no such user\r\n")  # MAIL, b refused; c, d unanswered
    events = feed(conn, b"")
    assert isinstance(events[0], DeliveryStatusUnknown)
    assert events[0].recipients == ("c@example.org", "d@example.org")
