"""``Session.send_many`` against the in-memory scripted server: one round trip per
message with PIPELINING (RFC 2920 §3.1), BDAT windows, lock-step fallback, outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_helpers import ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.batch import BatchItem
from smtpproto.drivers.session import Read, Session, Write
from smtpproto.drivers.support import MailOptions
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
)

EHLO_PIPE = b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_BDAT = b"250-mx.example.org\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
EHLO_PLAIN = b"250 mx.example.org\r\n"


def opened(ehlo: bytes, script: dict[bytes, list[bytes]] | None = None) -> Any:
    server = ScriptedServer({b"EHLO": [ehlo], **(script or {})})
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = Transport(server)
    transport.run(session.open())
    return session, transport, server


def batch(count: int, start: int = 0) -> list[BatchItem]:
    return [
        (f"s{i}@example.org", [f"r{i}@example.org"], b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
        for i in range(start, start + count)
    ]


def reads(transport: Transport, since: int) -> int:
    return sum(isinstance(request, Read) for request in transport.requests[since:])


def test_one_round_trip_per_message_with_pipelining() -> None:
    session, transport, server = opened(EHLO_PIPE)
    before = len(transport.requests)
    first_write = len(transport.written)
    outcomes = transport.run(session.send_many(batch(3)))
    assert [type(o) for o in outcomes] == [TransactionResult] * 3
    assert [o.sender for o in outcomes] == [f"s{i}@example.org" for i in range(3)]
    assert server.messages == [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(3)]
    writes = transport.written[first_write:]
    assert writes[0].startswith(b"MAIL FROM:<s0@example.org>") and writes[0].endswith(b"DATA\r\n")
    # the end of message 0 goes out with message 1's envelope (RFC 2920 §3.1)
    assert writes[1] == (
        b"Subject: 0\r\n\r\nbody 0\r\n.\r\n"
        b"MAIL FROM:<s1@example.org> SIZE=25\r\nRCPT TO:<r1@example.org>\r\nDATA\r\n"
    ).replace(b" SIZE=25", b"")
    assert writes[-1] == b"Subject: 2\r\n\r\nbody 2\r\n.\r\n"
    assert len(writes) == 4
    assert reads(transport, before) == 4  # one per message, plus the first 354
    assert session.usable


def test_refused_final_reply_is_that_message_only() -> None:
    session, transport, _server = opened(EHLO_PIPE, {b".": [b"250 ok\r\n", b"554 5.7.1 spam\r\n"]})
    outcomes = transport.run(session.send_many(batch(3)))
    assert isinstance(outcomes[0], TransactionResult)
    assert isinstance(outcomes[1], SMTPReplyError) and outcomes[1].reply.code == 554
    assert isinstance(outcomes[2], TransactionResult)
    assert outcomes[2].delivered == ("r2@example.org",)
    assert session.usable


def test_all_recipients_refused_sends_a_lone_dot_and_goes_on() -> None:
    session, transport, server = opened(
        EHLO_PIPE, {b"RCPT": [b"250 ok\r\n", b"550 5.1.1 unknown\r\n"]}
    )
    outcomes = transport.run(session.send_many(batch(3)))
    assert isinstance(outcomes[1], SMTPRecipientsRefused)
    assert [type(o) for o in (outcomes[0], outcomes[2])] == [TransactionResult] * 2
    assert server.messages[1] == b""  # RFC 2920 §3.1: only "." after the 354
    assert len(server.messages) == 3


def test_a_lone_dot_is_followed_by_rset_before_the_next_mail() -> None:
    """A 354 with every RCPT refused gets a lone "." (RFC 2920 §3.1), which may leave
    the transaction open (``left_open``); the next MAIL is written before the reply
    to that ".", so RSET goes first (else 503 "nested MAIL")."""
    session, transport, server = opened(
        EHLO_PIPE, {b"RCPT": [b"250 ok\r\n", b"550 5.1.1 unknown\r\n"]}
    )
    outcomes = transport.run(session.send_many(batch(3)))
    assert isinstance(outcomes[1], SMTPRecipientsRefused)
    verbs = [line.split(b" ")[0] for line in server.lines if line[:4].isalpha()]
    second = verbs.index(b"MAIL", verbs.index(b"MAIL") + 1)
    assert verbs[second + 3 : second + 5] == [b"RSET", b"MAIL"]


@pytest.mark.parametrize("window", [2, 32])
def test_bdat_groups_behind_an_unanswered_bdat_last_start_with_rset(window: int) -> None:
    """With BDAT LAST windows, a group written while an earlier message's BDAT LAST is
    unanswered starts with RSET: that transaction may be left open (MAIL accepted,
    every RCPT refused, RFC 3030 §2), and a MAIL behind it would be refused as nested
    or its RCPTs join it."""
    session, transport, server = opened(
        EHLO_BDAT, {b"RCPT": [b"250 ok\r\n", b"550 5.1.1 unknown\r\n"]}
    )
    first_write = len(transport.written)
    outcomes = transport.run(session.send_many(batch(4), max_in_flight=window))
    assert isinstance(outcomes[1], SMTPRecipientsRefused)
    assert [type(outcomes[i]) for i in (0, 2, 3)] == [TransactionResult] * 3
    writes = b"".join(transport.written[first_write:])
    assert writes.startswith(b"MAIL FROM:<s0@example.org>")
    assert writes.count(b"RSET\r\nMAIL FROM:") == 3
    assert len(server.messages) == 4  # the scripted server keeps even a refused one


def test_refused_data_sends_no_content() -> None:
    session, transport, server = opened(EHLO_PIPE, {b"DATA": [b"354 go\r\n", b"451 later\r\n"]})
    outcomes = transport.run(session.send_many(batch(3)))
    assert isinstance(outcomes[1], SMTPReplyError) and outcomes[1].reply.code == 451
    assert server.messages == [b"Subject: 0\r\n\r\nbody 0\r\n", b"Subject: 2\r\n\r\nbody 2\r\n"]


def test_bad_message_is_its_own_outcome() -> None:
    session, transport, server = opened(EHLO_PIPE)
    items = batch(3)
    items[1] = ("bad\r\naddress", ["r@example.org"], b"x\r\n")
    outcomes = transport.run(
        session.send_many([*items, "not a message"])
    )  # a str: wrong on purpose
    assert isinstance(outcomes[1], SMTPProtocolError)
    assert isinstance(outcomes[3], SMTPProtocolError) and "tuples" in str(outcomes[3])
    assert [type(outcomes[i]) for i in (0, 2)] == [TransactionResult] * 2
    assert len(server.messages) == 2 and session.usable


def run_until_a_write_fails(
    transport: Transport, driver: Any, failing: int, last_words: bool = False
) -> Any:
    """Drive ``driver`` like ``Transport.run``, but hand the replies over one line per
    ``Read`` and make write number ``failing`` (from 0, counted from now) fail with a
    connection reset; the server then says nothing more (EOF), or with ``last_words``
    first everything it had answered (what the adapter read before the reset)."""
    answer: Any = None
    writes = 0
    pending = b""
    for _ in range(1000):
        try:
            request = driver.send(answer)
            answer = None
            while isinstance(request, Write) and writes == failing:
                writes += 1
                request = driver.throw(ConnectionResetError("reset by peer"))
        except StopIteration as stop:
            return stop.value
        if isinstance(request, Write):
            writes += 1
            pending += transport.server.receive(request.data)
        elif writes > failing:
            answer = pending if last_words else b""  # then the connection is gone: EOF
            pending = b""
        else:
            line, _, pending = pending.partition(b"\r\n")
            answer = line + b"\r\n"
    raise AssertionError("the driver never finished")


@pytest.mark.parametrize(("window", "failing", "first"), [(3, 1, 0), (2, 2, 1)])
def test_a_failed_write_is_reported_for_the_messages_it_concerns(
    window: int, failing: int, first: int
) -> None:
    """A write that fails in a BDAT window: the oldest message in flight gets the error,
    as ``SMTPDeliveryStatusUnknown`` naming its own envelope when its BDAT LAST went
    out. It got ``SMTPConnectError`` ("not delivered") when no reply had been read yet,
    and the envelope of a message settled earlier when one had."""
    session, transport, _server = opened(EHLO_BDAT)
    # (3, 1, 0): message 0 written, the write of message 1 fails before any reply.
    # (2, 2, 1): messages 0 and 1 written, message 0 settled (its replies read), then
    # the write of message 2 fails; ``first``: the first message the failure concerns.
    outcomes = run_until_a_write_fails(
        transport, session.send_many(batch(4), max_in_flight=window), failing
    )
    if first:
        assert isinstance(outcomes[0], TransactionResult)
    for index in range(first, len(outcomes)):
        outcome = outcomes[index]
        assert isinstance(outcome, SMTPDeliveryStatusUnknown), (index, outcome)
        assert outcome.sender == f"s{index}@example.org"
        assert outcome.recipients == (f"r{index}@example.org",)
    assert len(outcomes) == first + 2


def test_replies_read_after_a_failed_write_settle_their_own_messages() -> None:
    """Replies the server sent before a write failed (its last words) settle the
    messages they answer, in order: message 0 delivered, message 1 refused, message 2
    unknown. The first refusal among them was the whole batch's error: message 0,
    delivered, was reported with message 1's refusal."""
    session, transport, _server = opened(
        EHLO_BDAT, {b"RCPT": [b"250 2.1.5 ok\r\n", b"550 5.1.1 no such user\r\n"]}
    )
    driver = session.send_many(batch(3), max_in_flight=3)
    outcomes = run_until_a_write_fails(transport, driver, failing=2, last_words=True)
    assert isinstance(outcomes[0], TransactionResult)
    assert outcomes[0].delivered == ("r0@example.org",)
    assert isinstance(outcomes[1], SMTPRecipientsRefused)
    assert outcomes[1].refused["r1@example.org"].code == 550
    assert isinstance(outcomes[2], SMTPDeliveryStatusUnknown)
    assert outcomes[2].sender == "s2@example.org" and len(outcomes) == 3


