"""A whole ``sendmail`` and one stopped at DATA (``stop_after="data"``) open the
transaction with the same code (``TransactionSteps._open_transaction``), so whatever the
server answers to MAIL, the RCPTs and DATA — with or without PIPELINING, any number of
recipients, 421 anywhere — they write the same commands up to DATA and end alike before
the 354: the same exception type (a refused MAIL, every RCPT refused, DATA refused, a
421), or both reach the 354, after which the whole send goes on with the content and
the stopped one marks the session broken (the adapter closes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.session import Session
from smtpproto.exceptions import SMTPError, SMTPProtocolError, SMTPReplyError

EHLOS = [b"250-mx.example.org\r\n250 PIPELINING\r\n", b"250 mx.example.org\r\n"]
CHUNKING_EHLOS = [
    b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
    b"250-mx.example.org\r\n250 CHUNKING\r\n",
]
CODES = [250, 251, 252, 354, 421, 450, 452, 500, 503, 550, 554]

scripts = st.fixed_dictionaries(
    {
        verb: st.lists(st.sampled_from(CODES), max_size=4)
        for verb in (b"MAIL", b"RCPT", b"DATA", b"RSET")
    }
)


def send(
    ehlo: bytes, script: dict[bytes, list[int]], recipients: int, stop: bool
) -> tuple[object, list[bytes], bool]:
    """The outcome (a result's 354 reply code, or the exception type), the commands up
    to DATA, and whether the session is usable afterwards."""
    replies = {verb: [b"%d x\r\n" % code for code in codes] for verb, codes in script.items()}
    server = ScriptedServer({b"EHLO": [ehlo], **replies})
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = Transport(server)
    transport.eof_when_silent = True  # a reply the server never sends ends as EOF
    transport.run(session.open())
    rcpts = [f"r{index}@example.org" for index in range(recipients)]
    outcome: object
    try:
        result = transport.run(
            session.sendmail(
                "a@example.org",
                rcpts,
                b"Subject: hi\r\n\r\nhello\r\n",
                chunking=False,
                **({"stop_after": "data"} if stop else {}),
            )
        )
    except SMTPError as error:
        outcome = type(error).__name__
    else:
        assert isinstance(result, TransactionResult)
        outcome = "reached the 354"
    commands = [line.split(b" ", 1)[0].split(b":", 1)[0] for line in server.lines[1:]]
    if b"DATA" in commands:
        commands = commands[: commands.index(b"DATA") + 1]
    return outcome, commands, session.usable


@settings(max_examples=400, deadline=None)
@given(
    ehlo=st.sampled_from(EHLOS),
    script=scripts,
    recipients=st.integers(1, 3),
)
def test_a_send_stopped_at_data_opens_the_transaction_as_the_whole_send(
    ehlo: bytes, script: dict[bytes, list[int]], recipients: int
) -> None:
    whole = send(ehlo, script, recipients, stop=False)
    stopped = send(ehlo, script, recipients, stop=True)
    assert stopped[1] == whole[1]  # the same commands up to DATA
    if stopped[0] == "reached the 354":
        assert not stopped[2]  # only content may follow a 354: the adapter closes
        # The whole send went on; unless it retried a recipient refused with 452 in a
        # second transaction (RFC 5321 §4.5.3.1.10), which a later reply (421) can end.
        assert whole[0] != "reached the 354" or whole[2] or 452 in script[b"RCPT"][:recipients]
    else:
        assert stopped[0] == whole[0]


@pytest.mark.parametrize("ehlo", [*EHLOS, *CHUNKING_EHLOS])
@pytest.mark.parametrize("stage", [None, "mail", "rcpt", "data"])
@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("recipients", [1, 2, 3])
def test_a_421_to_mail_or_any_rcpt_ends_the_send(
    ehlo: bytes, stage: str | None, drop: bool, recipients: int
) -> None:
    """A 421 (RFC 5321 §3.8) to MAIL or to any RCPT — whole sends (DATA or BDAT) and
    sends stopped early, with or without ``drop``, pipelined or not — raises
    ``SMTPReplyError`` with that 421 and sends no further command. Before: without
    PIPELINING the next RCPT (or BDAT) was still sent (``SMTPProtocolError``: "cannot be
    sent in state CLOSING"), and a dropped stage raised ``ValueError`` from the result it
    built, MAIL's and the RCPTs' replies no longer paired."""
    for at in range(1 + recipients):  # the 421 answers MAIL (0) or the at-th RCPT
        if stage == "mail" and at:
            break
        server = ScriptedServer(
            {
                b"EHLO": [ehlo],
                b"MAIL": [b"421 closing\r\n" if at == 0 else b"250 ok\r\n"],
                b"RCPT": [b"250 ok\r\n"] * (at - 1) + [b"421 closing\r\n"] * (at > 0),
            }
        )
        session = Session(ClientConfig(), local_hostname="client.example")
        transport = Transport(server)
        transport.eof_when_silent = True
        transport.run(session.open())
        rcpts = [f"r{index}@example.org" for index in range(recipients)]
        stopping = {} if stage is None else {"stop_after": stage, "drop": drop}
        with pytest.raises(SMTPReplyError) as caught:
            transport.run(
                session.sendmail(
                    "a@example.org",
                    rcpts,
                    b"Subject: hi\r\n\r\nhello\r\n",
                    chunking=b"CHUNKING" in ehlo and stage != "data",  # DATA's 354
                    **stopping,  # type: ignore[arg-type]
                )
            )
        assert caught.value.reply.code == 421
        assert not session.usable
        commands = [line.split(b" ", 1)[0].split(b":", 1)[0] for line in server.lines]
        assert b"RSET" not in commands and b"QUIT" not in commands
        if b"PIPELINING" not in ehlo:  # EHLO, MAIL, the RCPTs up to the 421's: no more
            assert len(commands) == 2 + at


@pytest.mark.parametrize("ehlo", [*EHLOS, *CHUNKING_EHLOS])
@pytest.mark.parametrize("stage", [None, "mail", "rcpt", "data"])
@pytest.mark.parametrize("code", [334, 354])
def test_a_3yz_to_mail_is_a_protocol_error_with_or_without_pipelining(
    ehlo: bytes, stage: str | None, code: int
) -> None:
    """A 3yz to MAIL (only 2yz/4yz/5yz make sense, RFC 5321 §4.3.2) ends the send with
    ``SMTPProtocolError`` "unexpected 3yz reply to MAIL" whether or not the commands
    were pipelined, and one by one no RCPT follows. Before, without PIPELINING, the
    driver took it for an acceptance and tried the first RCPT in a session whose
    transaction the engine had ended ("Rcpt cannot be sent in state READY")."""
    server = ScriptedServer({b"EHLO": [ehlo], b"MAIL": [b"%d what\r\n" % code]})
    session = Session(ClientConfig(), local_hostname="client.example")
    transport = Transport(server)
    transport.eof_when_silent = True
    transport.run(session.open())
    stopping = {} if stage is None else {"stop_after": stage}
    with pytest.raises(SMTPProtocolError, match=f"unexpected {code} reply to MAIL"):
        transport.run(
            session.sendmail(
                "a@example.org",
                ["r0@example.org", "r1@example.org"],
                b"Subject: hi\r\n\r\nhello\r\n",
                chunking=b"CHUNKING" in ehlo and stage != "data",
                **stopping,  # type: ignore[arg-type]
            )
        )
    commands = [line.split(b" ", 1)[0].split(b":", 1)[0] for line in server.lines]
    if b"PIPELINING" not in ehlo:
        assert commands == [b"EHLO", b"MAIL"]
