"""After streamed BDAT content is refused mid-message, the next transaction gets its
own result.

A chunk the DATA rules refuse, read after earlier chunks went out, ends its
transaction with RSET (RFC 3030 §2, RFC 5321 §4.1.1.5); the engine answers the RSET
with its ``CommandReply`` and then the reset transaction's ``TransactionResult``. That
result belongs to the refused message: the next ``sendmail`` must return its own
(its sender, its 250 to BDAT LAST), and ``send_many`` must give every message its own
outcome, whatever the senders. Every adapter, against the built-in server on 127.0.0.1
(CHUNKING, PIPELINING).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient
from .sources import Unseekable

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
GOOD = b"Subject: fine\r\n\r\nbody\r\n"
#: Past the drivers' 64 KiB chunk, so the NUL is read after chunks went out.
LATE_NUL = b"Subject: bad\r\n\r\n" + b"ok\r\n" * 17000 + b"a\0b\r\n"


def second_chunk_nul() -> Iterator[bytes]:
    yield b"Subject: bad\r\n\r\n"
    yield b"a\0b\r\n"


def its_own(outcome: object, sender: str) -> bool:
    return (
        isinstance(outcome, TransactionResult)
        and outcome.sender == sender
        and outcome.data_reply is not None
        and outcome.data_reply.code == 250
    )


def test_sendmail_after_a_refused_stream_returns_its_own_result(make_client: MakeClient) -> None:
    with run_server(starttls=False) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            for bad in (Unseekable(LATE_NUL), second_chunk_nul()):
                with pytest.raises(SMTPProtocolError, match="ended with RSET"):
                    client.sendmail("bad@x.test", ["r@x.test"], bad)
                for sender in ("one@x.test", "two@x.test"):
                    result = client.sendmail(sender, ["r@x.test"], GOOD)
                    assert its_own(result, sender), result
        stored = server.wait_for_messages(4, timeout=TIMEOUT)
    assert [m.sender for m in stored] == ["one@x.test", "two@x.test"] * 2


@pytest.mark.parametrize("same_sender", [True, False], ids=["one-sender", "distinct"])
def test_send_many_gives_each_message_its_own_outcome_after_a_refused_stream(
    make_client: MakeClient, same_sender: bool
) -> None:
    """Good messages (one chunk: BDAT LAST groups) around streamed ones refused
    mid-message (lock-step); before the fix the distinct senders' batch died on an
    assertion, and with one sender a refused message's result was taken for the next
    one's."""
    contents: list[Any] = [GOOD, Unseekable(LATE_NUL), GOOD, second_chunk_nul(), GOOD, GOOD]
    senders = ["s@x.test" if same_sender else f"s{index}@x.test" for index in range(len(contents))]
    items = [
        (sender, ["r@x.test"], content) for sender, content in zip(senders, contents, strict=True)
    ]
    with run_server(starttls=False) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            outcomes = client.send_many(items, chunking=True)
            assert client.session.usable and client.noop().code == 250
        stored = server.wait_for_messages(4, timeout=TIMEOUT)
    for index in (1, 3):
        outcome = outcomes[index]
        assert isinstance(outcome, SMTPProtocolError) and "NUL octet" in str(outcome)
    for index in (0, 2, 4, 5):
        assert its_own(outcomes[index], senders[index]), (index, outcomes[index])
    assert [m.sender for m in stored] == [senders[i] for i in (0, 2, 4, 5)]
