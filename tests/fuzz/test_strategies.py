"""``smtpproto.fuzz.strategies``: the valid values pass the project's own RFC 5321 grammar
checks, the hostile ones break a rule, and the commands are well framed."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto.fuzz import strategies as smtp
from smtpproto.wire.grammar import SyntaxErrorInCommand, validate_domain, validate_mailbox
from smtpproto.wire.parsing import MAX_PATH, parse_esmtp_params, parse_path

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(smtp.domains())
def test_domains_are_valid(domain: str) -> None:
    validate_domain(domain)
    assert len(domain) <= 255


@FAST
@given(smtp.addresses())
def test_addresses_are_valid_mailboxes(address: str) -> None:
    validate_mailbox(address)


@FAST
@given(smtp.paths())
def test_paths_parse_as_forward_paths(path: str) -> None:
    if len(path) <= MAX_PATH:
        mailbox = parse_path(path.encode(), smtputf8=False, allow_null=False)
        assert path.endswith(mailbox + ">")


@FAST
@given(smtp.reverse_paths())
def test_reverse_paths_include_the_null_path(path: str) -> None:
    if len(path) <= MAX_PATH:
        parse_path(path.encode(), smtputf8=False, allow_null=True)


@FAST
@given(smtp.esmtp_params())
def test_esmtp_params_parse(params: str) -> None:
    assert set(parse_esmtp_params(params.encode())) <= {
        "SIZE", "BODY", "RET", "ENVID", "SMTPUTF8", "XFOO"
    }  # fmt: skip


@FAST
@given(smtp.end_of_data_variants())
def test_nonstandard_end_of_data_is_never_crlf_dot_crlf(sequence: bytes) -> None:
    assert b"\r\n.\r\n" not in sequence
    assert b"." in sequence


@FAST
@given(st.integers(1, 2000), st.data())
def test_over_length_is_past_the_limit(limit: int, data: st.DataObject) -> None:
    value = data.draw(smtp.over_length(limit))
    assert limit < len(value) <= 16 * limit


@FAST
@given(smtp.commands())
def test_commands_are_one_crlf_terminated_line(command: bytes) -> None:
    if command.startswith(b"BDAT"):
        head, _, chunk = command.partition(b"\r\n")
        assert int(head.split()[1]) == len(chunk)
    else:
        assert re.fullmatch(rb"[A-Z][^\r\n]*\r\n", command), command


@FAST
@given(smtp.hostile_commands())
def test_hostile_commands_break_a_rule(command: bytes) -> None:
    line = command.split(b"\r\n")[0]
    breaks = (
        len(command) > 512
        or not command.endswith(b"\r\n")
        or command.count(b"\n") != 1
        or command.count(b"\r") != 1
        or re.search(
            rb"[\x00\x80-\xff%$`|]|\.\./|XUNKNOWN|\[IPv6|\[300|SIZE=9|BDAT [-1]|^EHLO\r", command
        )
        or (b"@" not in line and line.startswith(b"RCPT"))
    )
    assert breaks, command


@FAST
@given(smtp.auth_commands())
def test_auth_commands(command: bytes) -> None:
    assert command.startswith(b"AUTH ") and command.endswith(b"\r\n")


@FAST
@given(smtp.data_bodies())
def test_data_bodies_end_once_and_are_dot_stuffed(body: bytes) -> None:
    assert body.endswith(b".\r\n")
    assert (b"\r\n" + body).count(b"\r\n.\r\n") == 1
    assert all(
        not line.startswith(b".") or line.startswith(b"..") for line in body.split(b"\r\n")[:-2]
    )


@FAST
@given(smtp.dialogues())
def test_dialogues_open_with_ehlo_and_end_with_quit(writes: list[bytes]) -> None:
    assert writes[0].startswith(b"EHLO ")
    assert writes[-1] == b"QUIT\r\n"


def test_invalid_domain_is_refused_by_the_checker() -> None:
    """The checker used above does refuse a bad domain, so the tests above can fail."""
    try:
        validate_domain("-bad-.test")
    except SyntaxErrorInCommand:
        return
    raise AssertionError("validate_domain accepted -bad-.test")
