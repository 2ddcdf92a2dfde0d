"""Content the DATA encoder would refuse after the 354 is refused before MAIL.

RFC 5321 §4.5.2 and §4.5.3.1.6 (no NUL, lines at most 1000 octets with CRLF), RFC 6152
(8-bit octets only with BODY=8BITMIME), RFC 3030 §3 (BDAT content other than
BINARYMIME keeps those rules). Content held whole -- bytes, bytearray, memoryview,
str, an email message -- is checked by the engine's own encoder (``DataEncoder.refusal``)
before MAIL: the error is the encoder's ``SMTPProtocolError``, nothing of the message
reaches the server and the same connection sends the next one; in ``send_many`` that
message gets the error as its outcome and the batch goes on (the fast lane included).
Streamed content (a file that cannot seek, an iterable) is read as it is sent: a
refusal after the 354 breaks the session, and the end of data is never sent (no
truncated delivery); a seekable file is read before MAIL and refused there
(``test_seekable_file_checked.py``).
Every adapter, against real servers on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest

from interop.peers import SinkPeer
from interop.peers_exim import EximPeer
from smtpproto import ClientConfig, MailOptions
from smtpproto.client_engine.events import TransactionResult
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .exim_client import exim_client
from .facade import SyncClient
from .sources import Unseekable

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
GOOD = b"Subject: good\r\n\r\nfine\r\n"
HEAD = b"Subject: bad\r\n\r\n"

#: (what it breaks, content, the refusal's words): every shape of the class.
BAD: list[tuple[str, bytes, str]] = [
    ("NUL first", b"\0" + GOOD, "NUL octet at content offset 0"),
    ("NUL in the body", HEAD + b"a\0b\r\n", "NUL octet"),
    ("NUL last", GOOD + b"\0", "NUL octet"),
    ("999-octet first line", b"x" * 999 + b"\r\n", "longer than 998"),
    ("999-octet last line, no CRLF", HEAD + b"y" * 999, "longer than 998"),
    ("999 octets after a bare LF", HEAD + b"a\n" + b"z" * 999 + b"\r\n", "longer than 998"),
    ("999 octets after a bare CR", HEAD + b"a\r" + b"z" * 999 + b"\r\n", "longer than 998"),
    ("one long line of 5000", HEAD + b"w" * 5000 + b"\r\n", "longer than 998"),
]
EIGHT_BIT = HEAD + b"caf\xc3\xa9\r\n"
#: A 998-octet line is the longest allowed (1000 with its CRLF): sent.
LONGEST = HEAD + b"k" * 998 + b"\r\n" + b"m" * 998


def forms(content: bytes) -> list[Any]:
    """Every content type held whole that the drivers take."""
    found: list[Any] = [content, bytearray(content), memoryview(content)]
    if content.isascii() or b"\xc3\xa9" in content:  # valid UTF-8 here: a str too
        found.append(content.decode("utf-8"))
    return found


def refused(client: SyncClient, send: Callable[[], object], words: str) -> None:
    with pytest.raises(SMTPProtocolError, match=words) as info:
        send()
    assert not info.value.remote
    assert "Refused before MAIL" in str(info.value)
    assert "allow_8bit" not in str(info.value) and "max_line_length" not in str(info.value)
    assert client.session.usable


def test_sendmail_refuses_bad_content_before_mail(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    """smtp-sink without 8BITMIME (DATA, PIPELINING): every case and content type is
    refused on one connection, which then delivers the good messages only."""
    sink = smtp_sink_factory(eightbitmime=False)
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        cases = [*BAD, ("8-bit without 8BITMIME", EIGHT_BIT, "8-bit octet 0xc3")]
        for _, content, words in cases:
            for form in forms(content):
                refused(
                    client,
                    lambda form=form: client.sendmail("bad@x.test", ["r@x.test"], form),
                    words,
                )
        assert client.noop().code == 250
        client.sendmail("good@x.test", ["r@x.test"], GOOD)
        client.sendmail("long@x.test", ["r@x.test"], LONGEST)
    delivered = sink.wait_for_messages(2)
    assert [m.mail_from for m in delivered] == ["good@x.test", "long@x.test"]
    assert delivered[1].content == (LONGEST + b"\r\n").replace(b"\r\n", b"\n")


def test_send_message_refuses_bad_content_before_mail(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., Any]
) -> None:
    """An ``email.message.Message`` whose serialised body breaks the rules (a NUL, a
    line over 998 octets, which ``email`` does not fold in a body); aiosmtpd: no
    PIPELINING, so the lock-step path."""
    peer = aiosmtpd_factory()
    with make_client(host=peer.host, port=peer.port, timeout=TIMEOUT) as client:
        for body, words in (("a\0b\n", "NUL"), ("v" * 1200 + "\n", "longer than 998")):
            message = Message()
            message["From"] = "bad@x.test"
            message["To"] = "r@x.test"
            message.set_payload(body)
            refused(client, lambda message=message: client.send_message(message), words)
        message = Message()
        message["From"] = "good@x.test"
        message["To"] = "r@x.test"
        message.set_payload("fine\n")
        assert client.send_message(message).delivered == ("r@x.test",)
    [stored] = peer.wait_for_messages(1)
    assert stored.mail_from == "good@x.test"


def batch(senders: Callable[[int], str]) -> tuple[list[tuple[str, list[str], Any]], list[int]]:
    """Good and bad messages interleaved (every bad shape and type); the good indexes."""
    items: list[tuple[str, list[str], Any]] = []
    good: list[int] = []
    for _, content, _ in BAD:
        for form in forms(content):
            good.append(len(items))
            items.append((senders(len(items)), ["r@x.test"], GOOD))
            items.append((senders(len(items)), ["r@x.test"], form))
    good.append(len(items))
    items.append((senders(len(items)), ["r@x.test"], GOOD))
    return items, good


@pytest.mark.parametrize("same_envelope", [True, False], ids=["fast-lane", "general"])
def test_send_many_gives_bad_content_its_outcome_and_goes_on(
    make_client: MakeClient, smtp_sink: SinkPeer, same_envelope: bool
) -> None:
    """PIPELINING + DATA: the repeated envelope takes the fast lane, distinct senders
    the general path; either way a bad message is refused alone, before its MAIL."""
    items, good = batch(lambda i: "s@x.test" if same_envelope else f"s{i}@x.test")
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        outcomes = client.send_many(items)
        assert client.noop().code == 250
    assert len(outcomes) == len(items)
    for index, outcome in enumerate(outcomes):
        if index in good:
            assert isinstance(outcome, TransactionResult), (index, outcome)
        else:
            assert isinstance(outcome, SMTPProtocolError), (index, outcome)
            assert "Refused before MAIL" in str(outcome)
    delivered = smtp_sink.wait_for_messages(len(good))
    assert len(delivered) == len(good)
    assert all(m.content == GOOD.replace(b"\r\n", b"\n") for m in delivered)
    if not same_envelope:
        assert [m.mail_from for m in delivered] == [f"s{i}@x.test" for i in good]


def test_bdat_content_keeps_the_rules_before_mail(
    make_client: MakeClient, exim_server: EximPeer
) -> None:
    """Exim (CHUNKING, no BINARYMIME): BDAT content is held to the DATA rules (RFC 3030
    §3), refused before MAIL, in sendmail and in send_many's BDAT windows."""
    with exim_client(make_client, exim_server) as client:
        caps = client.capabilities
        assert caps is not None and caps.chunking and not caps.has("BINARYMIME")
        for _, content, words in BAD[:4]:
            refused(
                client,
                lambda content=content: client.sendmail("bad@x.test", ["r@exim.test"], content),
                words,
            )
        items = [
            ("s0@x.test", ["r0@exim.test"], GOOD),
            ("bad@x.test", ["r1@exim.test"], b"a\0b\r\n"),
            ("s2@x.test", ["r2@exim.test"], GOOD),
        ]
        outcomes = client.send_many(items, max_in_flight=4)
        assert client.noop().code == 250
    assert isinstance(outcomes[0], TransactionResult) and isinstance(outcomes[2], TransactionResult)
    assert isinstance(outcomes[1], SMTPProtocolError)
    stored = exim_server.wait_for_messages(2)
    assert sorted(m.mail_from for m in stored) == ["s0@x.test", "s2@x.test"]