def test_reused_envelope_commands_follow_every_input() -> None:
    """A repeated envelope's MAIL/RCPT are reused, but never when the size, the body
    type, the recipients or the options changed since (a notify list given to
    ``MailOptions`` is copied, so changing it later changes nothing)."""
    ehlo = b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 DSN\r\n"
    session, transport, server = opened(ehlo)
    notify = ["SUCCESS"]

    def items() -> Iterator[BatchItem]:
        yield ("a@x.org", ["b@x.org"], b"x\r\n")
        yield ("a@x.org", ["b@x.org"], b"y\r\n")  # same envelope
        yield ("a@x.org", ["b@x.org"], b"yy\r\n")  # SIZE changes
        yield ("a@x.org", ["b@x.org"], b"\xe9y\r\n")  # BODY=8BITMIME
        yield ("a@x.org", ["c@x.org"], b"\xe9y\r\n")  # another recipient
        notify[0] = "FAILURE"  # the caller changes its list while the batch runs
        yield ("a@x.org", ["c@x.org"], b"\xe9y\r\n")

    outcomes = transport.run(session.send_many(items()))
    outcomes += transport.run(session.send_many(items(), options=MailOptions(ret="HDRS")))
    notify[0] = "SUCCESS"
    options = MailOptions(notify=notify)  # type: ignore[arg-type]  # a list on purpose
    outcomes += transport.run(session.send_many(items(), options=options))
    assert [type(o) for o in outcomes] == [TransactionResult] * 18
    envelope = [line for line in server.lines if line.startswith((b"MAIL", b"RCPT"))]
    mails = [b"SIZE=3", b"SIZE=3", b"SIZE=4", b"SIZE=4 BODY=8BITMIME"]
    mails += [b"SIZE=4 BODY=8BITMIME"] * 2
    rcpts = [b"b"] * 4 + [b"c"] * 2
    assert envelope[:12] == [
        line
        for mail, rcpt in zip(mails, rcpts, strict=True)
        for line in (b"MAIL FROM:<a@x.org> " + mail, b"RCPT TO:<" + rcpt + b"@x.org>")
    ]
    assert envelope[12:24] == [
        line
        for mail, rcpt in zip(mails, rcpts, strict=True)
        for line in (
            b"MAIL FROM:<a@x.org> " + mail + b" RET=HDRS",
            b"RCPT TO:<" + rcpt + b"@x.org>",
        )
    ]
    # MailOptions keeps a copy of the notify list, as a tuple (the value is frozen):
    # changing the caller's list afterwards changes nothing.
    assert options.notify == ("SUCCESS",)
    notes = [b"SUCCESS"] * 6
    assert envelope[24:] == [
        line
        for mail, rcpt, note in zip(mails, rcpts, notes, strict=True)
        for line in (
            b"MAIL FROM:<a@x.org> " + mail,
            b"RCPT TO:<" + rcpt + b"@x.org> NOTIFY=" + note,
        )
    ]


