"""A refused RSET (RFC 5321 §4.1.1.5: RSET must be answered 250) after a refused
transaction: the server's state is then unknown, so the session is never reused for
another transaction -- the refusal that led to the RSET stays the outcome, the session
is no longer usable (the adapter closes it) and the next operation says so -- and no
delivery made before it is hidden.

Against ``engine_helpers.ScriptedServer`` (the drivers run the same in every adapter).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import EHLO_PIPELINING, ScriptedServer
from session_helpers import Transport, opened
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.session import Session
from smtpproto.exceptions import (
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
)

EHLO_PLAIN = b"250 mx.example.org\r\n"
EHLO_CHUNKING = b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
EHLO_CHUNKING_ONLY = b"250-mx.example.org\r\n250 CHUNKING\r\n"
RSET_REFUSED = [b"500 5.5.1 what\r\n"]
RCPTS = ["b@example.org", "c@example.org"]
MESSAGE = b"Subject: hi\r\n\r\n" + b"hello there\r\n" * 10


def assert_not_reused(session: Session, transport: Transport, server: ScriptedServer) -> None:
    assert not session.usable and not session.can_quit  # the adapter closes
    sent = len(server.lines)
    with pytest.raises(SMTPProtocolError, match="broken"):
        transport.run(session.sendmail("a@example.org", RCPTS, MESSAGE))
    assert len(server.lines) == sent  # nothing more was sent


# (EHLO, script, sendmail keywords, exception, its message): each ends the
# transaction with RSET: ``_settle`` (DATA refused with PIPELINING), ``_abort`` (no
# recipient accepted without PIPELINING, a BDAT chunk refused), ``_stream_refused``
# is not reached here, ``_send_stage`` (``stop_after="rcpt"``: a result, no error).
CASES: dict[str, tuple[bytes, dict[bytes, list[bytes]], dict[str, Any], Any, str]] = {
    "settle: DATA refused, pipelined": (
        EHLO_PIPELINING,
        {b"DATA": [b"554 5.3.0 no\r\n"]},
        {},
        SMTPReplyError,
        "DATA refused: 554",
    ),
    "abort: every RCPT refused, lock-step": (
        EHLO_PLAIN,
        {b"RCPT": [b"550 5.1.1 no\r\n"] * 2},
        {},
        SMTPRecipientsRefused,
        "2 of 2",
    ),
    "abort: a BDAT chunk refused, lock-step": (
        EHLO_CHUNKING_ONLY,
        {b"BDAT": [b"250 ok\r\n", b"552 5.3.4 too big\r\n"]},
        {"chunk_size": 40},
        SMTPReplyError,
        "BDAT refused: 552",
    ),
    "settle: pipelined BDAT LAST, every RCPT refused": (
        EHLO_CHUNKING,
        {b"RCPT": [b"550 5.1.1 no\r\n"] * 2, b"BDAT": [b"503 5.5.1 no recipients\r\n"]},
        {},
        SMTPRecipientsRefused,
        "2 of 2",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_rset_after_a_refused_transaction_ends_the_session(case: str) -> None:
    ehlo, script, keywords, error, message = CASES[case]
    session, transport, server = opened({b"EHLO": [ehlo], b"RSET": RSET_REFUSED, **script})
    with pytest.raises(error, match=message):
        transport.run(session.sendmail("a@example.org", RCPTS, MESSAGE, **keywords))
    assert b"RSET" in server.lines
    assert_not_reused(session, transport, server)


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_rset_after_a_refused_bdat_stream_ends_the_session(pipelining: bool) -> None:
    """A chunk the DATA rules refuse (a NUL) read after earlier chunks went out: RSET
    ends the transaction (``_stream_refused``); refused, the session is not reused
    and the error does not say it is usable."""
    ehlo = EHLO_CHUNKING if pipelining else EHLO_CHUNKING_ONLY
    session, transport, server = opened({b"EHLO": [ehlo], b"RSET": RSET_REFUSED})
    chunks = iter([b"Subject: hi\r\n\r\n", b"a NUL \x00\r\n"])
    with pytest.raises(SMTPProtocolError, match="not reused") as caught:
        transport.run(session.sendmail("a@example.org", RCPTS, chunks, chunking=True))
    assert "usable" not in str(caught.value)
    assert b"RSET" in server.lines
    assert_not_reused(session, transport, server)


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_rset_after_a_stopped_transaction_ends_the_session(pipelining: bool) -> None:
    session, transport, server = opened({b"RSET": RSET_REFUSED})
    result = transport.run(
        session.sendmail("a@example.org", RCPTS, MESSAGE, stop_after="rcpt", pipelining=pipelining)
    )
    assert result.delivered == () and b"RSET" in server.lines
    assert_not_reused(session, transport, server)


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_rset_in_send_many_hides_no_delivery_and_ends_the_batch(
    pipelining: bool,
) -> None:
    """Message 0's DATA refused (the transaction may be open: RSET before message 1's
    MAIL, RFC 5321 §4.1.1.5), that RSET refused: the messages already sent keep their
    outcomes (a delivery is a ``TransactionResult``), none is sent after the refusal
    was read, and the session ends (the rest of the iterable unread, as when a session
    ends during a batch)."""
    ehlo = EHLO_PIPELINING if pipelining else EHLO_PLAIN
    session, transport, server = opened(
        {b"EHLO": [ehlo], b"DATA": [b"554 5.3.0 no\r\n"], b"RSET": RSET_REFUSED}
    )
    messages = [("a@example.org", RCPTS, MESSAGE + bytes([65 + i])) for i in range(6)]
    outcomes = transport.run(session.send_many(messages, pipelining=pipelining))
    assert 1 <= len(outcomes) <= 6  # the rest of the iterable is not read
    assert isinstance(outcomes[0], SMTPReplyError) and outcomes[0].code == 554
    delivered = [o for o in outcomes if isinstance(o, TransactionResult)]
    assert len(delivered) == len(server.messages)  # no delivery hidden
    assert all(isinstance(o, (TransactionResult, SMTPError)) for o in outcomes)
    mails_after_rset = server.lines[server.lines.index(b"RSET") :]
    assert len(delivered) == sum(line.startswith(b"MAIL") for line in mails_after_rset)
    assert len(delivered) < 5  # the batch stopped
    assert_not_reused(session, transport, server)


def test_a_refused_public_rset_ends_the_session() -> None:
    session, transport, server = opened({b"RSET": RSET_REFUSED})
    with pytest.raises(SMTPReplyError, match="RSET refused: 500"):
        transport.run(session.rset())
    assert_not_reused(session, transport, server)