def test_builtin_server_sees_no_mail_for_refused_content(make_client: MakeClient) -> None:
    """The built-in server's transcript: no MAIL of a refused message ever arrives,
    over BDAT (CHUNKING) and DATA; BODY=BINARYMIME content is not held to the rules."""
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            for chunking in (None, False):
                for _, content, words in BAD:
                    refused(
                        client,
                        lambda content=content, chunking=chunking: client.sendmail(
                            "bad@x.test", ["r@x.test"], content, chunking=chunking
                        ),
                        words,
                    )
            binary = b"\0" + b"b" * 1500 + b"\xff"
            result = client.sendmail(
                "bin@x.test", ["r@x.test"], binary, options=MailOptions(body="BINARYMIME")
            )
            assert result.delivered == ("r@x.test",)
            client.sendmail("good@x.test", ["r@x.test"], GOOD)
        stored = server.wait_for_messages(2, timeout=TIMEOUT)
    assert [m.data for m in stored] == [binary, GOOD]
    assert not [line for line in lines if "bad@x.test" in line]


def test_relaxed_config_sends_what_it_allows(make_client: MakeClient, smtp_sink: SinkPeer) -> None:
    """``ClientConfig(allow_nul=True, enforce_line_length=False)``: the encoder and the
    check before MAIL relax together, so the message goes out."""
    config = ClientConfig(allow_nul=True, enforce_line_length=False)
    content = HEAD + b"a\0b\r\n" + b"q" * 3000 + b"\r\n"
    with make_client(
        host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT, config=config
    ) as client:
        assert client.sendmail("s@x.test", ["r@x.test"], content).delivered == ("r@x.test",)
    [stored] = smtp_sink.wait_for_messages(1)
    assert stored.content == content.replace(b"\r\n", b"\n")


