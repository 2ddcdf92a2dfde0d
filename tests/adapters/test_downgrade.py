"""send_message to a server without 8BITMIME re-encodes instead of refusing (issue 11
item 10; RFC 6152 §3, RFC 2045 §6.7/§6.8, RFC 2047).

Against Postfix smtp-sink with 8BITMIME switched off, through every adapter: what the
server received is 7-bit, carries no BODY=8BITMIME, and decodes to the original text,
headers and attachment. With 8BITMIME the message goes as it is.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage, Message

import pytest

from interop.peers import SinkPeer
from smtpproto.drivers.downgrade import seven_bit_copy
from smtpproto.drivers.envelope import flatten_message

from .facade import SyncClient

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
TEXT = "h\u00e9llo w\u00f6rld\n.a dot line\ntrailing space \nend\n"
SUBJECT = "gr\u00fc\u00dfe \u2014 caf\u00e9"
BLOB = bytes(range(256))


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "a@example.test"
    message["To"] = "b@example.test"
    message["Subject"] = SUBJECT
    message.set_content(TEXT)
    message.add_attachment(BLOB, maintype="application", subtype="octet-stream", filename="x")
    return message


def _parse(content: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.interop
def test_8bit_message_is_downgraded_for_a_server_without_8bitmime(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    sink = smtp_sink_factory(eightbitmime=False)
    message = _message()
    before = message.as_bytes()
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        assert client.capabilities is not None and not client.capabilities.eightbitmime
        result = client.send_message(message)
        assert result.delivered == ("b@example.test",)
        assert client.session.usable
    [received] = sink.wait_for_messages(1)
    assert received.content.isascii()
    assert not any("BODY" in option for option in received.mail_options)
    parsed = _parse(received.content)
    assert parsed["Subject"] == SUBJECT
    text, attachment = parsed.iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content() == TEXT
    assert attachment.get_content() == BLOB
    assert message.as_bytes() == before  # the caller's message is untouched


@pytest.mark.interop
def test_send_many_downgrades_an_8bit_message_as_send_message_does(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    # send_many took the message to its DATA check without the downgrade, so the
    # message send_message delivers came back as "8-bit ... Refused before MAIL".
    sink = smtp_sink_factory(eightbitmime=False)
    message = _message()
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        [outcome] = client.send_many([message])
        assert not isinstance(outcome, BaseException), outcome
        assert outcome.delivered == ("b@example.test",)
    [received] = sink.wait_for_messages(1)
    assert received.content.isascii()
    assert not any("BODY" in option for option in received.mail_options)
    parsed = _parse(received.content)
    assert parsed["Subject"] == SUBJECT
    text, attachment = parsed.iter_parts()
    assert text.get_content() == TEXT
    assert attachment.get_content() == BLOB


@pytest.mark.interop
@pytest.mark.parametrize("eightbitmime", [True, False])
def test_a_utf8_policy_message_to_ascii_addresses_gets_encoded_words(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer], eightbitmime: bool
) -> None:
    # A message made with email.policy.SMTPUTF8 (utf8=True) whose addresses are ASCII
    # had its non-ASCII headers sent as raw UTF-8 without the SMTPUTF8 parameter (RFC
    # 6531 §3.4, RFC 6532 §3) where 8BITMIME was offered, and was refused as 8-bit
    # where it was not (the downgrade kept the policy's utf8=True).
    sink = smtp_sink_factory(eightbitmime=eightbitmime)
    message = EmailMessage(policy=email.policy.SMTPUTF8)
    message["From"] = "J\u00f6rg <a@example.test>"
    message["To"] = "b@example.test"
    message["Subject"] = SUBJECT
    message.set_content("plain ascii body\n")
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        result = client.send_message(message)
        assert result.delivered == ("b@example.test",)
    [received] = sink.wait_for_messages(1)
    assert received.content.isascii()
    assert not any(
        option.upper().startswith(("SMTPUTF8", "BODY")) for option in received.mail_options
    )
    parsed = _parse(received.content)
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"] == "J\u00f6rg <a@example.test>"


@pytest.mark.interop
def test_compat32_8bit_payload_is_downgraded(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    sink = smtp_sink_factory(eightbitmime=False)
    message = Message()
    message["From"] = "a@example.test"
    message["To"] = "b@example.test"
    message["Subject"] = "plain"
    message.set_payload(b"caf\xc3\xa9\r\nna\xc3\xafve\r\n")
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        client.send_message(message)
    [received] = sink.wait_for_messages(1)
    assert received.content.isascii()
    parsed = email.message_from_bytes(received.content)
    assert parsed.get_payload(decode=True).replace(b"\r\n", b"\n") == b"caf\xc3\xa9\nna\xc3\xafve\n"


@pytest.mark.interop
def test_8bitmime_server_gets_the_message_as_it_is(
    make_client: MakeClient, smtp_sink: SinkPeer
) -> None:
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        client.send_message(_message())
    [received] = smtp_sink.wait_for_messages(1)
    assert not received.content.isascii()  # 8-bit text as it is
    assert "BODY=8BITMIME" in received.mail_options
    assert _parse(received.content)["Subject"] == SUBJECT


# -- seven_bit_copy on its own -----------------------------------------------------------


def test_seven_bit_copy_leaves_7bit_parts_alone() -> None:
    message = EmailMessage()
    message["Subject"] = "ascii"
    message.set_content("plain ascii\n")
    assert flatten_message(seven_bit_copy(message)) == flatten_message(message)
    qp = EmailMessage()
    qp.set_content("h\u00e9llo\n", cte="quoted-printable")
    assert flatten_message(seven_bit_copy(qp)) == flatten_message(qp)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n", b"\r"])
def test_seven_bit_copy_keeps_text_line_breaks(line_end: bytes) -> None:
    message = Message()
    message["Content-Type"] = 'text/plain; charset="utf-8"'
    message.set_payload(b"caf\xc3\xa9" + line_end + b"second" + line_end)
    out = flatten_message(seven_bit_copy(message))
    assert out.isascii() and b"=0D" not in out and b"=0A" not in out
    parsed = email.message_from_bytes(out)
    assert parsed.get_payload(decode=True).replace(b"\r\n", b"\n") == b"caf\xc3\xa9\nsecond\n"


def test_seven_bit_copy_of_a_nested_message() -> None:
    inner = _message()
    outer = EmailMessage()
    outer["Subject"] = "fwd"
    outer.set_content("see attached\n")
    outer.add_attachment(inner)
    out = flatten_message(seven_bit_copy(outer))
    assert out.isascii()
    forwarded = _parse(out).get_payload()[1].get_payload()[0]
    assert forwarded["Subject"] == SUBJECT
    text, attachment = forwarded.iter_parts()
    assert text.get_content().replace("\r\n", "\n") == TEXT  # CRLF on the wire
    assert attachment.get_content() == BLOB
