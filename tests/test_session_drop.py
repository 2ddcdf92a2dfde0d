"""``sendmail(stop_after="mail"|"rcpt", drop=True)``: the transaction stops after the
stage's replies with nothing more sent (no RSET, no QUIT) and the session unusable, so
the adapter closes the connection (swaks' ``--drop-after``; RFC 5321 §3.8)."""

from __future__ import annotations

from typing import Any

import pytest

from engine_helpers import ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig
from smtpproto.drivers.session import Session
from smtpproto.exceptions import SMTPProtocolError, SMTPRecipientsRefused, SMTPReplyError
from smtpproto.wire.errors import LocalProtocolError

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"
RECIPIENTS = ["b@example.org", "c@example.org"]


def opened(script: dict[bytes, list[bytes]] | None = None) -> tuple[Session, Transport, Any]:
    server = ScriptedServer(script)
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = Transport(server)
    transport.run(session.open())
    return session, transport, server


def verbs(server: ScriptedServer) -> list[bytes]:
    return [line.split(b" ", 1)[0].split(b":", 1)[0] for line in server.lines][1:]


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize(
    ("stage", "sent"), [("mail", [b"MAIL"]), ("rcpt", [b"MAIL", b"RCPT", b"RCPT"])]
)
def test_drop_sends_nothing_after_the_stage(
    stage: Any, sent: list[bytes], pipelining: bool
) -> None:
    session, transport, server = opened()
    result = transport.run(
        session.sendmail(
            "a@example.org", RECIPIENTS, MESSAGE, stop_after=stage, pipelining=pipelining, drop=True
        )
    )
    assert verbs(server) == sent  # no RSET, no QUIT
    assert result.sender_reply is not None and result.sender_reply.code == 250
    assert [a for a, _ in result.recipients] == (RECIPIENTS if stage == "rcpt" else [])
    assert result.data_reply is None and result.delivered == () and server.messages == []
    assert not session.usable and not session.can_quit  # the adapter closes
    with pytest.raises(SMTPProtocolError, match="broken"):
        transport.run(session.noop())


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_drop_after_a_refused_sender_raises_and_still_closes(stage: Any, pipelining: bool) -> None:
    session, transport, server = opened({b"MAIL": [b"550 5.1.0 no\r\n"]})
    with pytest.raises(SMTPReplyError) as caught:
        transport.run(
            session.sendmail(
                "a@example.org",
                RECIPIENTS,
                MESSAGE,
                stop_after=stage,
                pipelining=pipelining,
                drop=True,
            )
        )
    assert caught.value.command == "MAIL" and caught.value.reply.code == 550
    assert b"RSET" not in verbs(server) and not session.usable and not session.can_quit


@pytest.mark.parametrize("pipelining", [True, False])
def test_drop_after_refused_recipients_raises_without_rset(pipelining: bool) -> None:
    refusal = b"550 5.1.1 unknown\r\n"
    session, transport, server = opened({b"RCPT": [refusal, refusal]})
    with pytest.raises(SMTPRecipientsRefused) as caught:
        transport.run(
            session.sendmail(
                "a@example.org",
                RECIPIENTS,
                MESSAGE,
                stop_after="rcpt",
                pipelining=pipelining,
                drop=True,
            )
        )
    assert [a for a, _ in caught.value.results] == RECIPIENTS
    assert verbs(server) == [b"MAIL", b"RCPT", b"RCPT"] and not session.usable


def test_drop_after_data_is_the_data_stop() -> None:
    session, transport, server = opened()
    result = transport.run(
        session.sendmail("a@example.org", RECIPIENTS, MESSAGE, stop_after="data", drop=True)
    )
    assert result.data_reply is not None and result.data_reply.code == 354
    assert verbs(server)[-1] == b"DATA" and server.content == b"" and not session.usable


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop": True}, "drop=True needs stop_after"),
        ({"drop": "yes", "stop_after": "rcpt"}, "drop must be True or False"),
        ({"drop": 1, "stop_after": "rcpt"}, "drop must be True or False"),
    ],
)
def test_drop_misuse_is_refused_before_anything_is_sent(
    kwargs: dict[str, Any], message: str
) -> None:
    session, _, server = opened()
    with pytest.raises(SMTPProtocolError, match=message) as caught:
        session.sendmail("a@example.org", RECIPIENTS, MESSAGE, **kwargs)
    assert isinstance(caught.value.error, LocalProtocolError) and not caught.value.remote
    assert verbs(server) == [] and session.usable


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("then", ["rcpt", "data"])
def test_a_stop_after_mail_whose_mail_is_refused_leaves_no_reply_for_the_next(
    pipelining: bool, then: Any
) -> None:
    """``stop_after="mail"`` with MAIL refused: the refusal raises, the session is
    usable, and every reply due was read (with PIPELINING the refused MAIL's result
    came before the RSET's reply, which was left for the next operation: the next
    stopped ``sendmail`` took it for its own MAIL's reply, a raw zip ``ValueError``
    or a wrong result)."""
    session, transport, server = opened({b"MAIL": [b"452 4.3.1 busy\r\n"]})
    with pytest.raises(SMTPReplyError, match="452"):
        transport.run(
            session.sendmail(
                "a@example.org", RECIPIENTS, MESSAGE, stop_after="mail", pipelining=pipelining
            )
        )
    assert session.usable and not session.conn.outstanding
    drop = then == "rcpt"
    result = transport.run(
        session.sendmail(
            "a@example.org", RECIPIENTS, MESSAGE, stop_after=then, drop=drop, pipelining=pipelining
        )
    )
    assert "2.1.0" in str(result.sender_reply)  # MAIL's reply, not the RSET's 2.0.0
    assert [(a, r.code) for a, r in result.recipients] == [(a, 250) for a in RECIPIENTS]
    assert verbs(server).count(b"MAIL") == 2


def test_a_refused_mail_stays_the_outcome_when_the_rset_after_it_fails() -> None:
    """The RSET after a refused MAIL (``stop_after="mail"``, PIPELINING) meets a closed
    connection: the MAIL's refusal is still what is raised, the session not reused."""
    session, transport, _server = opened({b"MAIL": [b"550 5.7.1 no\r\n"], b"RSET": [b""]})
    transport.eof_when_silent = True
    with pytest.raises(SMTPReplyError, match="MAIL refused: 550"):
        transport.run(session.sendmail("a@example.org", RECIPIENTS, MESSAGE, stop_after="mail"))
    assert not session.usable
