"""A BDAT chunk in the middle of a message refused (RFC 3030 §2), in SMTP and LMTP
(RFC 2033 §4.2), with and without PIPELINING, by ``sendmail`` (``send_message`` runs
the same transaction drivers) and ``send_many`` (which sends a message of several
chunks with ``sendmail``'s drivers).

RFC 3030 §2: after a refused chunk the client sends no more; chunks already in the
pipeline are discarded by the server and the state is indeterminate, so RSET ends the
transaction. Without PIPELINING the LAST chunk is never sent: RSET, the session usable.
With it the LAST chunk may already be out: its reply is read, then RSET (SMTP, the
session usable); in LMTP a discarded LAST may get one reply or one per recipient, so
the session is not reused. Either way the chunk's refusal is what the caller gets.

Against ``engine_helpers.ScriptedServer``; the drivers run the same in every adapter.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import ScriptedServer
from session_helpers import Transport, opened
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.session import Session
from smtpproto.exceptions import SMTPProtocolError, SMTPReplyError

EHLO = {
    True: b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
    False: b"250-mx.example.org\r\n250 CHUNKING\r\n",
}
RCPTS = ["b@example.org", "c@example.org"]
BODY = "".join(f"line {i} of the message\r\n" for i in range(12))
CHUNK = 64  # several chunks, fewer than the pipelining window (BDAT_WINDOW)
REFUSED = b"552 5.3.4 too big\r\n"
DISCARDED = b"554 5.5.0 discarded after a failed chunk\r\n"


def started(lmtp: bool, pipelining: bool) -> tuple[Session, Transport, ScriptedServer]:
    hello = b"LHLO" if lmtp else b"EHLO"
    chunks = [b"250 2.0.0 chunk ok\r\n", REFUSED] + [DISCARDED] * 10
    return opened({hello: [EHLO[pipelining]], b"BDAT": chunks}, lmtp=lmtp)


def send(how: str, session: Session, transport: Transport) -> Any:
    if how == "sendmail":
        return transport.run(
            session.sendmail("a@example.org", RCPTS, BODY.encode(), chunk_size=CHUNK)
        )
    (outcome,) = transport.run(
        session.send_many([("a@example.org", RCPTS, BODY.encode())], chunk_size=CHUNK)
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@pytest.mark.parametrize("how", ["sendmail", "send_many"])
@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("lmtp", [False, True])
def test_a_refused_middle_chunk_is_the_outcome_and_the_transaction_is_reset(
    lmtp: bool, pipelining: bool, how: str
) -> None:
    session, transport, server = started(lmtp, pipelining)
    with pytest.raises(SMTPReplyError, match="BDAT refused: 552") as caught:
        send(how, session, transport)
    assert caught.value.command == "BDAT"
    bdats = [line for line in server.lines if line.startswith(b"BDAT")]
    if not pipelining:  # RFC 3030 §2: no chunk after the refused one
        assert len(bdats) == 2 and not bdats[-1].endswith(b"LAST")
    if lmtp and pipelining:
        # The LAST chunk went out before the refusal was read: its replies cannot be
        # matched any more, so the session ends (the adapter closes it).
        assert bdats[-1].endswith(b"LAST")
        assert not session.usable
        with pytest.raises(SMTPProtocolError, match="broken"):
            transport.run(session.noop())
        return
    assert server.lines[-1] == b"RSET"  # the indeterminate state ended (RFC 3030 §2)
    assert session.usable
    server.script[b"BDAT"].clear()  # the discarded chunks' replies not used
    result = transport.run(session.sendmail("a@example.org", ["b@example.org"], b"next\r\n"))
    assert isinstance(result, TransactionResult) and result.delivered == ("b@example.org",)
    assert server.lines[-1] == b"BDAT 6 LAST"  # (ScriptedServer keeps chunks over RSET)
