"""Tests for ``Capabilities``: EHLO replies from real servers and every typed view."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.client_engine.capabilities import Capabilities, ServerLimits
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.reply import Reply

# EHLO replies as real servers send them (names and addresses changed).
POSTFIX = b"""250-mail.example.org
250-PIPELINING
250-SIZE 10240000
250-VRFY
250-ETRN
250-STARTTLS
250-AUTH PLAIN LOGIN
250-AUTH=PLAIN LOGIN
250-ENHANCEDSTATUSCODES
250-8BITMIME
250-DSN
250-SMTPUTF8
250 CHUNKING
"""
EXIM = b"""250-mx.example.net Hello client.example.com [192.0.2.10]
250-SIZE 52428800
250-LIMITS MAILMAX=1000 RCPTMAX=50000
250-8BITMIME
250-PIPELINING
250-PIPECONNECT
250-AUTH PLAIN LOGIN CRAM-MD5
250-CHUNKING
250-STARTTLS
250-PRDR
250 HELP
"""
GMAIL = b"""250-smtp.gmail.com at your service, [203.0.113.5]
250-SIZE 35882577
250-8BITMIME
250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH
250-ENHANCEDSTATUSCODES
250-PIPELINING
250-CHUNKING
250 SMTPUTF8
"""
EXCHANGE = b"""250-EX01.corp.example.com Hello [198.51.100.7]
250-SIZE 37748736
250-PIPELINING
250-DSN
250-ENHANCEDSTATUSCODES
250-STARTTLS
250-X-ANONYMOUSTLS
250-AUTH NTLM
250-X-EXPS GSSAPI NTLM
250-8BITMIME
250-BINARYMIME
250-CHUNKING
250-XRDST
250 XSHADOW
"""


def ehlo(text: bytes) -> Reply:
    """A Reply from wire text (one line per reply line, code and separator stripped)."""
    return Reply(250, tuple(line[4:] for line in text.splitlines()))


def caps(*lines: str, name: str = "mx.example.com Hi") -> Capabilities:
    return Capabilities.from_ehlo(Reply(250, (name.encode(), *(x.encode() for x in lines))))


def test_postfix() -> None:
    c = Capabilities.from_ehlo(ehlo(POSTFIX))
    assert (c.server_name, c.greeting) == ("mail.example.org", "")
    assert c.size == 10240000
    assert c.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert c.pipelining and c.starttls and c.enhanced_status_codes and c.eightbitmime
    assert c.dsn and c.smtputf8 and c.chunking
    assert not c.binarymime and not c.requiretls
    assert c.has("VRFY") and c.has("etrn")
    assert c.params("AUTH") == ("PLAIN", "LOGIN")
    assert c.ignored_lines == ()


def test_exim() -> None:
    c = Capabilities.from_ehlo(ehlo(EXIM))
    assert c.server_name == "mx.example.net"
    assert c.greeting == "Hello client.example.com [192.0.2.10]"
    assert c.size == 52428800
    assert c.limits == ServerLimits(rcptmax=50000, mailmax=1000, rcptdomainmax=None)
    assert c.auth_mechanisms == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert c.has("PIPECONNECT") and c.has("PRDR") and c.has("HELP")
    assert not c.dsn and not c.smtputf8


def test_gmail() -> None:
    c = Capabilities.from_ehlo(ehlo(GMAIL))
    assert c.server_name == "smtp.gmail.com"
    assert c.size == 35882577
    assert c.auth_mechanisms == {
        "LOGIN",
        "PLAIN",
        "XOAUTH2",
        "PLAIN-CLIENTTOKEN",
        "OAUTHBEARER",
        "XOAUTH",
    }
    assert c.smtputf8 and c.chunking and not c.starttls


def test_exchange() -> None:
    c = Capabilities.from_ehlo(ehlo(EXCHANGE))
    assert c.server_name == "EX01.corp.example.com"
    assert c.binarymime and c.chunking and c.dsn and c.starttls
    assert c.auth_mechanisms == {"NTLM"}
    assert c.params("x-exps") == ("GSSAPI", "NTLM")
    assert c.has("XSHADOW") and c.has("X-ANONYMOUSTLS")
    assert c.limits == ServerLimits()


def test_first_line_is_never_a_capability() -> None:
    c = caps("SIZE 100", name="PIPELINING STARTTLS")
    assert c.server_name == "PIPELINING"
    assert c.greeting == "STARTTLS"
    assert not c.pipelining and not c.starttls
    single = Capabilities.from_ehlo(Reply(250, (b"STARTTLS",)))
    assert single.keywords == {} and not single.starttls


def test_keywords_case_insensitive_and_exact() -> None:
    c = caps("pipeliningx", "Starttls", "8bitmimE", "CHUNK")
    assert not c.pipelining and c.has("PIPELININGX")
    assert c.starttls and c.eightbitmime
    assert not c.chunking
    assert set(c.keywords) == {"PIPELININGX", "STARTTLS", "8BITMIME", "CHUNK"}


def test_unknown_keywords_and_params_kept() -> None:
    c = caps("X-FOO a b  c", "XCLIENT NAME ADDR")
    assert c.params("x-foo") == ("a", "b", "c")
    assert c.params("XCLIENT") == ("NAME", "ADDR")
    assert c.params("MISSING") == ()


@pytest.mark.parametrize(
    "line",
    ["-BAD", "BAD_KEYWORD", "", " SIZE 10", "SIZE 10\x01", "SIZE\t10", "SIZE 1\x7f", "ÜBER"],
)
def test_invalid_lines_ignored_and_recorded(line: str) -> None:
    c = caps(line, "PIPELINING")
    assert c.ignored_lines == (line,)
    assert set(c.keywords) == {"PIPELINING"}
    assert c.size is None


def test_keywords_are_read_only() -> None:
    c = caps("SIZE 10")
    with pytest.raises(TypeError):
        c.keywords["SIZE"] = ("1",)  # type: ignore[index]  # mutation must fail
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.server_name = "x"  # type: ignore[misc]  # frozen on purpose


def test_equality_and_hash() -> None:
    assert caps("SIZE 10") == caps("size 10")
    assert hash(caps("SIZE 10")) == hash(caps("size 10"))
    assert caps("SIZE 10") != caps("SIZE 11")


def test_only_250_accepted() -> None:
    with pytest.raises(LocalProtocolError, match="250"):
        Capabilities.from_ehlo(Reply(502, (b"5.5.1 Command not implemented",)))


def test_none() -> None:
    c = Capabilities.none("helo.example")
    assert c.server_name == "helo.example"
    assert c.keywords == {} and c.size is None and c.auth_mechanisms == frozenset()
    assert not c.pipelining and c.deliverby is None and c.mt_priority is None


# -- SIZE ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("SIZE 1", 1),
        ("SIZE 35882577", 35882577),
        ("SIZE 9223372036854775807", 2**63 - 1),
        ("SIZE", None),
        ("SIZE 0", None),
        ("SIZE abc", None),
        ("SIZE -5", None),
        ("SIZE 1e6", None),
        ("SIZE 9223372036854775808", None),
        ("SIZE " + "9" * 5000, None),
    ],
)
def test_size(line: str, expected: int | None) -> None:
    c = caps(line)
    assert c.size == expected
    assert c.has("SIZE")


def test_size_with_non_ascii_digits_is_not_an_ehlo_line() -> None:
    c = caps("SIZE ١٢٣")
    assert c.size is None and not c.has("SIZE")
    assert c.ignored_lines == ("SIZE ١٢٣",)


def test_size_absent() -> None:
    assert caps("PIPELINING").size is None
    assert not caps("PIPELINING").has("SIZE")


# -- AUTH ----------------------------------------------------------------------------------


def test_auth_old_form_alone_and_merged() -> None:
    assert caps("AUTH=LOGIN PLAIN").auth_mechanisms == {"LOGIN", "PLAIN"}
    assert caps("AUTH=LOGIN PLAIN").has("AUTH")
    merged = caps("AUTH CRAM-MD5", "auth=login")
    assert merged.auth_mechanisms == {"CRAM-MD5", "LOGIN"}
    assert merged.ignored_lines == ()


def test_auth_mechanism_names_validated() -> None:
    c = caps("AUTH plain SCRAM-SHA-256 X_Y " + "A" * 21 + " BAD! a.b")
    assert c.auth_mechanisms == {"PLAIN", "SCRAM-SHA-256", "X_Y"}
    assert caps("AUTH").auth_mechanisms == frozenset()


# -- DELIVERBY, MT-PRIORITY, LIMITS ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [("DELIVERBY 120", 120), ("DELIVERBY", 0), ("DELIVERBY x", 0), ("DELIVERBY 1234567890", 0)],
)
def test_deliverby(line: str, expected: int) -> None:
    assert caps(line).deliverby == expected
    assert caps("SIZE 1").deliverby is None


def test_mt_priority() -> None:
    assert caps("MT-PRIORITY MIXER").mt_priority == "MIXER"
    assert caps("MT-PRIORITY stanag4406").mt_priority == "STANAG4406"
    assert caps("MT-PRIORITY").mt_priority == ""
    assert caps("SIZE 1").mt_priority is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("LIMITS RCPTMAX=10 MAILMAX=5 RCPTDOMAINMAX=2", ServerLimits(10, 5, 2)),
        ("LIMITS rcptmax=10", ServerLimits(rcptmax=10)),
        ("LIMITS RCPTMAX=0 MAILMAX=-1 RCPTDOMAINMAX=x", ServerLimits()),
        ("LIMITS RCPTMAX=1234567890", ServerLimits()),
        ("LIMITS RCPTMAX=1 RCPTMAX=2", ServerLimits()),
        ("LIMITS RCPTMAX MAILMAX=3 OTHER=4", ServerLimits(mailmax=3)),
        ("LIMITS", ServerLimits()),
    ],
)
def test_limits(line: str, expected: ServerLimits) -> None:
    assert caps(line).limits == expected


# -- masking ---------------------------------------------------------------------------------


def test_masked() -> None:
    c = Capabilities.from_ehlo(ehlo(EXCHANGE))
    m = c.masked("chunking", "AUTH", "BINARYMIME", "NOT-ADVERTISED")
    assert not m.chunking and not m.binarymime and m.auth_mechanisms == frozenset()
    assert not m.has("CHUNKING") and m.params("AUTH") == ()
    assert m.pipelining and m.size == 37748736
    assert m.masked_keywords == {"CHUNKING", "AUTH", "BINARYMIME", "NOT-ADVERTISED"}
    assert c.chunking and c.auth_mechanisms == {"NTLM"}  # the original is unchanged
    assert m.masked("SIZE").size is None
    assert m.masked("SIZE").masked_keywords >= {"SIZE", "CHUNKING"}


# -- robustness ------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), min_size=1))
def test_never_raises_on_any_250_reply(lines: list[bytes]) -> None:
    c = Capabilities.from_ehlo(Reply(250, tuple(lines)))
    assert len(c.keywords) + len(c.ignored_lines) <= len(lines) - 1
    for keyword in c.keywords:
        assert keyword == keyword.upper()
    assert c.size is None or c.size > 0
    assert isinstance(c.limits, ServerLimits)
    assert all(len(name) <= 20 for name in c.auth_mechanisms)
