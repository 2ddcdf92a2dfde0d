"""``smtpproto explain``: what a code means, and one-line usage errors for bad codes."""

from __future__ import annotations

import pytest

from .helpers import assert_clean_failure, run_cli


def test_basic_code() -> None:
    result = run_cli("explain", "421")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("421 (transient failure): Service not available")
    assert "What to do:" in result.stdout
    assert result.stderr == ""


def test_enhanced_code_and_command_refine_the_advice() -> None:
    plain = run_cli("explain", "550", "5.1.1")
    rcpt = run_cli("explain", "550", "5.1.1", "--command", "RCPT")
    assert plain.returncode == rcpt.returncode == 0
    assert "Enhanced status 5.1.1" in rcpt.stdout
    assert "Bad destination mailbox address" in rcpt.stdout
    assert "The recipient address is bad or refused" in rcpt.stdout
    assert "The recipient address is bad or refused" not in plain.stdout


def test_mismatched_class_is_reported() -> None:
    result = run_cli("explain", "250", "5.1.1")
    assert result.returncode == 0
    assert "does not match" in result.stdout


def test_unassigned_code_gets_a_generic_entry() -> None:
    result = run_cli("explain", "299")
    assert result.returncode == 0
    assert "Unassigned" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("999",), "200 to 599"),
        (("199",), "200 to 599"),
        (("abc",), "not a reply code"),
        (("5500",), "not a reply code"),
        (("550", "5.1"), "enhanced status code"),
        (("550", "9.1.1"), "enhanced status code"),
        (("550", "5.1.1\x1b[2J"), "\\x1b"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(args: tuple[str, ...], fragment: str) -> None:
    result = run_cli("explain", *args)
    assert_clean_failure(result, 2, fragment)
    assert "\x1b" not in result.stderr


def test_missing_code_is_a_usage_error() -> None:
    result = run_cli("explain")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "required" in result.stderr


def test_help_lists_exit_codes() -> None:
    for args in (("--help",), ("send", "--help"), ("probe", "--help")):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        assert "exit codes:" in result.stdout
        assert "11  delivery status unknown" in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_whole_reply_line_as_pasted_from_a_bounce() -> None:
    result = run_cli("explain", "550-5.1.1 The account does not exist", "--command", "RCPT")
    assert result.returncode == 0, result.stderr
    assert "Enhanced status 5.1.1" in result.stdout
    assert "The recipient address is bad or refused" in result.stdout
    assert result.stdout.rstrip().endswith('Server said: "The account does not exist"')
    plain = run_cli("explain", "451 greylisted")
    assert "Enhanced status" not in plain.stdout
    assert 'Server said: "greylisted"' in plain.stdout


def test_a_bad_reply_line_is_a_usage_error() -> None:
    assert_clean_failure(run_cli("explain", "550x5.1.1"), 2, "not a reply code")
    assert_clean_failure(run_cli("explain", "55 5.1.1"), 2, "not a reply code")
