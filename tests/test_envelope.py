"""Envelope extraction and serialisation for ``send_message`` (``drivers.envelope``).

smtplib's ``send_message`` is the reference for the plain cases; the differences
(every occurrence of a field, the newest of several Resent-* blocks) are tested
on their own.
"""

from __future__ import annotations

import email
import email.policy
import io
import smtplib
from email.message import EmailMessage, Message
from typing import Any

import pytest

from smtpproto.drivers.envelope import envelope_from_message, flatten_message
from smtpproto.wire.errors import LocalProtocolError


def make(headers: list[tuple[str, str]], body: str = "body\n") -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    return msg


def smtplib_envelope(msg: Message) -> tuple[str, list[str], bytes]:
    """What smtplib's ``send_message`` would send, captured without a server."""
    captured: dict[str, Any] = {}

    class Capture(smtplib.SMTP):
        def ehlo_or_helo_if_needed(self) -> None:
            pass

        def has_extn(self, opt: str) -> bool:
            return True

        def sendmail(self, from_addr: str, to_addrs: Any, msg: Any, *args: Any) -> Any:
            captured.update(sender=from_addr, rcpts=list(to_addrs), content=msg)
            return {}

    Capture().send_message(msg)
    return captured["sender"], captured["rcpts"], captured["content"]


@pytest.mark.parametrize(
    "headers",
    [
        [("From", "a@example.org"), ("To", "b@example.org")],
        [("From", "A <a@example.org>"), ("Sender", "s@example.org"), ("To", "b@example.org")],
        [("From", "a@example.org"), ("To", "b@x.org, C <c@x.org>"), ("Cc", "d@x.org")],
        [("From", "a@example.org"), ("To", "b@x.org"), ("Bcc", "hidden@x.org")],
        [
            ("From", "a@example.org"),
            ("To", "b@x.org"),
            ("Resent-Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Resent-From", "r@x.org"),
            ("Resent-To", "rt@x.org"),
            ("Resent-Bcc", "rb@x.org"),
        ],
    ],
)
def test_matches_smtplib_send_message(headers: list[tuple[str, str]]) -> None:
    msg = make(headers)
    sender, rcpts, content = smtplib_envelope(msg)
    envelope = envelope_from_message(msg)
    assert envelope.sender == sender
    assert sorted(envelope.recipients) == sorted(rcpts)
    assert not envelope.international
    assert flatten_message(msg) == content


def test_bcc_is_removed_from_the_content_but_not_the_caller_message() -> None:
    msg = make([("From", "a@x.org"), ("To", "b@x.org"), ("Bcc", "h@x.org")])
    content = flatten_message(msg)
    assert b"Bcc" not in content and b"h@x.org" not in content
    assert msg["Bcc"] == "h@x.org"
    assert envelope_from_message(msg).recipients == ("b@x.org", "h@x.org")
    assert b"\r\n" in content and b"\n" not in content.replace(b"\r\n", b"")


def test_every_occurrence_of_a_field_counts_and_duplicates_go() -> None:
    msg = Message()
    msg["From"] = "a@x.org"
    msg["To"] = "b@x.org"
    msg["To"] = "c@x.org, b@x.org"
    msg["Cc"] = "d@x.org"
    assert envelope_from_message(msg).recipients == ("b@x.org", "c@x.org", "d@x.org")


def test_the_newest_resent_block_wins() -> None:
    raw = (
        b"Resent-Date: Tue, 2 Jan 2024 00:00:00 +0000\r\n"
        b"Resent-From: newest@x.org\r\n"
        b"Resent-To: second@x.org\r\n"
        b"Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        b"Resent-From: older@x.org\r\n"
        b"Received: from somewhere\r\n"
        b"Resent-Date: Sun, 31 Dec 2023 00:00:00 +0000\r\n"
        b"Resent-From: oldest@x.org\r\n"
        b"Resent-To: first@x.org\r\n"
        b"From: author@x.org\r\n"
        b"To: original@x.org\r\n"
        b"\r\nbody\r\n"
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    with pytest.raises(ValueError, match="more than one"):
        smtplib_envelope(msg)  # smtplib gives up; we take the topmost block
    envelope = envelope_from_message(msg)
    assert envelope.sender == "newest@x.org"
    assert envelope.recipients == ("second@x.org",)


def test_resent_sender_is_preferred_over_resent_from() -> None:
    msg = make(
        [
            ("Resent-Sender", "rs@x.org"),
            ("Resent-From", "rf@x.org"),
            ("Resent-Cc", "rc@x.org"),
            ("From", "a@x.org"),
            ("To", "b@x.org"),
        ]
    )
    envelope = envelope_from_message(msg)
    assert (envelope.sender, envelope.recipients) == ("rs@x.org", ("rc@x.org",))


def test_explicit_sender_and_recipients_override_headers() -> None:
    msg = make([("From", "a@x.org"), ("To", "b@x.org")])
    envelope = envelope_from_message(msg, sender="", recipients="z@x.org")
    assert (envelope.sender, envelope.recipients) == ("", ("z@x.org",))
    envelope = envelope_from_message(msg, recipients=["y@x.org", "z@x.org"])
    assert envelope.recipients == ("y@x.org", "z@x.org")


def test_international_addresses_select_utf8_serialisation() -> None:
    msg = make([("From", "J\u00f6rg <j\u00f6rg@x.org>"), ("To", "b@x.org"), ("Subject", "\u00e9")])
    envelope = envelope_from_message(msg)
    assert envelope.international and envelope.sender == "j\u00f6rg@x.org"
    content = flatten_message(msg, utf8=envelope.international)
    assert "From: J\u00f6rg <j\u00f6rg@x.org>".encode() in content
    assert "Subject: \u00e9".encode() in content
    assert b"Subject: =?utf-8?q?=C3=A9?=" in flatten_message(msg)  # RFC 2047 without utf8


def test_compat32_message_with_utf8() -> None:
    msg = Message()
    msg["From"] = "j\u00f6rg@x.org"
    msg["To"] = "b@x.org"
    msg.set_payload("hi\n")
    assert envelope_from_message(msg).international
    assert "j\u00f6rg@x.org".encode() in flatten_message(msg, utf8=True)


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ([("To", "b@x.org")], "no Sender or From"),
        ([("From", "a@x.org")], "no To, Cc or Bcc"),
        ([("From", "a@x.org"), ("To", "undisclosed-recipients:;")], "no To, Cc or Bcc"),
        (
            [("Resent-From", "r@x.org"), ("From", "a@x.org"), ("To", "b@x.org")],
            "no Resent-To",
        ),
    ],
)
def test_missing_addresses_are_clear_errors(headers: list[tuple[str, str]], match: str) -> None:
    msg = make(headers)
    with pytest.raises(LocalProtocolError, match=match):
        envelope_from_message(msg)


def test_not_a_message_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match=r"email\.message\.Message"):
        envelope_from_message(io.BytesIO(b"x"))  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(LocalProtocolError, match=r"email\.message\.Message"):
        flatten_message("From: a\r\n\r\n")  # type: ignore[arg-type]  # wrong on purpose