def chunks(content: bytes) -> Iterator[bytes]:
    yield content[:10]
    yield content[10:]


@pytest.mark.parametrize("make_source", [Unseekable, chunks], ids=["pipe", "iterable"])
@pytest.mark.parametrize(("content", "words"), [(c, w) for _, c, w in BAD[1:3]])
def test_streamed_bad_content_breaks_the_session_and_delivers_nothing(
    make_client: MakeClient,
    smtp_sink: SinkPeer,
    make_source: Callable[[bytes], Any],
    content: bytes,
    words: str,
) -> None:
    """Streamed content is read as it is sent: a refusal comes after the 354, when
    only content may follow; the end of data is never sent, so the server discards
    the transaction (RFC 5321 §3.8) and the session is closed."""
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPProtocolError, match=words):
            client.sendmail("bad@x.test", ["r@x.test"], make_source(content))
        assert not client.session.usable
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        client.sendmail("good@x.test", ["r@x.test"], GOOD)
    [stored] = smtp_sink.wait_for_messages(1)
    assert stored.mail_from == "good@x.test"


#: Past the drivers' 64 KiB chunk: a file's bad octet is read after chunks went out.
PADDING = b"ok\r\n" * 17000


def pieces(content: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (HEAD + PADDING + b"a\0b\r\n", "NUL octet"),
        (HEAD + PADDING + b"L" * 999 + b"\r\n", "longer than 998"),  # across chunks
        (HEAD + PADDING + b"caf\xc3\xa9\r\n", "8-bit octet"),
    ],
)
@pytest.mark.parametrize(
    "make_source", [Unseekable, lambda c: pieces(c, 5000)], ids=["pipe", "iter"]
)
def test_streamed_bdat_content_refused_mid_stream_is_reset(
    make_client: MakeClient,
    content: bytes,
    words: str,
    make_source: Callable[[bytes], Any],
) -> None:
    """BDAT can end a transaction mid-message: a chunk read later that breaks the
    rules is never sent, RSET ends the transaction (RFC 3030 §2, RFC 5321 §4.1.1.5),
    nothing is delivered and the session is usable. The built-in server, CHUNKING
    without 8BITMIME for the 8-bit case (``mask_extensions``)."""
    lines: list[str] = []
    config = ClientConfig(mask_extensions=("8BITMIME", "BINARYMIME"))
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(
            host=server.host, port=server.port, tls="none", timeout=TIMEOUT, config=config
        ) as client:
            with pytest.raises(SMTPProtocolError, match=words) as info:
                client.sendmail("bad@x.test", ["r@x.test"], make_source(content))
            assert "ended with RSET" in str(info.value) and not info.value.remote
            assert client.session.usable and client.noop().code == 250
            client.sendmail("good@x.test", ["r@x.test"], GOOD)
        stored = server.wait_for_messages(1, timeout=TIMEOUT)
    assert [m.data for m in stored] == [GOOD]
    assert [line for line in lines if line.startswith("C: BDAT")]  # it did stream
    assert any(line.startswith("C: RSET") for line in lines)


