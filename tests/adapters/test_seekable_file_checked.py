"""A seekable binary file is read once before MAIL (``drivers.prescan``), then sent.

Its SIZE= counts what is sent: bare CR/LF as CRLF, a final CRLF added (RFC 1870 §3),
not its length on disk, so a file the server's limit refuses is refused at MAIL (RFC
1870 §6.1), not with 552 after the whole transfer. BODY=8BITMIME follows its octets
(RFC 6152). Content the DATA encoder would refuse after the 354 (a NUL, a line over 998
octets, 8-bit octets without 8BITMIME; BDAT too, RFC 3030 §3) is refused before MAIL,
the session usable and the file where it stood. A file that changes between that
reading and its sending is never delivered: the end of the content is not sent.
Every adapter, over DATA and BDAT, against the built-in server and smtp-sink on
127.0.0.1.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interop.peers import SinkPeer
from smtpproto import ClientConfig
from smtpproto.client_engine.events import TransactionResult
from smtpproto.drivers.support import canonical_size
from smtpproto.exceptions import SMTPProtocolError
from smtpproto.testing import run_server

from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
LIMIT = 300
#: 288 octets on disk, 313 sent (23 bare LFs become CRLF, a final CRLF): over LIMIT.
BARE_LF = b"Subject: s\n\n" + b"line of text\n" * 21 + b"end"
#: 296 octets sent: within LIMIT.
FITS = b"Subject: f\r\n\r" + b"x" * 270 + b"\r\ntail"
GOOD = b"Subject: good\r\n\r\nfine\r\n"
HEAD = b"Subject: bad\r\n\r\n"
#: More than the drivers' 64 KiB chunk: the bad octet is far into the file.
PADDING = b"ok\r\n" * 17000
BAD: list[tuple[bytes, str]] = [
    (HEAD + b"a\0b\r\n", "NUL octet at content offset 17"),
    (HEAD + PADDING + b"a\0b\r\n", "NUL octet"),
    (HEAD + PADDING + b"L" * 999 + b"\r\n", "longer than 998"),
    (HEAD + PADDING + b"caf\xc3\xa9\r\n", "8-bit octet 0xc3"),
]
NO_8BIT = ClientConfig(mask_extensions=("8BITMIME", "BINARYMIME"))


def on_disk(tmp_path: Path, content: bytes, name: str = "message.eml") -> Any:
    path = tmp_path / name
    path.write_bytes(content)
    return path.open("rb")


def mails(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("C: MAIL")]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_size_counts_the_file_as_sent(
    make_client: MakeClient, tmp_path: Path, chunking: bool | None
) -> None:
    lines: list[str] = []
    with run_server(starttls=False, max_message_size=LIMIT, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            with on_disk(tmp_path, BARE_LF) as big, pytest.raises(SMTPProtocolError, match="SIZE"):
                client.sendmail("big@x.test", ["r@x.test"], big, chunking=chunking)
            assert client.noop().code == 250  # refused at MAIL's check: nothing sent
            with on_disk(tmp_path, FITS, "fits.eml") as fits:
                fits.seek(0)
                result = client.sendmail("fit@x.test", ["r@x.test"], fits, chunking=chunking)
            assert result.delivered == ("r@x.test",)
        (stored,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert len(stored.data) == canonical_size(FITS)
    assert not [line for line in lines if "big@x.test" in line]
    assert [line for line in mails(lines) if f"fit@x.test> SIZE={canonical_size(FITS)}" in line]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
def test_body_follows_the_files_octets(
    make_client: MakeClient, tmp_path: Path, chunking: bool | None
) -> None:
    """An ASCII file goes without BODY=, an 8-bit one as BODY=8BITMIME, a file read
    from the middle from where it stands (its first octets are not sent)."""
    eight = HEAD + b"caf\xc3\xa9\r\n"
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            for name, content, skip in (("ascii", GOOD, 0), ("eight", eight, 0), ("mid", GOOD, 5)):
                with on_disk(tmp_path, b"x" * skip + content, f"{name}.eml") as file:
                    file.seek(skip)
                    client.sendmail(f"{name}@x.test", ["r@x.test"], file, chunking=chunking)
        stored = server.wait_for_messages(3, timeout=TIMEOUT)
    assert [m.data for m in stored] == [GOOD, eight, GOOD]
    sent = mails(lines)
    assert [("BODY=8BITMIME" in line) for line in sent] == [False, True, False]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
@pytest.mark.parametrize(("content", "words"), BAD)
def test_bad_file_is_refused_before_mail(
    make_client: MakeClient,
    tmp_path: Path,
    chunking: bool | None,
    content: bytes,
    words: str,
) -> None:
    """Refused before MAIL, as content held whole is: nothing reaches the server, the
    session sends the next message, and the file stands where it stood. The built-in
    server without 8BITMIME (``mask_extensions``) for the 8-bit case."""
    lines: list[str] = []
    with run_server(starttls=False, transcript=lines.append) as server:
        with make_client(
            host=server.host, port=server.port, tls="none", timeout=TIMEOUT, config=NO_8BIT
        ) as client:
            for source in (on_disk(tmp_path, content), io.BytesIO(content)):
                with source:
                    with pytest.raises(SMTPProtocolError, match=words) as info:
                        client.sendmail("bad@x.test", ["r@x.test"], source, chunking=chunking)
                    assert source.tell() == 0
                assert "Refused before MAIL" in str(info.value) and not info.value.remote
                assert client.session.usable
            client.sendmail("good@x.test", ["r@x.test"], io.BytesIO(GOOD), chunking=chunking)
        stored = server.wait_for_messages(1, timeout=TIMEOUT)
    assert [m.data for m in stored] == [GOOD]
    assert not [line for line in lines if "bad@x.test" in line]


def test_bad_file_to_smtp_sink(
    make_client: MakeClient, smtp_sink: SinkPeer, tmp_path: Path
) -> None:
    """Postfix smtp-sink (PIPELINING, DATA): the same refusals before MAIL."""
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        for content, words in BAD[:3]:
            with on_disk(tmp_path, content) as file, pytest.raises(SMTPProtocolError, match=words):
                client.sendmail("bad@x.test", ["r@x.test"], file)
        assert client.noop().code == 250
        with on_disk(tmp_path, GOOD, "good.eml") as file:
            client.sendmail("good@x.test", ["r@x.test"], file)
    [stored] = smtp_sink.wait_for_messages(1)
    assert stored.mail_from == "good@x.test"


class ChangingFile(io.BytesIO):
    """A file rewritten with ``then`` when it is sought back after its first reading
    (as another process might rewrite it between the check and the sending)."""

    def __init__(self, first: bytes, then: bytes) -> None:
        super().__init__(first)
        self.then: bytes | None = then

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.then is not None and super().tell() > 0:
            then, self.then = self.then, None
            super().seek(0)
            super().truncate()
            super().write(then)
        return super().seek(offset, whence)


#: (what the file becomes after the check, the words of the error).
CHANGES = [
    (GOOD.replace(b"fine", b"FINE"), "its content changed"),
    (GOOD + b"more\r\n", "grew past"),
    (GOOD[:-6], "octets, not"),
    (GOOD.replace(b"fine", b"f\0ne"), "changed"),
]


@pytest.mark.parametrize("chunking", [None, False], ids=["bdat", "data"])
@pytest.mark.parametrize("padded", [False, True], ids=["one-chunk", "many-chunks"])
@pytest.mark.parametrize(("then", "words"), CHANGES)
def test_a_file_changed_after_its_check_is_not_delivered(
    make_client: MakeClient, chunking: bool | None, padded: bool, then: bytes, words: str
) -> None:
    """The end of the content is never sent for a file that changed: with DATA the
    session is closed (only content may follow the 354); with BDAT, RSET ends the
    transaction, or it is found before MAIL, and the session is usable."""
    padding = PADDING if padded else b""
    first, then = padding + GOOD, padding + then
    with run_server(starttls=False) as server:
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            source = ChangingFile(first, then)
            with pytest.raises(SMTPProtocolError) as info:
                client.sendmail("s@x.test", ["r@x.test"], source, chunking=chunking)
            text = str(info.value)
            # A NUL written in may be found first by BDAT's check of each chunk.
            changed = "changed after it was checked" in text and words in text
            assert changed or (b"\0" in then and "NUL octet" in text), text
            assert not info.value.remote
            # DATA: usable only when found before MAIL (a one-chunk file that grew is
            # found when its first chunk is read, before MAIL).
            before_mail = not padded and words == "grew past"
            assert client.session.usable is (chunking is None or before_mail)
        with make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client:
            result = client.sendmail("next@x.test", ["r@x.test"], io.BytesIO(GOOD))
            assert isinstance(result, TransactionResult)
        stored = server.wait_for_messages(1, timeout=TIMEOUT)
    assert [m.sender for m in stored] == ["next@x.test"]


class FailingFile(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        raise OSError("disk gone")


def test_an_unreadable_file_is_refused_before_mail(make_client: MakeClient, tmp_path: Path) -> None:
    """Text mode, or a read that fails: found while checking, before MAIL."""
    lines: list[str] = []
    path = tmp_path / "text.eml"
    path.write_bytes(GOOD)
    with (
        run_server(starttls=False, transcript=lines.append) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=TIMEOUT) as client,
    ):
        for source, words in ((path.open(), "binary mode"), (FailingFile(GOOD), "disk gone")):
            with source, pytest.raises(SMTPProtocolError, match=words):
                client.sendmail("bad@x.test", ["r@x.test"], source)
            assert client.session.usable
        assert client.noop().code == 250
    assert not mails(lines)
