"""Engine: ``ClientConnection.command_replies`` (``send_many`` turns it off).

With it False, replies to MAIL, RCPT and non-final BDAT make no ``CommandReply``; they
are still matched to their commands in order (RFC 2920 §3.1) and checked, and every
one of them is in the ``TransactionResult``. Every other event is the same as with
it True: the event stream with it off is the stream with it on minus those events,
for any replies the server gives (both parser twins).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import EHLO_ALL, ScriptedServer, greeted, names, run
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    Bdat,
    CommandReply,
    Content,
    Data,
    EndOfContent,
    Event,
    Mail,
    Noop,
    NoRecipientsAccepted,
    Rcpt,
    ReadyForContent,
    Rset,
    TransactionResult,
)
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.twins import ReplyParser

REPLIES = {
    b"MAIL": [b"250 ok\r\n", b"550 no\r\n", b"451 later\r\n"],
    b"RCPT": [b"250 ok\r\n", b"550 unknown\r\n", b"452 full\r\n"],
    b"DATA": [b"354 go\r\n", b"554 no\r\n"],
    b".": [b"250 queued\r\n", b"554 spam\r\n"],
    b"BDAT": [b"250 ok\r\n", b"552 too big\r\n"],
}


def _quiet(events: list[Event]) -> list[Event]:
    """The events ``command_replies=False`` keeps."""
    return [
        event
        for event in events
        if not (isinstance(event, CommandReply) and isinstance(event.command, (Mail, Rcpt, Bdat)))
    ]


def _session(conn: ClientConnection, script: dict[bytes, list[bytes]], bdat: bool) -> list[Event]:
    """Three messages (two recipients each) with the next one pipelined after the end
    of the content (RFC 2920 §3.1), or BDAT chunks then BDAT LAST; then NOOP."""
    server = ScriptedServer({verb: list(replies) for verb, replies in script.items()})
    events: list[Event] = []
    tail = b""
    for index in range(3):
        wire = tail + conn.send(Mail(sender=f"s{index}@example.org"))
        wire += conn.send(Rcpt(recipient=f"a{index}@example.org"))
        wire += conn.send(Rcpt(recipient=f"b{index}@example.org"))
        if bdat:
            wire += conn.send(Bdat(data=b"part\r\n"))
            wire += conn.send(Bdat(data=b"message %d\r\n" % index, last=True))
            tail = b""
        else:
            wire += conn.send(Data())
        new = run(conn, server, wire)
        events += new
        if bdat:
            continue
        if any(isinstance(event, ReadyForContent) for event in new):
            tail = conn.send(Content(data=b"message %d\r\n" % index)) + conn.send(EndOfContent())
        elif any(isinstance(event, NoRecipientsAccepted) for event in new):
            tail = conn.send(EndOfContent())
        else:
            tail = b""
        if tail and index == 2:
            events += run(conn, server, tail)
            tail = b""
    events += run(conn, server, tail + conn.send(Noop()))
    return events


@pytest.mark.parametrize("bdat", [False, True])
def test_no_command_reply_for_mail_rcpt_bdat(parser_cls: Any, bdat: bool) -> None:
    conn = greeted(parser_cls)
    assert conn.command_replies is True
    conn.command_replies = False
    events = _session(conn, {}, bdat)
    assert (
        names(events) == ["TransactionResult"] * 3 + ["CommandReply"]
        if bdat
        else [
            "ReadyForContent",
            "TransactionResult",
            "ReadyForContent",
            "TransactionResult",
            "ReadyForContent",
            "TransactionResult",
            "CommandReply",
        ]
    )
    results = [event for event in events if isinstance(event, TransactionResult)]
    assert [result.delivered for result in results] == [
        (f"a{index}@example.org", f"b{index}@example.org") for index in range(3)
    ]
    assert all(result.sender_reply is not None for result in results)
    assert conn.outstanding == ()


def test_other_replies_still_make_command_replies(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.command_replies = False
    server = ScriptedServer()
    wire = conn.send(Mail(sender="s@example.org")) + conn.send(Rset()) + conn.send(Noop())
    events = run(conn, server, wire)
    assert names(events) == ["CommandReply", "TransactionResult", "CommandReply"]
    assert [type(event.command) for event in events if isinstance(event, CommandReply)] == [
        Rset,
        Noop,
    ]


@pytest.mark.parametrize("value", [1, None, "no"])
def test_only_a_bool_is_taken(value: Any) -> None:
    conn = greeted(ReplyParser)
    with pytest.raises(LocalProtocolError, match="must be a bool"):
        conn.command_replies = value
    assert conn.command_replies is True


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    script=st.fixed_dictionaries(
        {verb: st.lists(st.sampled_from(replies), max_size=4) for verb, replies in REPLIES.items()}
    ),
    bdat=st.booleans(),
)
def test_the_quiet_stream_is_the_full_stream_minus_those_replies(
    parser_cls: Any, script: dict[bytes, list[bytes]], bdat: bool
) -> None:
    loud = greeted(parser_cls, EHLO_ALL)
    quiet = greeted(parser_cls, EHLO_ALL)
    quiet.command_replies = False
    expected = _session(loud, script, bdat)
    got = _session(quiet, script, bdat)
    assert got == _quiet(expected)
    assert loud.state is quiet.state and loud.outstanding == quiet.outstanding == ()
