"""``send --xclient ATTR=VALUE`` and ``--xforward ATTR=VALUE`` (swaks' --xclient-*),
run as a subprocess against a scripted peer on 127.0.0.1 that advertises XCLIENT and
XFORWARD (Postfix XCLIENT_README, XFORWARD_README; smtp-sink speaks neither)."""

from __future__ import annotations

import pytest

from .helpers import ScriptedSMTPServer, assert_clean_failure, run_cli

EHLO_X = (
    b"250-scripted\r\n"
    b"250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n"
    b"250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"
)
EHLO_AFTER = b"250-scripted\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"
ENVELOPE = ("--tls", "none", "--from", "a@example.org", "--to", "b@example.org", "--body", "x")


def _commands(received: list[bytes]) -> list[bytes]:
    return [line.rstrip(b"\r\n") for line in received]


def test_xclient_then_ehlo_then_xforward_before_mail() -> None:
    replies = {"EHLO": [EHLO_X, EHLO_AFTER], "XCLIENT": b"220 scripted ESMTP\r\n"}
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", *ENVELOPE,
            "--xclient", "ADDR=192.0.2.1", "--xclient", "name=a+b.example",
            "--xforward", "IDENT=abc=1", "--xforward", "SOURCE=REMOTE",
        )  # fmt: skip
        lines = _commands(server.received)
    assert result.returncode == 0, result.stderr
    verbs = [line.split(b" ")[0].split(b":")[0] for line in lines[:6]]
    assert verbs == [b"EHLO", b"XCLIENT", b"EHLO", b"XFORWARD", b"MAIL", b"RCPT"]
    assert lines[1] == b"XCLIENT ADDR=192.0.2.1 NAME=a+2Bb.example"
    assert lines[3] == b"XFORWARD IDENT=abc+3D1 SOURCE=REMOTE"
    assert "-> XCLIENT ADDR=192.0.2.1" in result.stdout


def test_xclient_refused_is_one_line() -> None:
    replies = {"EHLO": EHLO_X, "XCLIENT": b"550 5.7.0 insufficient authorization\r\n"}
    with ScriptedSMTPServer(replies) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", *ENVELOPE,
            "--xclient", "ADDR=192.0.2.1",
        )  # fmt: skip
        lines = _commands(server.received)
    assert_clean_failure(result, 9, "XCLIENT", "insufficient authorization")
    assert not any(line.startswith(b"MAIL") for line in lines)


def test_xforward_not_advertised_sends_nothing() -> None:
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", *ENVELOPE,
            "--xforward", "NAME=x.example",
        )  # fmt: skip
        lines = _commands(server.received)
    assert_clean_failure(result, 2, "XFORWARD needs the XFORWARD extension")
    assert not any(line.startswith((b"XFORWARD", b"MAIL")) for line in lines)


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--xclient", "ADDR", "ATTR=VALUE"),
        ("--xclient", "=x", "ATTR=VALUE"),
        ("--xclient", "IDENT=x", "unknown XCLIENT attribute"),
        ("--xforward", "LOGIN=x", "unknown XFORWARD attribute"),
        ("--xforward", "NAME=a b", "without space"),
        ("--xforward", "NAME=a\rb", "without space"),
        ("--xclient", "NAME=", "1 to 255"),
        ("--xclient", "NAME=" + "x" * 256, "1 to 255"),
    ],
)
def test_bad_attributes_are_usage_errors_before_connecting(
    flag: str, value: str, fragment: str
) -> None:
    result = run_cli("send", "--server", "127.0.0.1:9", *ENVELOPE, flag, value)
    assert_clean_failure(result, 2, fragment)


def test_same_attribute_twice_is_a_usage_error() -> None:
    result = run_cli(
        "send", "--server", "127.0.0.1:9", *ENVELOPE,
        "--xclient", "NAME=a", "--xclient", "name=b",
    )  # fmt: skip
    assert_clean_failure(result, 2, "--xclient NAME given twice")
