"""``send --data FILE|-`` (a prepared message as is) and the streamed ``--body-file``,
through the real CLI against real servers (aiosmtpd, smtp-sink, the built-in server)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interop.peers import start_aiosmtpd, start_smtp_sink
from smtpproto.cli.content import MAX_LINE, base64_size, body_chunks, scan

from .helpers import RUN_TIMEOUT, ScriptedSMTPServer, assert_clean_failure, cli_env, run_cli

PREPARED = (
    b"From: Prepared <p@example.org>\r\n"
    b"To: someone@example.org\r\n"
    b"Subject: exactly this\r\n"
    b"X-Custom: kept\r\n"
    b"\r\n"
    b"line one\r\n"
    b".leading dot\r\n"
    b"last line\r\n"
)


def _send(port: int, *extra: str) -> list[str]:
    return [
        "send", "--server", f"127.0.0.1:{port}", "--tls", "none",
        "--from", "a@example.org", "--to", "b@example.org", *extra,
    ]  # fmt: skip


def test_data_file_is_sent_as_is(tmp_path: Path) -> None:
    message = tmp_path / "message.eml"
    message.write_bytes(PREPARED)
    with start_aiosmtpd() as peer:
        result = run_cli(*_send(peer.port, "--data", str(message)))
        assert result.returncode == 0, result.stderr
        (received,) = peer.wait_for_messages(1)
    assert received.content == PREPARED  # dot-stuffed on the wire, unstuffed by aiosmtpd
    assert received.mail_from == "a@example.org"
    assert "User-Agent" not in received.content.decode()


def test_data_from_stdin_with_lf_line_ends_to_smtp_sink() -> None:
    with start_smtp_sink() as sink:
        result = run_cli(
            *_send(sink.port, "--data", "-"), stdin=PREPARED.decode().replace("\r\n", "\n")
        )
        assert result.returncode == 0, result.stderr
        (received,) = sink.wait_for_messages(1)
    assert b"Subject: exactly this" in received.content
    assert b"X-Custom: kept" in received.content


def test_data_stdin_larger_than_the_spool_buffer() -> None:
    body = "".join(f"line {n:07d}\n" for n in range(20_000))  # 260 kB > 64 KiB
    with start_aiosmtpd() as peer:
        result = run_cli(*_send(peer.port, "--data", "-", "-q"), stdin="Subject: big\n\n" + body)
        assert result.returncode == 0, result.stderr
        (received,) = peer.wait_for_messages(1)
    assert received.content.endswith(b"line 0019999\r\n")
    assert received.content.count(b"\r\n") == 20_002


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"Subject: x\r\n\r\n" + b"a" * (MAX_LINE + 1) + b"\r\n", "a line of 999 octets"),
        (b"Subject: x\r\n\r\nnul \x00 here\r\n", "NUL"),
    ],
)
def test_data_that_smtp_cannot_carry_is_refused_before_connecting(
    tmp_path: Path, data: bytes, fragment: str
) -> None:
    message = tmp_path / "bad.eml"
    message.write_bytes(data)
    with ScriptedSMTPServer({}) as server:
        result = run_cli(*_send(server.port, "--data", str(message)))
        assert server.received == []
    assert_clean_failure(result, 2, fragment)


@pytest.mark.parametrize(
    ("option", "value"), [("--subject", "x"), ("--header", "X-A: b"), ("--attach", "/etc/hostname")]
)
def test_data_excludes_message_building_options(option: str, value: str) -> None:
    result = run_cli("send", "--data", "/etc/hostname", option, value, "--to", "a@[127.0.0.1]")
    assert_clean_failure(result, 2, "--data sends the file as is")


def test_data_and_body_are_exclusive() -> None:
    result = run_cli("send", "--data", "-", "--body", "x")
    assert_clean_failure(result, 2, "not allowed with")


def test_missing_data_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("send", "--demo", "--data", str(tmp_path / "nope.eml"))
    assert_clean_failure(result, 2, "cannot read data file", "nope.eml")


def test_8bit_data_to_a_server_without_8bitmime_is_exit_8_before_mail(tmp_path: Path) -> None:
    message = tmp_path / "utf8.eml"
    message.write_bytes("Subject: x\r\n\r\ngrüße\r\n".encode())
    ehlo = b"250-scripted\r\n250 PIPELINING\r\n"
    with ScriptedSMTPServer({"EHLO": ehlo}) as server:
        result = run_cli(*_send(server.port, "--data", str(message)))
        received = b"".join(server.received)
    assert_clean_failure(result, 8, "8BITMIME")
    assert b"MAIL FROM" not in received


@pytest.mark.parametrize("raw", [False, True], ids=["data", "no-data-fixup"])
def test_8bit_data_to_a_server_with_smtputf8_only_is_exit_8_before_mail(
    tmp_path: Path, raw: bool
) -> None:
    """SMTPUTF8 does not stand for BODY=8BITMIME (RFC 6531 §3.6; a server offering it
    must offer 8BITMIME too, §3.1 item 8): 8-bit content still needs 8BITMIME."""
    message = tmp_path / "utf8.eml"
    message.write_bytes("Subject: x\r\n\r\ngrüße\r\n".encode())
    ehlo = b"250-scripted\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
    fixup = ["--no-data-fixup"] if raw else []
    with ScriptedSMTPServer({"EHLO": ehlo}) as server:
        result = run_cli(*_send(server.port, "--data", str(message), *fixup))
        received = b"".join(server.received)
    assert_clean_failure(result, 8, "8BITMIME", "SMTPUTF8 does not")
    assert b"MAIL FROM" not in received


def test_demo_with_data() -> None:
    result = run_cli("send", "--demo", "--data", "-", stdin=PREPARED.decode())
    assert result.returncode == 0, result.stderr
    received = result.stdout.split("---- the message as the built-in server received it", 1)[1]
    assert "Subject: exactly this" in received and "X-Custom: kept" in received


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("plain ascii\n" * 3, "7bit"),
        ("grüße\n.dot line\n", "8bit"),
        ("x" * 2000 + "\n", "base64"),
    ],
)
def test_streamed_body_file_transfer_encodings(tmp_path: Path, text: str, encoding: str) -> None:
    body = tmp_path / "body.txt"
    body.write_text(text, encoding="utf-8")
    with start_aiosmtpd() as peer:
        result = run_cli(*_send(peer.port, "--body-file", str(body), "--subject", "s", "-q"))
        assert result.returncode == 0, result.stderr
        (received,) = peer.wait_for_messages(1)
    head, _, payload = received.content.partition(b"\r\n\r\n")
    assert f"Content-Transfer-Encoding: {encoding}".encode() in head
    assert b'Content-Type: text/plain; charset="utf-8"' in head
    assert b"Subject: s" in head
    if encoding == "base64":
        assert base64.b64decode(payload).decode() == text
    else:
        assert payload.decode() == text.replace("\n", "\r\n")


def test_body_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    body = tmp_path / "latin1.txt"
    body.write_bytes("grüße".encode("latin-1"))
    result = run_cli("send", "--demo", "--body-file", str(body))
    assert_clean_failure(result, 2, "not UTF-8", "--attach")


@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=70))
def test_scan_matches_a_whole_read(data: bytes, cut: int) -> None:
    facts = scan(_Trickle(data, cut))
    lines = data.replace(b"\r", b"\n").split(b"\n")
    assert facts.size == len(data)
    assert facts.longest_line == max(len(line) for line in lines)
    assert facts.eight_bit == (not data.isascii())
    assert facts.nul == (b"\0" in data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert not facts.utf8
    else:
        assert facts.utf8


@given(st.binary(max_size=200_000))
def test_streamed_base64_decodes_and_has_the_announced_size(data: bytes) -> None:
    encoded = b"".join(body_chunks(_Trickle(data, 1000), "base64"))
    assert base64.b64decode(encoded) == data
    assert len(encoded) == base64_size(len(data))
    assert all(len(line) <= 76 for line in encoded.split(b"\n"))


class _Trickle(io.RawIOBase):
    """A stream whose reads return at most ``cut`` octets (a pipe's short reads)."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._data, self._cut, self._at = data, cut, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._cut if size < 0 else min(size, self._cut)
        part = self._data[self._at : self._at + size]
        self._at += len(part)
        return part


_MEASURE = (
    "import resource, sys\n"
    "from smtpproto.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _peak_rss_kib(port: int, body: Path, option: str = "--body-file") -> int:
    """The peak RSS of ``send OPTION BODY``; ``OPTION -`` reads ``body`` from stdin."""
    from_stdin = option.endswith(" -")
    args = option.split() if from_stdin else [option, str(body)]
    with (body if from_stdin else Path(os.devnull)).open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-c", _MEASURE, *_send(port, *args, "-q")], stdin=stdin,
            capture_output=True, timeout=RUN_TIMEOUT, env=cli_env(), check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stderr.decode().split("maxrss", 1)[1])


def test_a_big_body_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    """64 MiB of body: the peak RSS stays within 16 MiB of a one-line body's (before
    streaming it was about 7x the body)."""
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("hi\n")
    line = b"The quick brown fox jumps over the lazy dog, gr\xc3\xbc\xc3\x9fe. 0123456789\n"
    with big.open("wb") as file:
        for _ in range((64 << 20) // (len(line) * 1024)):
            file.write(line * 1024)
    with start_smtp_sink(dump=False) as sink:
        baseline = _peak_rss_kib(sink.port, small)
        peak = _peak_rss_kib(sink.port, big)
    assert peak - baseline < 16 * 1024, (baseline, peak)


@pytest.mark.parametrize("option", ["--body -", "--body-file -", "--data -", "--data"])
def test_stdin_and_data_stream_in_bounded_memory(tmp_path: Path, option: str) -> None:
    """The body or whole message from stdin (spooled) and ``--data FILE`` stay in
    bounded memory too: 32 MiB within 16 MiB of a one-line input's peak (a ``--body -``
    of 200 MB took 1.49 GB before it was streamed)."""
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    head = b"From: a@example.org\r\nSubject: big\r\n\r\n" if "data" in option else b""
    small.write_bytes(head + b"hi\n")
    line = b"The quick brown fox jumps over the lazy dog, gr\xc3\xbc\xc3\x9fe. 0123456789\n"
    with big.open("wb") as file:
        file.write(head)
        for _ in range((32 << 20) // (len(line) * 1024)):
            file.write(line * 1024)
    with start_smtp_sink(dump=False) as sink:
        baseline = _peak_rss_kib(sink.port, small, option)
        peak = _peak_rss_kib(sink.port, big, option)
    assert peak - baseline < 16 * 1024, (baseline, peak)


@pytest.mark.parametrize("extra", [(), ("--attach", __file__)])
def test_a_body_argument_with_undecodable_octets_is_a_usage_error(extra: tuple[str, ...]) -> None:
    """``--body`` from an argv holding an octet that is not UTF-8 reaches Python as a
    lone surrogate: the message builder raised UnicodeEncodeError, exit 70 'this is a
    bug'. Now a usage error naming the option, before anything connects."""
    result = run_cli("send", "--demo", "--body", "caf\udce9", *extra)
    assert_clean_failure(result, 2, "--body is not UTF-8")
