"""XCLIENT and XFORWARD (Postfix XCLIENT_README, XFORWARD_README) in the client engine:
validation at construction, the advertised-extension check, the xtext encoding
(RFC 3461 §4), and XCLIENT's 220 as a new greeting. Runs against both parser twins."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_helpers import feed, greeted, names
from smtpproto import (
    ClientState,
    CommandReply,
    Ehlo,
    LocalProtocolError,
    Mail,
    Xclient,
    Xforward,
)
from smtpproto.client_engine.commands import (
    MAX_ATTRIBUTE_VALUE,
    XCLIENT_ATTRIBUTES,
    XFORWARD_ATTRIBUTES,
)

EHLO_X = (
    b"250-mx.example.org\r\n"
    b"250-PIPELINING\r\n"
    b"250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n"
    b"250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n"
)
COMMANDS: list[tuple[type[Xclient] | type[Xforward], frozenset[str]]] = [
    (Xclient, XCLIENT_ATTRIBUTES),
    (Xforward, XFORWARD_ATTRIBUTES),
]


def test_wire_form_is_xtext_and_upper_case() -> None:
    command = Xforward(attributes={"name": "a+b=c.example", "ADDR": "IPV6:2001:db8::1"})
    assert command._wire == b"XFORWARD NAME=a+2Bb+3Dc.example ADDR=IPV6:2001:db8::1\r\n"
    assert Xclient(attributes={"LOGIN": "[UNAVAILABLE]"})._wire == (
        b"XCLIENT LOGIN=[UNAVAILABLE]\r\n"
    )


@pytest.mark.parametrize(("cls", "allowed"), COMMANDS)
@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "a b", "a\tb", "\x7f", "é", ""])
def test_values_with_controls_space_or_non_ascii_are_refused(
    cls: type[Xclient] | type[Xforward], allowed: frozenset[str], bad: str
) -> None:
    with pytest.raises(LocalProtocolError):
        cls(attributes={"NAME": bad})


@pytest.mark.parametrize(("cls", "allowed"), COMMANDS)
def test_unknown_twice_empty_and_long(
    cls: type[Xclient] | type[Xforward], allowed: frozenset[str]
) -> None:
    with pytest.raises(LocalProtocolError, match="unknown"):
        cls(attributes={"NAME": "x", "BOGUS": "y"})
    with pytest.raises(LocalProtocolError, match="twice"):
        cls(attributes={"NAME": "x", "name": "y"})
    with pytest.raises(LocalProtocolError, match="non-empty"):
        cls(attributes={})
    with pytest.raises(LocalProtocolError, match="characters"):
        cls(attributes={"NAME": "x" * (MAX_ATTRIBUTE_VALUE + 1)})
    assert cls(attributes={"NAME": "x" * MAX_ATTRIBUTE_VALUE})
    with pytest.raises(LocalProtocolError, match="must be str"):
        cls(attributes={"NAME": 1})  # type: ignore[dict-item]
    with pytest.raises(LocalProtocolError, match="512"):
        cls(attributes={name: "+" * 100 for name in sorted(allowed)[:2]})


def test_attribute_sets_follow_postfix() -> None:
    assert "LOGIN" in XCLIENT_ATTRIBUTES and "IDENT" not in XCLIENT_ATTRIBUTES
    assert "IDENT" in XFORWARD_ATTRIBUTES and "SOURCE" in XFORWARD_ATTRIBUTES


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1))
def test_any_printable_value_round_trips_through_xtext(value: str) -> None:
    wire = Xforward(attributes={"HELO": value[:MAX_ATTRIBUTE_VALUE]})._wire
    encoded = wire[len(b"XFORWARD HELO=") : -2].decode("ascii")
    assert "=" not in encoded and " " not in encoded
    decoded = bytearray()
    i = 0
    while i < len(encoded):
        if encoded[i] == "+":
            decoded.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            decoded.append(ord(encoded[i]))
            i += 1
    assert decoded.decode("ascii") == value[:MAX_ATTRIBUTE_VALUE]


@pytest.mark.parametrize(("cls", "allowed"), COMMANDS)
def test_needs_the_extension_and_each_name(
    parser_cls: Any, cls: type[Xclient] | type[Xforward], allowed: frozenset[str]
) -> None:
    keyword = cls.__name__.upper()
    conn = greeted(parser_cls, b"250-mx.example.org\r\n250 PIPELINING\r\n")
    with pytest.raises(LocalProtocolError, match=f"{keyword} extension"):
        conn.send(cls(attributes={"NAME": "x"}))
    assert conn.state is ClientState.READY  # nothing sent, nothing changed
    conn = greeted(parser_cls, f"250-mx.example.org\r\n250 {keyword} NAME\r\n".encode())
    with pytest.raises(LocalProtocolError, match="ADDR"):
        conn.send(cls(attributes={"NAME": "x", "ADDR": "192.0.2.1"}))
    assert conn.send(cls(attributes={"name": "x"})) == f"{keyword} NAME=x\r\n".encode()


def test_xforward_250_keeps_the_session(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_X)
    command = Xforward(attributes={"ADDR": "192.0.2.1", "SOURCE": "REMOTE"})
    assert conn.send(command) == b"XFORWARD ADDR=192.0.2.1 SOURCE=REMOTE\r\n"
    with pytest.raises(LocalProtocolError, match="pipelined"):
        conn.send(Mail(sender="a@example.org"))  # wait for XFORWARD's reply
    [event] = feed(conn, b"250 2.0.0 Ok\r\n")
    assert isinstance(event, CommandReply) and event.command is command
    assert conn.state is ClientState.READY and conn.capabilities is not None
    conn.send(Mail(sender="a@example.org"))


def test_xclient_220_is_a_new_greeting(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_X)
    command = Xclient(attributes={"ADDR": "192.0.2.1", "NAME": "client.example"})
    conn.send(command)
    [event] = feed(conn, b"220 mx.example.org ESMTP\r\n")
    assert isinstance(event, CommandReply) and event.reply.code == 220
    assert conn.state is ClientState.HELLO and conn.capabilities is None
    with pytest.raises(LocalProtocolError):
        conn.send(Mail(sender="a@example.org"))  # EHLO first
    conn.send(Ehlo(hostname="c.example"))
    assert names(feed(conn, EHLO_X)) == ["EhloAccepted"]
    assert conn.state is ClientState.READY


@pytest.mark.parametrize("reply", [b"550 5.7.0 Access denied\r\n", b"501 5.5.4 Bad\r\n"])
def test_xclient_refused_keeps_the_session(parser_cls: Any, reply: bytes) -> None:
    conn = greeted(parser_cls, EHLO_X)
    conn.send(Xclient(attributes={"ADDR": "192.0.2.1"}))
    [event] = feed(conn, reply)
    assert isinstance(event, CommandReply) and event.reply.is_error
    assert conn.state is ClientState.READY and conn.capabilities is not None


@pytest.mark.parametrize(("cls", "allowed"), COMMANDS)
def test_not_inside_a_transaction(
    parser_cls: Any, cls: type[Xclient] | type[Xforward], allowed: frozenset[str]
) -> None:
    conn = greeted(parser_cls, EHLO_X)
    conn.send(Mail(sender="a@example.org"))
    feed(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(cls(attributes={"NAME": "x"}))