def test_a_repeated_envelope_is_checked_again_whenever_a_value_differs() -> None:
    """``send_many`` reuses the last small message's validated MAIL/RCPT only when
    every value is the same: a recipient list the caller changes in place, another
    recipient shape, an iterator, a bad address or 8-bit content without 8BITMIME
    each go through the full checks."""
    session, transport, server = opened(
        EHLO_PLAIN.replace(b"250 ", b"250-") + b"250 PIPELINING\r\n"
    )
    rcpts = ["b@x.org"]

    def items() -> Iterator[Any]:
        yield ("a@x.org", rcpts, b"1\r\n")
        yield ("a@x.org", rcpts, b"2\r\n")  # reused
        rcpts[0] = "c@x.org"  # the same list object, changed
        yield ("a@x.org", rcpts, b"3\r\n")
        yield ("a@x.org", "c@x.org", b"4\r\n")  # a str this time
        yield ("a@x.org", iter(["d@x.org"]), b"5\r\n")  # an iterator: taken anew
        yield ("a@x.org", ("c@x.org", "bad\r\nRCPT TO:<evil@x.org>"), b"6\r\n")
        yield ("a@x.org", ["c@x.org"], b"\xe97\r\n")  # 8-bit, no 8BITMIME
        yield ("a@x.org", ["c@x.org"], "8\r\n")  # str content: sent as its UTF-8
        yield ("e@x.org", ["c@x.org"], b"9\r\n")

    outcomes = transport.run(session.send_many(items()))
    assert [type(o).__name__ for o in outcomes] == ["TransactionResult"] * 5 + [
        "SMTPProtocolError",
        "SMTPProtocolError",
        "TransactionResult",
        "TransactionResult",
    ]
    assert "8BITMIME" in str(outcomes[6])
    pairs = [("a", "b"), ("a", "b"), ("a", "c"), ("a", "c"), ("a", "d"), ("a", "c"), ("e", "c")]
    envelope = [line for line in server.lines if line.startswith((b"MAIL", b"RCPT"))]
    assert envelope == [
        line
        for sender, rcpt in pairs
        for line in (
            b"MAIL FROM:<%s@x.org>" % sender.encode(),
            b"RCPT TO:<%s@x.org>" % rcpt.encode(),
        )
    ]
    assert not any(b"evil" in line for line in server.lines)
    assert session.usable


