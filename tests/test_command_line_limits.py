"""Every command line within 512 octets (RFC 5321 §4.5.3.1.4; issue 11, robustness item 7).

The client refused nothing: ``Vrfy(argument="a" * 600)`` went out as a 607-octet line.
Now the commands whose line is built from caller text (VRFY, EXPN, HELP, and the hello
commands) refuse, in their constructors, a line over 512 octets with its CRLF, before
anything reaches the connection. The server already refused such lines; here each
verb is checked at 511, 512 and 513 octets (octets, not characters: UTF-8 counts
double). MAIL/RCPT (2048) and AUTH (12288, RFC 4954 §4) have their own limits, tested
in ``tests/test_limits_at_and_past.py``; the client's AUTH line keeps 512 and moves a
longer initial response to the continuation line (``client_engine/writers.py``).
The adapter side is ``tests/adapters/test_command_line_limits_e2e.py``.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from typing import Any

import pytest

from engine_helpers import feed, greeted
from server_support import Session
from smtpproto.client_engine.commands import (
    Auth,
    AuthContinue,
    Command,
    Ehlo,
    Expn,
    Helo,
    Help,
    Lhlo,
    Vrfy,
)
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.sasl import ClientMechanism
from smtpproto.testing import run_server
from smtpproto.wire.abnf import MAX_COMMAND_LINE
from smtpproto.wire.errors import LocalProtocolError

BUILDERS: dict[str, tuple[bytes, Callable[[str], Command]]] = {
    "VRFY": (b"VRFY ", lambda arg: Vrfy(argument=arg)),
    "EXPN": (b"EXPN ", lambda arg: Expn(argument=arg)),
    "HELP": (b"HELP ", lambda arg: Help(topic=arg)),
}


def _argument(prefix: bytes, total: int) -> str:
    return "a" * (total - len(prefix) - 2)


@pytest.mark.parametrize("verb", sorted(BUILDERS))
@pytest.mark.parametrize("total", [511, 512])
def test_the_client_sends_a_line_up_to_512(parser_cls: Any, verb: str, total: int) -> None:
    prefix, build = BUILDERS[verb]
    conn = greeted(parser_cls)
    wire = conn.send(build(_argument(prefix, total)))
    assert len(wire) == total and wire.startswith(prefix) and wire.endswith(b"\r\n")


@pytest.mark.parametrize("verb", sorted(BUILDERS))
@pytest.mark.parametrize("total", [513, 607])
def test_the_client_refuses_a_longer_line(parser_cls: Any, verb: str, total: int) -> None:
    prefix, build = BUILDERS[verb]
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match=rf"{total} octets, more than 512"):
        build(_argument(prefix, total))
    assert conn.send(build("ok"))  # nothing reached the connection: it is still usable


@pytest.mark.parametrize("cls", [Ehlo, Helo, Lhlo])
def test_the_longest_hello_fits(cls: Callable[..., Command]) -> None:
    """A domain is at most 255 octets (RFC 5321 §4.5.3.1.2), so a hello line always
    fits; the same check runs on it."""
    domain = ".".join(["a" * 63] * 3 + ["a" * 61])
    assert len(domain) == 253
    assert len(cls(hostname=domain)._wire) <= MAX_COMMAND_LINE  # type: ignore[attr-defined]


#: Every verb the server reads with the 512-octet limit, with its padding argument.
SERVER_LINES = [
    b"VRFY ",
    b"EXPN ",
    b"HELP ",
    b"NOOP ",
    b"RSET ",
    b"QUIT ",
    b"DATA ",
    b"STARTTLS ",
    b"EHLO ",
    b"HELO ",
    b"XFOO ",
    b"AUTH\t",  # not "AUTH ": no 12288-octet exemption for a malformed AUTH line
]


@pytest.mark.parametrize("prefix", SERVER_LINES)
@pytest.mark.parametrize("total", [511, 512, 513])
def test_the_server_refuses_every_line_past_512(prefix: bytes, total: int) -> None:
    s = Session()
    s.feed(b"EHLO c.test\r\n")
    line = prefix + b"a" * (total - len(prefix) - 2) + b"\r\n"
    assert len(line) == total
    s.feed(line)
    too_long = b"500 5.5.2 Line too long (limit 512 octets with CRLF)"
    assert (too_long in s.out) == (total > 512), bytes(s.out)
    if total > 512:  # refused and dropped: the session goes on
        s.feed(b"NOOP\r\n")
        assert s.codes()[-1] == 250


@pytest.mark.parametrize(
    ("argument", "total"),
    [("\u00e9" * 252, 511), ("\u00e9" * 252 + "a", 512), ("\u00e9" * 253, 513)],
)
def test_the_server_counts_octets_not_characters(argument: str, total: int) -> None:
    """UTF-8 VRFY arguments (SMTPUTF8): about 260 characters, but 511-513 octets."""
    s = Session(extensions=("SMTPUTF8",))
    s.feed(b"EHLO c.test\r\n")
    line = b"VRFY " + argument.encode() + b"\r\n"
    assert len(line) == total and len(argument) < 300
    s.feed(line)
    assert (b"Line too long" in s.out) == (total > 512)


class Fixed(ClientMechanism):
    """X-FIXED8: a given initial response, then the same answer to every challenge."""

    name = "X-FIXED8"

    def __init__(self, initial: bytes, answer: bytes = b"") -> None:
        self._initial = initial
        self._answer = answer

    def initial_response(self) -> bytes | None:
        return self._initial

    def respond(self, challenge: bytes) -> bytes:
        return self._answer


def _raw_of(b64_length: int) -> bytes:
    """Raw octets whose base64 is exactly ``b64_length`` characters (a multiple of 4)."""
    assert b64_length % 4 == 0
    return b"x" * (b64_length // 4 * 3)


@pytest.mark.parametrize(("total", "on_line"), [(508, True), (512, True), (516, False)])
def test_the_auth_line_keeps_512_and_moves_a_longer_initial_response(
    parser_cls: Any, total: int, on_line: bool
) -> None:
    """RFC 4954 §4: the initial response goes on the AUTH line only when the line stays
    within 512 octets; else it follows the empty 334. (Base64 comes in fours, so 512
    is reachable and the next length is 516.)"""
    head = b"AUTH X-FIXED8 "
    initial = _raw_of(total - len(head) - 2)
    conn = greeted(parser_cls, b"250-mx\r\n250 AUTH X-FIXED8\r\n", tls_policy=TLSPolicy.IMPLICIT)
    wire = conn.send(Auth(mechanism=Fixed(initial)))
    assert wire == (head + base64.b64encode(initial) + b"\r\n" if on_line else b"AUTH X-FIXED8\r\n")
    if not on_line:
        feed(conn, b"334 \r\n")
        assert conn.send(AuthContinue()) == base64.b64encode(initial) + b"\r\n"


@pytest.mark.parametrize(("total", "sent"), [(12286, True), (12290, False)])
def test_an_auth_continuation_line_keeps_12288(parser_cls: Any, total: int, sent: bool) -> None:
    """RFC 4954 §4: 12288 octets; the longest base64 line with its CRLF under it is
    12286, the next 12290."""
    answer = _raw_of(total - 2)
    conn = greeted(parser_cls, b"250-mx\r\n250 AUTH X-FIXED8\r\n", tls_policy=TLSPolicy.IMPLICIT)
    conn.send(Auth(mechanism=Fixed(b"", answer)))
    feed(conn, b"334 \r\n")
    if sent:
        assert len(conn.send(AuthContinue())) == total
    else:
        with pytest.raises(LocalProtocolError, match="12288"):
            conn.send(AuthContinue())


@pytest.mark.parametrize(
    ("line", "limit"),
    [
        (b"MAIL FROM:<a@x.test>" + b" SIZE=1" * 300, 2048),  # within one read
        (b"AUTH PLAIN " + b"A" * 13000, 12288),
        (b"NOOP " + b"a" * 600, 512),
    ],
)
@pytest.mark.parametrize("crlf", [True, False])
def test_the_refusal_names_the_limit_the_line_crossed(line: bytes, limit: int, crlf: bool) -> None:
    """MAIL/RCPT and AUTH lines have longer limits than 512; the 500 said 512 for them,
    the line (and its verb) being gone when the reply was made. ``crlf=False``: the
    limit is crossed before the line ends."""
    s = Session(extensions=("PIPELINING", "SIZE 10000", "AUTH PLAIN"))
    s.feed(b"EHLO c.test\r\n")
    s.feed(line + (b"\r\n" if crlf else b""))
    assert f"500 5.5.2 Line too long (limit {limit} octets with CRLF)".encode() in s.out


def test_the_built_in_server_names_the_mail_line_limit_over_a_socket() -> None:
    with (
        run_server(starttls=False) as server,
        socket.create_connection((server.host, server.port), timeout=15) as raw,
        raw.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"220 ")
        raw.sendall(b"EHLO c.test\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        raw.sendall(b"MAIL FROM:<a@x.test>" + b" " * 2100 + b"\r\nNOOP\r\n")
        assert reader.readline() == b"500 5.5.2 Line too long (limit 2048 octets with CRLF)\r\n"
        assert reader.readline().startswith(b"250 ")
