"""A BDAT chunk in the middle of a message refused by the built-in server (a rule at
the ``bdat`` stage), SMTP and LMTP, against each adapter over 127.0.0.1: the chunk's
refusal is the outcome, nothing is delivered, and the session is reset with RSET (RFC
3030 §2) -- in LMTP, where the LAST chunk pipelined behind the refused one may get one
reply or one per recipient (RFC 2033 §4.2), it is not reused
(tests/test_bdat_middle_chunk_refused.py has the drivers' cases)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpproto.drivers.support import DEFAULT_CHUNK_SIZE
from smtpproto.exceptions import SMTPReplyError
from smtpproto.testing import Accept, Respond, Rule, run_server

from .facade import SyncClient

Make = Callable[..., SyncClient]
TIMEOUT = 10.0
LINE = b"a line of the message, long enough\r\n"
BODY = LINE * (3 * DEFAULT_CHUNK_SIZE // len(LINE))  # three chunks and a bit
RCPTS = ["b@y.test", "c@y.test"]


@pytest.mark.parametrize("many", [False, True], ids=["sendmail", "send_many"])
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_a_refused_middle_chunk_is_the_outcome(make_client: Make, lmtp: bool, many: bool) -> None:
    rules = [
        Rule(stage="bdat", times=1, action=Accept()),  # the first chunk
        Rule(stage="bdat", times=1, action=Respond(552, "Too big", "5.3.4")),  # the second
    ]
    with run_server(starttls=False, lmtp=lmtp, rules=rules) as server:
        client = make_client(
            host=server.host, port=server.port, tls="none", timeout=TIMEOUT, lmtp=lmtp
        )
        with client as c:
            if many:
                (outcome,) = c.send_many([("a@x.test", RCPTS, BODY)])
                assert isinstance(outcome, SMTPReplyError)
                error = outcome
            else:
                with pytest.raises(SMTPReplyError) as caught:
                    c.sendmail("a@x.test", RCPTS, BODY)
                error = caught.value
            assert (error.command, error.code) == ("BDAT", 552)
            if lmtp:  # the LAST chunk went out pipelined: the session is not reused
                assert not c.session.usable
            else:
                assert c.session.usable
                assert c.sendmail("a@x.test", RCPTS, b"next\r\n").delivered == tuple(RCPTS)
        delivered = server.wait_for_messages(0 if lmtp else 1, TIMEOUT)
        assert [m.data for m in delivered] == ([] if lmtp else [b"next\r\n"])