def test_421_as_a_final_reply_ends_the_batch_without_consuming_the_rest() -> None:
    session, transport, _server = opened(EHLO_PIPE, {b".": [b"250 ok\r\n", b"421 4.3.2 bye\r\n"]})
    items: Iterator[BatchItem] = iter(batch(6))
    outcomes = transport.run(session.send_many(items))
    assert isinstance(outcomes[0], TransactionResult)
    assert len(outcomes) == 3  # message 2 was in flight behind message 1's "."
    for outcome in outcomes[1:]:
        assert isinstance(outcome, SMTPReplyError) and outcome.reply.code == 421
    untouched = next(items)
    assert isinstance(untouched, tuple) and untouched[0] == "s3@example.org"  # never taken
    assert not session.usable


def test_command_replies_come_back_after_the_batch_however_it_ends() -> None:
    """``send_many`` turns the engine's ``command_replies`` off for its own reads and
    on again when it returns, raises or is closed half-way, so the drivers that wait
    for a ``CommandReply`` (``sendmail``, ``rset``) work after it."""
    session, transport, _server = opened(EHLO_PIPE)
    assert transport.run(session.send_many(batch(2))) and session.conn.command_replies
    assert transport.run(session.sendmail("a@x.org", ["b@x.org"], b"x\r\n")).delivered
    driver = session.send_many(batch(3))
    next(driver)  # the first group is written; its replies are awaited
    assert session.conn.command_replies is False
    driver.close()
    assert session.conn.command_replies is True
    session, transport, _server = opened(EHLO_PIPE, {b".": [b"421 4.3.2 bye\r\n"]})
    outcomes = transport.run(session.send_many(batch(2)))
    assert isinstance(outcomes[0], SMTPReplyError) and session.conn.command_replies is True


