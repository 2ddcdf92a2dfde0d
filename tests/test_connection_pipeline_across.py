"""Engine: the end of the content opens a pipelined group (RFC 2920 §3.1).

The ``.`` (or BDAT LAST) of one message may be followed by the next message's MAIL,
RCPTs and DATA before its final reply; replies are matched in order and each
transaction gets its own ``TransactionResult``, in order.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import EHLO_PLAIN, ScriptedServer, feed, greeted, names, run
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    Auth,
    Bdat,
    CommandReply,
    Content,
    Data,
    DeliveryStatusUnknown,
    EndOfContent,
    Event,
    Mail,
    Noop,
    Quit,
    Rcpt,
    ReadyForContent,
    Rset,
    ServiceClosing,
    StartTLS,
    TransactionResult,
    Vrfy,
)
from smtpproto.client_engine.states import (
    AFTER_CONTENT_END,
    FINAL_VERBS,
    GROUP_ENDERS,
    ClientState,
    Verb,
)
from smtpproto.sasl import Plain
from smtpproto.wire.errors import LocalProtocolError, RemoteProtocolError


def _envelope(conn: ClientConnection, sender: str, *rcpts: str) -> bytes:
    wire = conn.send(Mail(sender=sender))
    for rcpt in rcpts:
        wire += conn.send(Rcpt(recipient=rcpt))
    return wire + conn.send(Data())


def _results(events: list[Event]) -> list[TransactionResult]:
    return [event for event in events if isinstance(event, TransactionResult)]


def _first_message(conn: ClientConnection, server: ScriptedServer) -> bytes:
    """MAIL/RCPT/DATA of a@ answered with 354; returns the content and its end."""
    events = run(conn, server, _envelope(conn, "a@example.org", "x@example.org"))
    assert names(events) == ["CommandReply", "CommandReply", "ReadyForContent"]
    return conn.send(Content(data=b"Subject: one\r\n\r\nbody one\r\n")) + conn.send(EndOfContent())


def test_tables_say_the_content_end_opens_a_group() -> None:
    assert not FINAL_VERBS & GROUP_ENDERS
    assert Verb.DATA in GROUP_ENDERS  # DATA still ends a group (354 must come first)
    expected = {Verb.MAIL, Verb.RSET, Verb.NOOP, Verb.QUIT}
    assert expected == AFTER_CONTENT_END


def test_next_message_pipelined_after_the_dot(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = _first_message(conn, server)
    wire += _envelope(conn, "b@example.org", "y@example.org", "z@example.org")
    assert conn.final_reply_pending and conn.state is ClientState.TRANSACTION
    assert [type(c).__name__ for c in conn.outstanding] == [
        "EndOfContent",
        "Mail",
        "Rcpt",
        "Rcpt",
        "Data",
    ]
    events = run(conn, server, wire)  # one round trip: final reply, then the next group
    assert names(events) == ["TransactionResult"] + ["CommandReply"] * 3 + ["ReadyForContent"]
    first = _results(events)[0]
    assert first.sender == "a@example.org" and first.delivered == ("x@example.org",)
    assert not conn.final_reply_pending and conn.state is ClientState.CONTENT
    events = run(conn, server, conn.send(Content(data=b"two\r\n")) + conn.send(EndOfContent()))
    second = _results(events)[0]
    assert second.sender == "b@example.org"
    assert second.delivered == ("y@example.org", "z@example.org")
    assert server.messages == [b"Subject: one\r\n\r\nbody one\r\n", b"two\r\n"]
    assert conn.state is ClientState.READY and conn.outstanding == ()


def test_refused_final_reply_then_accepted_next_message(parser_cls: Any) -> None:
    """A refusal of message 1's content never touches message 2's accounting."""
    conn = greeted(parser_cls)
    server = ScriptedServer({b".": [b"554 5.7.1 spam\r\n"]})
    wire = _first_message(conn, server)
    wire += _envelope(conn, "b@example.org", "y@example.org")
    events = run(conn, server, wire)
    assert names(events) == [
        "TransactionResult",
        "CommandReply",
        "CommandReply",
        "ReadyForContent",
    ]
    refused = _results(events)[0]
    assert refused.sender == "a@example.org" and refused.delivered == ()
    assert refused.data_reply is not None and refused.data_reply.code == 554
    assert isinstance(events[-1], ReadyForContent) and conn.state is ClientState.CONTENT
    events = run(conn, server, conn.send(EndOfContent()))
    accepted = _results(events)[0]
    assert accepted.sender == "b@example.org" and accepted.delivered == ("y@example.org",)
    assert accepted.data_reply is not None and accepted.data_reply.code == 250


def test_421_as_the_final_reply_ends_both_transactions(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = _first_message(conn, server)
    wire += _envelope(conn, "b@example.org", "y@example.org")
    server.receive(wire)
    events = feed(conn, b"421 4.3.2 shutting down\r\n")
    assert names(events) == ["TransactionResult", "TransactionResult", "ServiceClosing"]
    first, second = _results(events)
    assert first.sender == "a@example.org" and first.data_reply is not None
    assert first.data_reply.code == 421 and first.delivered == ()
    assert second.sender == "b@example.org" and second.delivered == ()
    assert second.sender_reply is not None and second.sender_reply.code == 421
    assert [(a, r.code) for a, r in second.recipients] == [("y@example.org", 421)]
    assert conn.state is ClientState.CLOSING and not conn.final_reply_pending


def test_421_in_the_middle_of_the_next_group(parser_cls: Any) -> None:
    """Message 1 accepted, then 421 to message 2's RCPT: 1 delivered, 2 not."""
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = _first_message(conn, server)
    wire += _envelope(conn, "b@example.org", "y@example.org", "z@example.org")
    server.receive(wire)
    events = feed(conn, b"250 2.0.0 queued\r\n250 ok\r\n421 4.3.2 bye\r\n")
    assert names(events) == [
        "TransactionResult",
        "CommandReply",
        "CommandReply",
        "TransactionResult",
        "ServiceClosing",
    ]
    first, second = _results(events)
    assert first.delivered == ("x@example.org",)
    assert second.delivered == ()
    assert [(a, r.code) for a, r in second.recipients] == [
        ("y@example.org", 421),
        ("z@example.org", 421),
    ]
    assert isinstance(events[-1], ServiceClosing)


