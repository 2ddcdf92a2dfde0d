"""A transaction the drivers end with RSET, or whose content the server's last words
refuse, is labelled with the verb it used.

``MailDrivers._abort`` (no recipient accepted, a refused BDAT chunk) hands the result
to ``raise_for`` with a verb that names the failing step in ``SMTPReplyError.command``
and ``SMTPProtocolError`` messages: DATA for a DATA transaction, BDAT for a BDAT one
(RFC 3030 §2). The label is observed where it is used: the ``raise_for`` call.
``send_many``'s outcomes name the verb the same way.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers import mail_steps
from smtpproto.drivers.session import LAST_WORDS_TIMEOUT, Read, Session, Write
from smtpproto.exceptions import SMTPRecipientsRefused, SMTPReplyError

EHLO_PLAIN = b"250 mx.example.org\r\n"
EHLO_CHUNKING = b"250-mx.example.org\r\n250 CHUNKING\r\n"
MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"


def labels(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every verb ``raise_for`` is given; it still decides what to raise."""
    seen: list[str] = []
    real = mail_steps.raise_for

    def spy(result: TransactionResult, verb: str) -> None:
        seen.append(verb)
        real(result, verb)

    monkeypatch.setattr(mail_steps, "raise_for", spy)
    return seen


def opened(script: dict[bytes, list[bytes]]) -> tuple[Session, Transport]:
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = Transport(ScriptedServer(script))
    transport.run(session.open())
    return session, transport


@pytest.mark.parametrize(
    ("ehlo", "options", "verb"),
    [
        (EHLO_PLAIN, {}, "DATA"),  # lock-step DATA: RSET instead of DATA
        (EHLO_PLAIN, {"stop_after": "data"}, "DATA"),  # stopping at DATA, no one accepted
        (EHLO_CHUNKING, {}, "BDAT"),  # lock-step BDAT: RSET instead of the first chunk
    ],
)
def test_no_recipient_accepted_is_labelled_with_the_verb_in_use(
    monkeypatch: pytest.MonkeyPatch, ehlo: bytes, options: dict[str, Any], verb: str
) -> None:
    seen = labels(monkeypatch)
    session, transport = opened({b"EHLO": [ehlo], b"RCPT": [b"550 5.1.1 no\r\n"]})
    with pytest.raises(SMTPRecipientsRefused):
        transport.run(session.sendmail("a@x.org", ["b@x.org"], MESSAGE, **options))
    assert seen == [verb]
    assert transport.wire.endswith(b"RSET\r\n") and session.usable


def test_refused_bdat_chunk_is_labelled_bdat(  # lock-step: RSET after the first chunk
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = labels(monkeypatch)
    session, transport = opened({b"EHLO": [EHLO_CHUNKING], b"BDAT": [b"552 5.3.4 too big\r\n"]})
    with pytest.raises(SMTPReplyError) as info:
        transport.run(session.sendmail("a@x.org", ["b@x.org"], b"x\r\n" * 40, chunk_size=16))
    assert seen == ["BDAT"] and info.value.command == "BDAT"
    assert b"RSET\r\n" in transport.wire and session.usable


def test_send_many_labels_a_refused_bdat_last_bdat() -> None:
    """``send_many`` names the verb that carried the content, as ``sendmail`` does."""
    ehlo = b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    refusals = [b"250 ok\r\n", b"554 5.7.1 no\r\n", b"554 5.7.1 no\r\n"]
    session, transport = opened({b"EHLO": [ehlo], b"BDAT": refusals})
    messages = [(f"s{i}@x.org", [f"r{i}@x.org"], b"body %d\r\n" % i) for i in range(2)]
    outcomes = transport.run(session.send_many(messages))
    assert isinstance(outcomes[0], TransactionResult)
    assert isinstance(outcomes[1], SMTPReplyError) and outcomes[1].command == "BDAT"
    with pytest.raises(SMTPReplyError) as info:  # sendmail, the same refusal
        transport.run(session.sendmail("s@x.org", ["r@x.org"], b"body\r\n"))
    assert info.value.command == "BDAT"


@pytest.mark.parametrize(
    ("ehlo", "final", "verb"),
    [(EHLO_PLAIN, b".", "DATA"), (EHLO_CHUNKING, b"BDAT", "BDAT")],
    ids=["data", "bdat"],
)
def test_last_words_refusing_the_content_name_its_verb(
    ehlo: bytes, final: bytes, verb: str
) -> None:
    """A write fails while the final reply is due, and the server's last words refuse
    the content: the refusal names DATA or BDAT, whichever carried it."""
    session, transport = opened({b"EHLO": [ehlo], final: [b""]})  # the final reply is late
    server = transport.server
    driver = session.sendmail("a@x.org", ["b@x.org"], MESSAGE)
    request = next(driver)
    while not (isinstance(request, Read) and session.conn.final_reply_pending):
        answer = None
        if isinstance(request, Write):
            transport.pending += server.receive(request.data)
        else:
            answer, transport.pending = transport.pending, b""
        request = driver.send(answer)
    assert driver.throw(BrokenPipeError("pipe")) == Read(LAST_WORDS_TIMEOUT)
    with pytest.raises(SMTPReplyError) as info:
        driver.send(b"554 5.6.0 rejected\r\n")
    assert info.value.code == 554 and info.value.command == verb