def silent_after(messages: int) -> dict[bytes, list[bytes]]:
    """A server that answers ``messages`` envelopes, the final reply of one fewer, then
    says nothing."""
    return {
        b"MAIL": [b"250 ok\r\n"] * messages + [b""],
        b"RCPT": [b"250 ok\r\n"] * messages + [b""],
        b"DATA": [b"354 go\r\n"] * messages + [b""],
        b".": [b"250 ok\r\n"] * (messages - 1) + [b""],
    }


def test_eof_after_the_pipelined_group() -> None:
    session, transport, _server = opened(EHLO_PIPE, silent_after(2))
    transport.eof_when_silent = True
    outcomes = transport.run(session.send_many(batch(5)))
    assert isinstance(outcomes[0], TransactionResult)
    assert isinstance(outcomes[1], SMTPDeliveryStatusUnknown)
    assert outcomes[1].sender == "s1@example.org"
    assert isinstance(outcomes[2], SMTPConnectError)  # its content was never sent
    assert len(outcomes) == 3 and not session.usable


def test_timeout_waiting_for_the_final_reply() -> None:
    session, transport, _server = opened(EHLO_PIPE, silent_after(1))
    outcomes = transport.run(session.send_many(batch(3)))
    assert isinstance(outcomes[0], SMTPDeliveryTimeoutError)
    assert outcomes[0].sender == "s0@example.org"
    assert isinstance(outcomes[1], SMTPConnectError) and len(outcomes) == 2


def test_without_pipelining_lock_step() -> None:
    session, transport, server = opened(EHLO_PLAIN, {b".": [b"250 ok\r\n", b"554 no\r\n"]})
    first_write = len(transport.written)
    outcomes = transport.run(session.send_many(batch(3)))
    assert isinstance(outcomes[1], SMTPReplyError)
    assert [type(outcomes[i]) for i in (0, 2)] == [TransactionResult] * 2
    writes = transport.written[first_write:]
    assert writes[:4] == [
        b"MAIL FROM:<s0@example.org>\r\n",
        b"RCPT TO:<r0@example.org>\r\n",
        b"DATA\r\n",
        b"Subject: 0\r\n\r\nbody 0\r\n.\r\n",
    ]
    assert len(server.messages) == 3


def test_pipelining_turned_off_is_lock_step() -> None:
    session, transport, _server = opened(EHLO_PIPE)
    first_write = len(transport.written)
    transport.run(session.send_many(batch(2), pipelining=False))
    assert transport.written[first_write] == b"MAIL FROM:<s0@example.org>\r\n"


def test_max_in_flight_one_waits_for_each_final_reply() -> None:
    session, transport, _server = opened(EHLO_PIPE)
    first_write = len(transport.written)
    outcomes = transport.run(session.send_many(batch(2), max_in_flight=1))
    assert [type(o) for o in outcomes] == [TransactionResult] * 2
    writes = transport.written[first_write:]
    assert writes[1] == b"Subject: 0\r\n\r\nbody 0\r\n.\r\n"
    assert writes[2].startswith(b"MAIL FROM:<s1@example.org>")


@pytest.mark.parametrize("window", [1, 3, 32])
def test_bdat_window_bounds_messages_in_flight(window: int) -> None:
    session, transport, server = opened(
        EHLO_BDAT, {b"BDAT": [b"250 ok\r\n", b"552 5.3.4 too big\r\n"]}
    )
    conn = session.conn
    in_flight: list[int] = []
    driver = session.send_many(batch(7), max_in_flight=window)

    def watching() -> Any:
        answer = None
        while True:
            try:
                request = driver.send(answer)
            except StopIteration as stop:
                return stop.value
            finals = sum(type(c).__name__ == "Bdat" for c in conn.outstanding)
            in_flight.append(finals)
            answer = yield request

    outcomes = transport.run(watching())
    assert max(in_flight) == min(window, 7)
    assert isinstance(outcomes[1], SMTPReplyError) and outcomes[1].reply.code == 552
    assert sum(isinstance(o, TransactionResult) for o in outcomes) == 6
    assert server.messages[0] == b"Subject: 0\r\n\r\nbody 0\r\n"