def test_eof_after_the_pipelined_group(parser_cls: Any) -> None:
    """EOF before the final reply: message 1's status is unknown; message 2 never got
    a 354, so no content of it was sent (no event claims anything about it)."""
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = _first_message(conn, server)
    wire += _envelope(conn, "b@example.org", "y@example.org")
    events = feed(conn, b"")
    assert names(events) == ["DeliveryStatusUnknown", "ConnectionClosed"]
    unknown = events[0]
    assert isinstance(unknown, DeliveryStatusUnknown)
    assert unknown.sender == "a@example.org" and unknown.recipients == ("x@example.org",)
    assert conn.state is ClientState.CLOSED


def test_eof_after_the_final_reply_while_the_next_group_is_due(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = _first_message(conn, server)
    wire += _envelope(conn, "b@example.org", "y@example.org")
    conn.receive_data(b"250 2.0.0 queued\r\n250 ok\r\n")
    conn.receive_data(b"")
    first = conn.next_event()
    assert isinstance(first, TransactionResult) and first.delivered == ("x@example.org",)
    assert isinstance(conn.next_event(), CommandReply)
    with pytest.raises(RemoteProtocolError, match="connection closed"):
        conn.next_event()


@pytest.mark.parametrize("follow", [Rset(), Noop(), Quit()])
def test_rset_noop_quit_may_follow_the_dot(parser_cls: Any, follow: Any) -> None:
    conn = greeted(parser_cls)
    server = ScriptedServer()
    wire = _first_message(conn, server) + conn.send(follow)
    events = run(conn, server, wire)
    assert names(events) == ["TransactionResult", "CommandReply"]
    assert _results(events)[0].delivered == ("x@example.org",)
    assert isinstance(events[1], CommandReply) and events[1].command is follow


@pytest.mark.parametrize(
    "follow",
    [
        StartTLS(),
        Auth(mechanism=Plain("user", "secret")),
        Vrfy(argument="someone"),
    ],
)
def test_session_changing_commands_wait_for_the_final_reply(parser_cls: Any, follow: Any) -> None:
    conn = greeted(parser_cls, allow_cleartext_auth=True)
    _first_message(conn, ScriptedServer())
    with pytest.raises(LocalProtocolError, match="pipelined after END_OF_CONTENT"):
        conn.send(follow)


def test_no_content_for_the_next_message_before_its_354(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    _first_message(conn, ScriptedServer())
    _envelope(conn, "b@example.org", "y@example.org")
    with pytest.raises(LocalProtocolError, match="cannot be sent in state TRANSACTION"):
        conn.send(Content(data=b"too early"))


def test_data_still_ends_the_next_group(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    _first_message(conn, ScriptedServer())
    _envelope(conn, "b@example.org", "y@example.org")
    with pytest.raises(LocalProtocolError, match="pipelined after DATA"):
        conn.send(Rset())


def test_without_pipelining_the_dot_is_answered_first(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PLAIN)
    server = ScriptedServer()
    for command in (Mail(sender="a@example.org"), Rcpt(recipient="x@example.org"), Data()):
        assert len(run(conn, server, conn.send(command))) == 1
    conn.send(EndOfContent())
    with pytest.raises(LocalProtocolError, match="does not advertise PIPELINING"):
        conn.send(Mail(sender="b@example.org"))


def test_bdat_last_then_next_message_many_in_flight(parser_cls: Any) -> None:
    """MAIL/RCPT/BDAT LAST per message, three messages before any reply."""
    conn = greeted(parser_cls)
    server = ScriptedServer({b"BDAT": [b"250 ok\r\n", b"552 5.3.4 too big\r\n"]})
    wire = b""
    for index in range(3):
        wire += conn.send(Mail(sender=f"s{index}@example.org"))
        wire += conn.send(Rcpt(recipient=f"r{index}@example.org"))
        wire += conn.send(Bdat(data=b"message %d\r\n" % index, last=True))
    assert conn.state is ClientState.READY and len(conn.outstanding) == 9
    events = run(conn, server, wire)
    results = _results(events)
    assert [r.sender for r in results] == [f"s{i}@example.org" for i in range(3)]
    assert [r.delivered for r in results] == [("r0@example.org",), (), ("r2@example.org",)]
    assert server.messages == [b"message 0\r\n", b"message 1\r\n", b"message 2\r\n"]
    assert conn.outstanding == ()


def test_lmtp_per_recipient_replies_then_next_message(parser_cls: Any) -> None:
    conn = greeted(parser_cls, lmtp=True)
    wire = conn.send(Mail(sender="a@example.org"))
    wire += conn.send(Rcpt(recipient="x@example.org")) + conn.send(Rcpt(recipient="y@example.org"))
    wire += conn.send(Data())
    events = feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    assert isinstance(events[-1], ReadyForContent)
    conn.send(Content(data=b"hi\r\n"))
    conn.send(EndOfContent())
    _envelope(conn, "b@example.org", "z@example.org")
    events = feed(
        conn,
        b"250 2.0.0 x delivered\r\n452 4.2.2 y over quota\r\n"  # one per recipient
        b"250 ok\r\n250 ok\r\n354 go\r\n",
    )
    assert names(events) == [
        "TransactionResult",
        "CommandReply",
        "CommandReply",
        "ReadyForContent",
    ]
    first = _results(events)[0]
    assert first.delivered == ("x@example.org",)
    assert [(a, r.code) for a, r in first.failed] == [("y@example.org", 452)]
    conn.send(EndOfContent())
    second = _results(feed(conn, b"250 2.0.0 z delivered\r\n"))[0]
    assert second.sender == "b@example.org" and second.delivered == ("z@example.org",)
