"""Fixes from issue 12's review, each through the real CLI in a subprocess: the refusal
count, ``-q`` and the demo's dump, SIZE as the content class, one error prefix for
every argument error, and what ``--help`` promises."""

from __future__ import annotations

import pytest

from interop.peers import start_aiosmtpd
from smtpproto.cli.message import split_addresses

from .helpers import ScriptedSMTPServer, assert_clean_failure, run_cli


def test_one_of_two_recipients_refused_says_one_of_two() -> None:
    rcpt = [b"250 ok\r\n", b"550 5.1.1 no such user\r\n"]
    with ScriptedSMTPServer({"RCPT": rcpt}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--from", "a@example.org", "--to", "b@example.org,c@example.org", "--body", "x",
        )  # fmt: skip
    assert_clean_failure(result, 7, "delivered to 1, but 1 of 2 recipient(s) refused")
    assert "<c@example.org>: 550 5.1.1" in result.stderr


def test_quiet_demo_prints_nothing_on_stdout() -> None:
    result = run_cli("send", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_a_message_over_the_servers_size_is_exit_8_before_mail() -> None:
    with start_aiosmtpd(data_size_limit=200) as peer:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{peer.port}", "--tls", "none",
            "--from", "a@example.org", "--to", "b@example.org", "--body", "x" * 500,
        )  # fmt: skip
        assert peer.messages == []
    assert_clean_failure(result, 8, "above the server's SIZE limit of 200", "nothing was sent")
    assert "-> MAIL" not in result.stdout
    assert "-> QUIT" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--tls", "sometimes"),
        ("send", "--timeout", "-1"),
        ("probe",),
        ("explain",),
        ("serve", "--port", "99999"),
        ("nosuchcommand",),
        ("--nosuchoption",),
        (),
    ],
)
def test_every_argument_error_has_the_one_prefix(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert_clean_failure(result, 2)
    assert result.stderr.startswith("smtpproto: error: ")
    assert len(result.stderr.splitlines()) == 1


def test_help_points_to_each_commands_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "smtpproto COMMAND --help" in result.stdout
    for command in ("send", "probe", "explain", "serve"):
        sub = run_cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "options:" in sub.stdout or "optional arguments:" in sub.stdout


def test_split_addresses_like_swaks() -> None:
    assert split_addresses(["a@x.test,b@y.test", "c@z.test"]) == [
        "a@x.test",
        "b@y.test",
        "c@z.test",
    ]
    assert split_addresses(['"Doe, Jane" <j@x.test>, b@y.test']) == [
        '"Doe, Jane" <j@x.test>',
        "b@y.test",
    ]
    assert split_addresses(["<odd,local@x.test>"]) == ["<odd,local@x.test>"]
    assert split_addresses([" , ,a@x.test,"]) == ["a@x.test"]


def test_comma_separated_recipients_in_the_envelope_and_the_header() -> None:
    result = run_cli(
        "send",
        "--demo",
        "--to",
        "a@example.com,b@example.com",
        "--cc",
        "c@example.com,d@example.com",
    )
    assert result.returncode == 0, result.stderr
    for address in "abcd":
        assert f"~> RCPT TO:<{address}@example.com>" in result.stdout
    received = result.stdout.split("---- the message as the built-in server received it", 1)[1]
    assert "To: a@example.com, b@example.com" in received
    assert "Cc: c@example.com, d@example.com" in received


@pytest.mark.parametrize(
    "value", ["alice@example.org<bob@example.org>", "alice@example.org)<bob@example.org>"]
)
def test_an_address_two_parsers_read_differently_is_a_usage_error(value: str) -> None:
    """CVE-2023-27043: ``parseaddr`` read these as alice before Python 3.13 (the RCPT
    went to alice, the To header showing bob) and as nothing since (the whole value
    then refused). The email package's RFC 5322 parser finds them invalid on every
    Python: a usage error, nothing sent."""
    with ScriptedSMTPServer({}) as server:
        result = run_cli(
            "send", "--server", f"127.0.0.1:{server.port}", "--tls", "none",
            "--from", "a@example.org", "--to", value, "--body", "x",
        )  # fmt: skip
    assert_clean_failure(result, 2, "invalid address")
    assert "RCPT" not in result.stdout


def test_a_display_name_address_still_gives_its_address() -> None:
    result = run_cli("send", "--demo", "--to", '"Smith, Bob" <bob@example.org>')
    assert result.returncode == 0, result.stderr
    assert "RCPT TO:<bob@example.org>" in result.stdout