def test_large_bdat_message_goes_lock_step_in_a_batch() -> None:
    session, transport, server = opened(EHLO_BDAT)
    big = b"line of text\r\n" * 100
    items: list[BatchItem] = [*batch(1), ("big@example.org", "r@example.org", big), *batch(1, 5)]
    outcomes = transport.run(session.send_many(items, chunk_size=256))
    assert [type(o) for o in outcomes] == [TransactionResult] * 3
    assert server.messages[1] == big
    bdat_lines = [line for line in server.lines if line.startswith(b"BDAT")]
    assert len(bdat_lines) == 1 + (len(big) + 255) // 256 + 1


def test_streamed_content_and_email_messages() -> None:
    session, transport, server = opened(EHLO_PIPE)
    msg = EmailMessage()
    msg["From"] = "from@example.org"
    msg["To"] = "to@example.org"
    msg["Bcc"] = "hidden@example.org"
    msg["Subject"] = "hello"
    msg.set_content("body\n")

    def pieces() -> Iterator[bytes]:
        yield b"Subject: streamed\r\n\r\n"
        yield b"part one\r\n" * 3
        yield b"part two\r\n"

    outcomes = transport.run(
        session.send_many([msg, ("a@example.org", "b@example.org", pieces())], chunk_size=16)
    )
    first, second = outcomes
    assert isinstance(first, TransactionResult)
    assert first.delivered == ("to@example.org", "hidden@example.org")
    assert b"hidden@example.org" not in server.messages[0]
    assert isinstance(second, TransactionResult)
    assert server.messages[1] == b"Subject: streamed\r\n\r\n" + b"part one\r\n" * 3 + (
        b"part two\r\n"
    )
    assert all(len(w) < 200 for w in transport.written if isinstance(w, bytes))


def test_arguments_are_checked_before_anything_is_sent() -> None:
    session, transport, _server = opened(EHLO_PIPE)
    with pytest.raises(SMTPProtocolError, match="max_in_flight"):
        session.send_many(batch(1), max_in_flight=0)
    with pytest.raises(SMTPProtocolError, match="chunk_size"):
        session.send_many(batch(1), chunk_size=0)
    with pytest.raises(SMTPProtocolError, match="CHUNKING"):
        session.send_many(batch(1), chunking=True)
    with pytest.raises(SMTPProtocolError, match="iterable"):
        session.send_many(5)  # type: ignore[arg-type]  # invalid on purpose
    assert transport.run(session.send_many([])) == []
    assert session.usable and not any(
        isinstance(r, Write) for r in transport.requests[-1:] if r is not None
    )


REPLIES = {
    b"MAIL": [b"250 ok\r\n", b"550 no\r\n", b"421 bye\r\n"],
    b"RCPT": [b"250 ok\r\n", b"550 no\r\n", b"452 full\r\n", b"421 bye\r\n"],
    b"DATA": [b"354 go\r\n", b"554 no\r\n", b"451 later\r\n", b"421 bye\r\n"],
    b".": [b"250 ok\r\n", b"554 spam\r\n", b"451 later\r\n", b"421 bye\r\n", b""],
    b"BDAT": [b"250 ok\r\n", b"552 big\r\n", b"421 bye\r\n"],
}


@given(
    ehlo=st.sampled_from([EHLO_PIPE, EHLO_BDAT, EHLO_PLAIN]),
    script=st.fixed_dictionaries(
        {verb: st.lists(st.sampled_from(choices), max_size=6) for verb, choices in REPLIES.items()}
    ),
    count=st.integers(0, 6),
    window=st.integers(1, 4),
    eof=st.booleans(),
)
def test_any_reply_sequence_gives_one_outcome_per_message_in_order(
    ehlo: bytes, script: dict[bytes, list[bytes]], count: int, window: int, eof: bool
) -> None:
    session, transport, _server = opened(ehlo, script)
    transport.eof_when_silent = eof
    outcomes = transport.run(session.send_many(batch(count), max_in_flight=window))
    assert len(outcomes) <= count
    for index, outcome in enumerate(outcomes):
        assert isinstance(outcome, (TransactionResult, SMTPError)), outcome
        if isinstance(outcome, TransactionResult):
            assert outcome.sender == f"s{index}@example.org"
            assert outcome.delivered  # refusals are exceptions
    if session.usable:
        assert len(outcomes) == count
        assert not session.conn.outstanding
