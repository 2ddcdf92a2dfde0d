"""SIZE= declares the octets the server will count (RFC 1870 §3): content with bare CR
or LF, or without a final CRLF, goes out with CRLF line ends (RFC 5321 §2.3.8), so its
SIZE= is that length, not the caller's raw length. Declaring the raw length let a
message the server's limit refuses pass MAIL and be refused (552) only after the whole
transfer; now it is refused before MAIL (§6.1), on every adapter, over DATA and BDAT.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_datacodec import NORMALIZER_TWINS
from smtpproto import MailOptions
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.support import canonical_size
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
LIMIT = 300
#: 288 octets as given, 313 with CRLF line ends (23 bare LFs, a final CRLF): over the
#: limit only when counted right.
BARE_LF = b"Subject: s\n\n" + b"line of text\n" * 21 + b"end"
#: 296 octets with CRLF line ends (one bare CR, no final line end): within the limit.
FITS = b"Subject: f\r\n\r" + b"x" * 270 + b"\r\ntail"


def test_the_fixed_contents_are_what_they_say() -> None:
    assert len(BARE_LF) <= LIMIT < canonical_size(BARE_LF) == 288 + 23 + 2
    assert canonical_size(FITS) == len(FITS) + 3 <= LIMIT


@pytest.mark.parametrize("normalizer", NORMALIZER_TWINS)
@given(
    content=st.binary(max_size=200)
    | st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"."])).map(b"".join)
)
def test_canonical_size_is_the_normalised_length(normalizer: type, content: bytes) -> None:
    ends = normalizer()
    wire = ends.feed(content) + ends.finish()
    for form in (content, bytearray(content), memoryview(content)):
        assert canonical_size(form) == len(wire)


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_sendmail_refuses_before_mail_what_only_the_normalised_size_exceeds(
    make_client: MakeClient, chunking: bool | None
) -> None:
    lines: list[str] = []
    with run_server(starttls=False, max_message_size=LIMIT, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            with pytest.raises(SMTPProtocolError, match="SIZE"):
                client.sendmail("big@x.test", ["r@x.test"], BARE_LF, chunking=chunking)
            assert client.noop().code == 250  # nothing half-sent: the session is usable
            result = client.sendmail("fit@x.test", ["r@x.test"], FITS, chunking=chunking)
            assert result.delivered == ("r@x.test",)
        (stored,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert len(stored.data) == canonical_size(FITS)
    assert not [line for line in lines if "big@x.test" in line]
    assert [line for line in lines if f"fit@x.test> SIZE={canonical_size(FITS)}" in line]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_send_many_gives_the_oversized_message_its_outcome(
    make_client: MakeClient, chunking: bool | None
) -> None:
    items = [("s@x.test", ["r@x.test"], content) for content in (FITS, BARE_LF, FITS, FITS)]
    with run_server(starttls=False, max_message_size=LIMIT) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            outcomes = client.send_many(items, chunking=chunking)
            assert client.noop().code == 250
        stored = server.wait_for_messages(3, timeout=TIMEOUT)
    assert isinstance(outcomes[1], SMTPProtocolError) and "SIZE" in str(outcomes[1])
    assert all(isinstance(outcomes[i], TransactionResult) for i in (0, 2, 3))
    assert len(stored) == 3


def test_binarymime_content_is_declared_as_is(make_client: MakeClient) -> None:
    # BODY=BINARYMIME content goes over BDAT unchanged (RFC 3030 §3): its raw length.
    lines: list[str] = []
    with run_server(starttls=False, max_message_size=LIMIT, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            options = MailOptions(body="BINARYMIME")
            client.sendmail("bin@x.test", ["r@x.test"], BARE_LF, options=options)
        (stored,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert stored.data == BARE_LF
    assert [line for line in lines if f"SIZE={len(BARE_LF)} BODY=BINARYMIME" in line]
