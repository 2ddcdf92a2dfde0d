"""``smtpproto send`` refuses bad input before connecting: one line, exit 2, no traceback.

The server given is a free port nothing listens on, so a test that reached the network
would fail with exit 3 instead of 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import assert_clean_failure, free_port, run_cli


@pytest.fixture
def server() -> str:
    return f"127.0.0.1:{free_port()}"


def test_unreadable_body_file(server: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    result = run_cli(
        "send", "--server", server, "--to", "a@example.org", "--body-file", str(missing)
    )
    assert_clean_failure(result, 2, "cannot read body file", "missing.txt")


def test_body_file_that_is_a_directory(server: str, tmp_path: Path) -> None:
    result = run_cli(
        "send", "--server", server, "--to", "a@example.org", "--body-file", str(tmp_path)
    )
    assert_clean_failure(result, 2, "cannot read body file")


def test_body_that_is_not_utf8(server: str, tmp_path: Path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"ok\xff\xfe")
    result = run_cli("send", "--server", server, "--to", "a@example.org", "--body-file", str(body))
    assert_clean_failure(result, 2, "not UTF-8", "--attach")


def test_unreadable_attachment(server: str, tmp_path: Path) -> None:
    result = run_cli(
        "send", "--server", server, "--to", "a@example.org", "--attach", str(tmp_path / "nope")
    )
    assert_clean_failure(result, 2, "cannot read attachment")


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--to", "no spaces allowed@example.org", "invalid address"),
        ("--to", "a@example.org\r\nRCPT TO:<evil@example.org>", "control character"),
        ("--from", "<broken", "invalid address"),
        ("--header", "NoColonHere", "bad --header"),
        ("--header", "X-Evil: a\r\nBcc: victim@example.org", "control character"),
        ("--header", "Bad Name: value", "bad --header"),
        ("--subject", "line\nbreak", "control character"),
    ],
)
def test_invalid_message_input(server: str, option: str, value: str, fragment: str) -> None:
    args = ["send", "--server", server, option, value]
    if option != "--to":
        args += ["--to", "a@example.org"]
    result = run_cli(*args)
    assert_clean_failure(result, 2, fragment)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("127.0.0.1:0", "bad port"), ("127.0.0.1:http", "bad port"), ("[::1", "missing ']'")],
)
def test_bad_server(value: str, fragment: str) -> None:
    result = run_cli("send", "--server", value, "--to", "a@example.org")
    assert_clean_failure(result, 2, fragment)


def test_no_recipient_with_a_server(server: str) -> None:
    result = run_cli("send", "--server", server)
    assert_clean_failure(result, 2, "at least one recipient")


def test_missing_password_variable(server: str) -> None:
    result = run_cli(
        "send", "--server", server, "--to", "a@example.org", "--user", "u",
        "--password-env", "SMTPPROTO_TEST_UNSET_VARIABLE",
    )  # fmt: skip
    assert_clean_failure(result, 2, "SMTPPROTO_TEST_UNSET_VARIABLE")


def test_auth_without_user(server: str) -> None:
    result = run_cli("send", "--server", server, "--to", "a@example.org", "--auth", "PLAIN")
    assert_clean_failure(result, 2, "--user")


def test_unknown_mechanism(server: str) -> None:
    result = run_cli(
        "send", "--server", server, "--to", "a@example.org", "--auth", "NOPE-MECH",
        "--user", "u", "--password-env", "PW",
        env={"PW": "secret"},
    )  # fmt: skip
    assert_clean_failure(result, 2, "NOPE-MECH")


def test_bad_option_values() -> None:
    for args in (
        ("send", "--tls", "sometimes"),
        ("send", "--quit-after", "never"),
        ("send", "--timeout", "-1"),
        ("send", "--body", "x", "--body-file", "y"),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--tls", "implicit"), "not implicit TLS"),
        (("--user", "me"), "--user needs --server"),
        (("--cafile", "/etc/hostname"), "--cafile needs --server"),
        (("--insecure",), "--insecure needs --server"),
        (("--tls-sni", "mail.example.org"), "--tls-sni needs --server"),
        (("--tls-cert", "/etc/hostname"), "--tls-cert needs --server"),
        (("--auth", "NOPE"), "unsupported AUTH mechanism"),
    ],
)
def test_demo_refuses_options_it_cannot_honour(args: tuple[str, ...], fragment: str) -> None:
    result = run_cli("send", *args)
    assert_clean_failure(result, 2, fragment)
    assert "built-in server on" not in result.stdout  # refused before the server started
