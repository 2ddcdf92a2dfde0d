"""Credentials out of sequence never stay raw in server events (issue 11, security item 3).

The rule (docs/design.md §4 rule 11): an AUTH line — any case, any separator, accepted,
refused or malformed — opens a *credentials window*; every following line that does
not start with a known command verb is reported as ``<redacted>`` (in
``CommandRejected.line``, and in ``UnknownCommand.verb``/``line``) until a line with a
known verb closes the window; lines inside an AUTH exchange are never kept. The AUTH
line itself keeps its verb and mechanism only. The built-in server's transcript,
built from the events, shows no credential either (real socket, at the end).
"""

from __future__ import annotations

import base64
import socket
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server_support import Session
from smtpproto.builtin_server.transcript import describe
from smtpproto.server_engine.events import CommandRejected, UnknownCommand
from smtpproto.testing import run_server

HELLO = b"EHLO client.test\r\n"
USER64 = base64.b64encode(b"alice")  # YWxpY2U= : a syntax error as a command
PASS64 = base64.b64encode(b"hunter2x9")  # aHVudGVyMng5 : looks like a verb
PLAIN64 = base64.b64encode(b"\0alice\0hunter2x9")
SECRETS = [USER64, PASS64, PLAIN64, b"hunter2x9", PASS64.upper()]


def _past_ehlo(raw: socket.socket, reader: BinaryIO) -> None:
    """Send EHLO on ``raw`` and read its reply through ``reader`` to the last line
    (at most 30 lines)."""
    raw.sendall(HELLO)
    for _ in range(30):
        if reader.readline().startswith(b"250 "):
            break


def _assert_clean(session: Session) -> None:
    shown = repr(session.events).encode() + "\n".join(map(describe, session.events)).encode()
    for secret in SECRETS:
        assert secret not in shown, shown


def _lines(session: Session) -> list[bytes]:
    return [e.line for e in session.events if isinstance(e, (CommandRejected, UnknownCommand))]


@pytest.mark.parametrize(
    ("extensions", "auth_line", "shown"),
    [
        ((), b"AUTH LOGIN", b"AUTH LOGIN"),  # not advertised: 503
        (("AUTH PLAIN",), b"AUTH LOGIN", b"AUTH LOGIN"),  # not offered: 504
        (("AUTH LOGIN",), b"AUTH FOO", b"AUTH FOO"),  # unknown mechanism
        (("AUTH LOGIN",), b"auth\tlogin", b"auth\tlogin"),  # tab: a syntax error
        (("AUTH LOGIN",), b"AUTH", b"AUTH"),  # no mechanism: 501
        (("AUTH LOGIN",), b"AUTH LOGIN x y", b"AUTH LOGIN <redacted>"),  # too many words
    ],
)
def test_credentials_pipelined_behind_a_refused_auth(
    extensions: tuple[str, ...], auth_line: bytes, shown: bytes
) -> None:
    s = Session(extensions=extensions)
    s.feed(HELLO + auth_line + b"\r\n" + USER64 + b"\r\n" + PASS64 + b"\r\nNOOP\r\n")
    assert _lines(s) == [shown, b"<redacted>", b"<redacted>"]
    unknown = s.of(UnknownCommand)
    assert [e.verb for e in unknown] == ["<REDACTED>"]  # type: ignore[attr-defined]
    _assert_clean(s)


@pytest.mark.parametrize(
    "line",
    [
        b"AUTH\tPLAIN " + PLAIN64,
        b"auth plain " + PLAIN64,
        b"Auth Plain " + PLAIN64 + b" extra",
        b"AUTH " + PLAIN64,  # the credential in the mechanism's place
        b"AUTH " + PASS64,  # mixed case: may be a credential, not a mechanism
        b"AUTH PLAIN " + PLAIN64 + b"\rX",  # bare CR
        b"AUTH PLAIN " + PLAIN64 + b"\x00",  # NUL
    ],
)
def test_an_auth_line_in_any_shape_loses_its_response(line: bytes) -> None:
    s = Session(extensions=("AUTH LOGIN",))  # PLAIN not offered: every one refused
    s.feed(HELLO + line + b"\r\n")
    (rejected,) = s.of(CommandRejected)
    assert rejected.line.endswith(b"<redacted>"), rejected  # type: ignore[attr-defined]
    _assert_clean(s)


def test_lines_after_an_accepted_auth_are_redacted_until_a_known_verb() -> None:
    s = Session(extensions=("AUTH PLAIN",))
    s.feed(HELLO + b"AUTH PLAIN " + PLAIN64 + b"\r\n")  # the default policy answers 334
    s.feed(b"*\r\n")  # cancelled: 501
    s.feed(PASS64 + b"\r\n" + USER64 + b"\r\n" + b"X-" + PASS64 + b"\r\n")
    s.feed(b"RCPT TO:<b@y.test>\r\n")  # a known verb (out of sequence) closes the window
    s.feed(b"XUNKNOWN " + b"kept\r\n" + b"bare\rcr\r\n")
    assert _lines(s) == [
        b"<redacted>",
        b"<redacted>",
        b"<redacted>",
        b"RCPT TO:<b@y.test>",
        b"XUNKNOWN kept",
        b"bare\rcr",
    ]
    _assert_clean(s)


def test_before_any_auth_lines_are_kept() -> None:
    s = Session()
    s.feed(HELLO + PASS64 + b"\r\n" + USER64 + b"\r\n")
    assert _lines(s) == [PASS64, USER64]


