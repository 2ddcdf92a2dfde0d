"""Pieces of the command line that need no server: server parsing, transcript, bar, table."""

from __future__ import annotations

import io

import pytest

from smtpproto.cli.common import CLIError, ExitCode, exit_code_for, parse_server
from smtpproto.cli.output import (
    PROGRESS_MIN_BYTES,
    ProgressBar,
    Transcript,
    format_message,
    format_size,
    format_table,
)
from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPDeliveryTimeoutError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from smtpproto.wire.errors import LocalProtocolError, RemoteProtocolError
from smtpproto.wire.reply import Reply


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail.example.com", ("mail.example.com", 25)),
        ("mail.example.com:587", ("mail.example.com", 587)),
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("[::1]:25", ("::1", 25)),
        ("[::1]", ("::1", 25)),
        ("::1", ("::1", 25)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text, default_port=25) == expected


@pytest.mark.parametrize(
    "text",
    ["", ":25", "host:", "host:0", "host:65536", "host:x", "[::1", "[::1]x", "[::1]:", "a b"],
)
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(CLIError) as info:
        parse_server(text, default_port=25)
    assert info.value.code is ExitCode.USAGE


def _reply(code: int) -> Reply:
    return Reply(code, (b"text",))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SMTPConnectError("refused"), 3),
        (SMTPReplyError(_reply(554)), 3),
        (SMTPTLSError("bad cert"), 4),
        (SMTPReplyError(_reply(454), command="STARTTLS"), 4),
        (SMTPReplyError(_reply(535), command="AUTH"), 5),
        (SMTPReplyError(_reply(550), command="MAIL FROM:<a@b>"), 6),
        (SMTPReplyError(_reply(550), command="RCPT"), 7),
        (SMTPRecipientsRefused([("a@b", _reply(550))]), 7),
        (SMTPReplyError(_reply(554), command="DATA"), 8),
        (SMTPReplyError(_reply(552), command="BDAT"), 8),
        (SMTPReplyError(_reply(502), command="EHLO"), 9),
        (SMTPProtocolError(RemoteProtocolError("junk")), 9),
        (SMTPProtocolError(LocalProtocolError("bad address")), 2),
        (RemoteProtocolError("junk"), 9),
        (LocalProtocolError("bad"), 2),
        (SMTPTimeoutError("slow"), 10),
        (SMTPDeliveryTimeoutError("slow"), 11),
        (SMTPDeliveryStatusUnknown("lost"), 11),
        (CLIError("x", ExitCode.AUTH), 5),
        (ValueError("bug"), None),
    ],
)
def test_exit_code_per_stage(error: BaseException, code: int | None) -> None:
    assert exit_code_for(error) == code


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_transcript_marks_direction_time_and_tls() -> None:
    out, clock = io.StringIO(), FakeClock()
    transcript = Transcript(out, clock=clock)
    clock.now += 0.25
    transcript("S", b"220 hello")
    transcript("C", b"STARTTLS")
    transcript.tls = True
    transcript.note("TLS started")
    clock.now += 1.5
    transcript("C", b"EHLO me")
    transcript("S", b"250 ok \x1b[31m\xff")
    assert out.getvalue().splitlines() == [
        "[   0.250s] <- 220 hello",
        "[   0.250s] -> STARTTLS",
        "[   0.250s] == TLS started",
        "[   1.750s] ~> EHLO me",
        "[   1.750s] <~ 250 ok \\x1b[31m\ufffd",
    ]


def test_progress_bar_inactive_for_small_bodies_or_no_terminal() -> None:
    out = io.StringIO()
    for bar in (
        ProgressBar(PROGRESS_MIN_BYTES - 1, out, enabled=True),
        ProgressBar(PROGRESS_MIN_BYTES * 4, out, enabled=False),
    ):
        bar.update(10)
        bar.finish()
        assert not bar.active
    assert out.getvalue() == ""


def test_progress_bar_throttles_and_finishes_once() -> None:
    out, clock = io.StringIO(), FakeClock()
    total = PROGRESS_MIN_BYTES * 2
    bar = ProgressBar(total, out, enabled=True, clock=clock)
    clock.now += 1.0
    bar.update(total // 2)
    bar.update(total // 2 + 1)  # same instant: throttled
    assert out.getvalue().count("\r") == 1
    assert " 50% 1.0 MiB / 2.0 MiB 1.0 MiB/s" in out.getvalue()
    bar.finish()
    bar.finish()
    assert out.getvalue().count("100%") == 1
    assert out.getvalue().endswith("\n")
    assert bar.render(total * 3, 1.0).startswith("[" + "#" * 30 + "] 100%")


def test_format_size() -> None:
    assert format_size(0) == "0 B"
    assert format_size(1023) == "1023 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(5 * 1024**3) == "5.0 GiB"


def test_format_table_aligns_and_escapes() -> None:
    table = format_table([("a", 1), ("long label", ["x", "y"]), ("none", None), ("e", [])])
    assert table.splitlines() == [
        "  a           1",
        "  long label  x",
        "              y",
        "  none        -",
        "  e           -",
    ]
    assert format_table([("k", "v\x1b")]) == "  k  v\\x1b"


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_transcript_survives_a_closed_pipe() -> None:
    transcript = Transcript(BrokenStream())
    transcript("S", b"220 hi")  # must not raise: the engine calls this hook
    transcript("C", b"EHLO me")
    transcript.note("still fine")


def test_format_message_cuts_at_a_line_and_says_so() -> None:
    data = b"".join(b"line %d\r\n" % i for i in range(100))
    shown = format_message(data, limit=50)
    assert shown.splitlines() == [
        *(f"line {i}" for i in range(6)),  # 6 lines of 8 octets fit in 50
        f"[... {len(data) - 48} more octets not shown ...]",
    ]
    assert format_message(data, limit=len(data)) == format_message(data)
    assert format_message(b"a\tb\x1b[2J\r\n") == "a\tb\\x1b[2J"