def test_streamed_bdat_content_refused_in_its_first_chunk_sends_nothing(
    make_client: MakeClient,
) -> None:
    lines: list[str] = []
    with (
        run_server(starttls=False, transcript=lines.append) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client,
    ):
        with pytest.raises(SMTPProtocolError, match="Refused before MAIL"):
            client.sendmail("bad@x.test", ["r@x.test"], iter([b"a\0b\r\n", GOOD]))
        assert client.session.usable and client.noop().code == 250
    assert not [line for line in lines if "bad@x.test" in line]


#: (content, the words of its refusal): each names what the caller sets, and the 8-bit
#: one the RFCs' rule (RFC 6152; RFC 6531 §3.6: SMTPUTF8 does not replace 8BITMIME).
STREAMED_TEXTS = [
    (HEAD + PADDING + b"a\0b\r\n", ("NUL octet", "ClientConfig(allow_nul=True)")),
    (
        HEAD + PADDING + b"L" * 999 + b"\r\n",
        ("longer than 998", "ClientConfig(enforce_line_length=False)"),
    ),
    (
        HEAD + PADDING + b"caf\xc3\xa9\r\n",
        ("8-bit octet 0xc3", "BODY=8BITMIME", "SMTPUTF8 does not declare it, RFC 6531 §3.6"),
    ),
]


@pytest.mark.parametrize("chunking", [False, None], ids=["data", "bdat"])
@pytest.mark.parametrize(("content", "words"), STREAMED_TEXTS)
def test_streamed_refusal_names_what_the_caller_sets(
    make_client: MakeClient, chunking: bool | None, content: bytes, words: tuple[str, ...]
) -> None:
    """Content refused mid-stream (after DATA's 354, or between BDAT chunks), from a
    server offering SMTPUTF8 but not 8BITMIME: the error names the ClientConfig field
    or MAIL parameter that allows the content, never the encoder's own keywords, and
    never SMTPUTF8 as enough for 8-bit content."""
    config = ClientConfig(mask_extensions=("8BITMIME", "BINARYMIME"))
    with run_server(starttls=False) as server:
        with make_client(
            host=server.host, port=server.port, tls="none", timeout=TIMEOUT, config=config
        ) as client:
            caps = client.capabilities
            assert caps is not None and caps.smtputf8 and not caps.eightbitmime
            with pytest.raises(SMTPProtocolError) as info:
                client.sendmail("s@x.test", ["r@x.test"], pieces(content, 5000), chunking=chunking)
        assert server.wait_for_messages(0, timeout=TIMEOUT) == []
    text = str(info.value)
    assert not info.value.remote
    for word in words:
        assert word in text, (word, text)
    for wrong in ("pass ", "max_line_length", "allow_8bit", "or SMTPUTF8"):
        assert wrong not in text, (wrong, text)