def test_an_invalid_response_inside_the_exchange_is_not_kept() -> None:
    s = Session(extensions=("AUTH LOGIN",))
    s.feed(HELLO + b"AUTH LOGIN\r\n")
    s.feed(b"not base64 " + PASS64 + b"\r\n")
    (rejected,) = s.of(CommandRejected)
    assert rejected.line == b""  # type: ignore[attr-defined]
    _assert_clean(s)


@settings(max_examples=200, deadline=None)
@given(
    secret=st.binary(min_size=4, max_size=60),
    auth=st.sampled_from([b"AUTH LOGIN", b"auth login", b"AUTH\tLOGIN", b"AUTH FOO", b"AUTH"]),
    advertised=st.booleans(),
)
def test_any_credential_behind_any_auth_is_redacted(
    secret: bytes, auth: bytes, advertised: bool
) -> None:
    encoded = base64.b64encode(secret)
    s = Session(extensions=("AUTH PLAIN",) if advertised else ())
    s.feed(HELLO + auth + b"\r\n" + encoded + b"\r\n" + encoded.rstrip(b"=") + b"\r\n")
    shown = repr(s.events).encode() + "\n".join(map(describe, s.events)).encode()
    assert encoded not in shown and encoded.rstrip(b"=").upper() not in shown


@pytest.mark.parametrize("forbid_unauth_pipelining", [False, True])
def test_builtin_server_transcript_has_no_credentials(forbid_unauth_pipelining: bool) -> None:
    """Off, every line of the burst is answered; on (the default), the first line
    written before the 503 to AUTH is refused with 554 and the session closes."""
    lines: list[str] = []
    with (
        run_server(
            transcript=lines.append, forbid_unauth_pipelining=forbid_unauth_pipelining
        ) as server,
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        raw.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"220 ")
        _past_ehlo(raw, reader)
        # AUTH is not offered before TLS (503); the credentials follow in the same write.
        raw.sendall(
            b"AUTH LOGIN\r\n" + USER64 + b"\r\n" + PASS64 + b"\r\n"
            b"AUTH\tPLAIN " + PLAIN64 + b"\r\nauth plain " + PLAIN64 + b"\r\nQUIT\r\n"
        )
        for _ in range(30):
            if reader.readline()[:4] in (b"221 ", b"554 ", b""):
                break
    text = "\n".join(lines)
    assert ("QUIT" in text) != forbid_unauth_pipelining and "<redacted>" in text
    for secret in SECRETS:
        assert secret.decode() not in text, text


@pytest.mark.parametrize(
    "line",
    [
        b" AUTH PLAIN " + PLAIN64,  # leading white space: the verb is not the first word
        b"\tauth plain " + PLAIN64,
        b"\x00AUTH PLAIN " + PLAIN64,
        b"AUTHPLAIN " + PLAIN64,  # no separator: an unknown verb that starts with AUTH
    ],
)
def test_a_malformed_auth_line_before_its_verb_loses_its_response(line: bytes) -> None:
    """The redaction does not rely on the line starting with the verb: a broken client
    that indents its AUTH line (or runs the mechanism on) keeps no credential in an
    event, and the lines pipelined behind it are in the credentials window."""
    s = Session(extensions=("AUTH LOGIN",))
    s.feed(HELLO + line + b"\r\n" + PASS64 + b"\r\nNOOP\r\n")
    shown = _lines(s)
    assert len(shown) == 2 and shown[1] == b"<redacted>", shown
    assert shown[0].endswith(b"<redacted>"), shown
    _assert_clean(s)


@pytest.mark.parametrize("response", [b"QUIT+c2VjcmV0", b"MAIL/aHVudGVy", b"HELP"])
def test_a_sasl_response_written_before_its_334_is_not_in_the_transcript(
    response: bytes,
) -> None:
    """A SASL response sent before the 334 it answers is refused with 554 (the default
    ``forbid_unauth_pipelining``). It is a credential whatever it looks like: base64
    that starts with a verb (``QUIT+...``) closed the credentials window and was shown
    raw in the event and the transcript."""
    lines: list[str] = []
    with (
        run_server(
            users={"alice": "wonderland"},
            allow_plaintext_auth=True,
            starttls=False,
            transcript=lines.append,
        ) as server,
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        raw.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"220 ")
        _past_ehlo(raw, reader)
        raw.sendall(b"AUTH LOGIN\r\n" + response + b"\r\n")
        replies = [reader.readline() for _ in range(2)]
    assert [reply[:4] for reply in replies] == [b"334 ", b"554 "]
    text = "\n".join(lines)
    assert "C: <redacted>" in text and response.decode() not in text, text


@pytest.mark.parametrize("advertised", [False, True])
def test_base64_that_starts_with_a_verb_keeps_the_window_open(advertised: bool) -> None:
    """``QUIT+c2VjcmV0`` and ``HELP=`` are base64, not QUIT and HELP: the window stays
    open until a line whose first word is a known verb (the leading run of verb
    characters closed it, and the credential was kept raw)."""
    s = Session(extensions=("AUTH LOGIN",) if advertised else ())
    s.feed(HELLO + b"AUTH LOGIN\r\nQUIT+c2VjcmV0\r\nHELP=\r\nHELP\r\nMAIL/x\r\n")
    shown = _lines(s)
    assert b"HELP=" not in shown and b"QUIT+c2VjcmV0" not in shown
    assert shown[-1] == b"MAIL/x"  # after HELP, a known verb, lines are kept again
