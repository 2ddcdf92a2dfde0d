"""Envelope injection through a header value is refused (issue 11, security item 1).

A compat32 ``Message`` stores any header value; ``b@x\\r\\nRCPT TO:<evil@y>`` in ``To``
used to become two recipients and an injected header line. ``drivers.envelope``'s
``check_headers`` now refuses, with ``LocalProtocolError`` and before anything is derived
from the headers, every header (of the message and of every sub-part) whose name is not
RFC 5322 ``ftext`` or whose value holds NUL or a CR/LF that is not a fold — for every
stdlib message class and policy. ``set_raw`` stores a value the way the ``email`` parser
does, past the ``EmailPolicy`` check that refuses CR/LF on ``msg[name] = value``.
The end-to-end side (nothing reaches a real server, through the three adapters) is in
``tests/adapters/test_header_injection_e2e.py``.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.header import Header
from email.message import EmailMessage, Message, MIMEPart
from email.mime.application import MIMEApplication
from email.mime.audio import MIMEAudio
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.policy import Policy

import pytest

from smtpproto.drivers.envelope import check_headers, envelope_from_message, flatten_message
from smtpproto.wire.errors import LocalProtocolError

POLICIES: dict[str, Policy] = {
    "compat32": email.policy.compat32,
    "default": email.policy.default,
    "SMTP": email.policy.SMTP,
    "SMTPUTF8": email.policy.SMTPUTF8,
    "HTTP": email.policy.HTTP,
    "strict": email.policy.strict,
    "compat32-strict": email.policy.compat32.clone(raise_on_defect=True),
    "default-crlf": email.policy.default.clone(linesep="\r\n"),
    "default-cr": email.policy.default.clone(linesep="\r"),
    "compat32-crlf": email.policy.compat32.clone(linesep="\r\n"),
    "refold-all": email.policy.default.clone(refold_source="all"),
    "refold-none": email.policy.default.clone(refold_source="none"),
    "no-max-line": email.policy.default.clone(max_line_length=None),
    "utf8": email.policy.default.clone(utf8=True),
}

#: Every stdlib message class, built with a policy.
CLASSES: dict[str, Callable[[Policy], Message]] = {
    "Message": lambda policy: Message(policy=policy),
    "EmailMessage": lambda policy: EmailMessage(policy=policy),
    "MIMEText": lambda policy: MIMEText("hello\n", policy=policy),
    "MIMEMultipart": lambda policy: MIMEMultipart(policy=policy),
    "MIMEApplication": lambda policy: MIMEApplication(b"\x00\x01", policy=policy),
    "MIMENonMultipart": lambda policy: MIMENonMultipart("text", "plain", policy=policy),
    "MIMEMessage": lambda policy: MIMEMessage(Message(policy=policy), policy=policy),
    "MIMEPart": lambda policy: MIMEPart(policy=policy),
    "MIMEBase": lambda policy: MIMEBase("application", "x-test", policy=policy),
    "MIMEImage": lambda policy: MIMEImage(b"\x89PNG\r\n", _subtype="png", policy=policy),
    "MIMEAudio": lambda policy: MIMEAudio(b"RIFF", _subtype="wav", policy=policy),
}

#: Header values with a CR or LF that is not a fold, or a NUL.
BAD_VALUES = [
    "b@example.org\r\nRCPT TO:<x@evil.example>",
    "b@example.org\nRCPT TO:<x@evil.example>",
    "b@example.org\rRCPT TO:<x@evil.example>",
    "b@example.org\r\n\r\nbody injected",
    "b@example.org\r\n",  # a break at the end: the generator's CRLF makes an empty line
    "b@example.org\n",
    "b@example.org\r",
    "b@example.org,\r\n \r\n c@example.org",  # a fold line of white space alone
    "b@example.org,\r\n\t",
    "b@example.org,\r\n c@example.org\r\nBcc: x@evil.example",  # a good fold, then a bad
    "b@example.org\n\r c@example.org",  # LF then CR: the CR is no WSP
    "\r\nX-Injected: yes",
    "b@example.org\x00",
    "b@\x00example.org",
]

#: Header values with valid folds (a line break, then SP or HTAB, then text).
GOOD_FOLDS = [
    "b@example.org,\r\n c@example.org",
    "b@example.org,\r\n\tc@example.org",
    "b@example.org,\n c@example.org",  # a parsed LF-only file keeps LF folds
    "b@example.org,\r c@example.org",
    "b@example.org,\r\n   \t c@example.org",
    "b@example.org,\r\n c@example.org,\r\n d@example.org",
]

ENVELOPE_HEADERS = [
    "From",
    "Sender",
    "To",
    "Cc",
    "Bcc",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Bcc",
]


def make(cls: str, policy: str) -> Message:
    msg = CLASSES[cls](POLICIES[policy])
    msg.set_raw("From", "a@example.org")
    msg.set_raw("To", "b@example.org")
    return msg


def refused(msg: Message) -> None:
    """Every entry point refuses ``msg`` with ``LocalProtocolError``."""
    for call in (check_headers, envelope_from_message, flatten_message):
        with pytest.raises(LocalProtocolError, match="header"):
            call(msg)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("cls", sorted(CLASSES))
@pytest.mark.parametrize("name", [*ENVELOPE_HEADERS, "Subject", "X-Custom", "Content-Type"])
def test_injection_in_any_header_any_class_any_policy(cls: str, policy: str, name: str) -> None:
    msg = make(cls, policy)
    msg.set_raw(name, "b@example.org\r\nRCPT TO:<x@evil.example>")
    refused(msg)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("value", BAD_VALUES)
def test_every_bad_line_break_is_refused(policy: str, value: str) -> None:
    msg = make("Message", policy)
    msg.set_raw("Cc", value)
    refused(msg)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("value", GOOD_FOLDS)
def test_a_fold_is_accepted_and_adds_no_recipient(policy: str, value: str) -> None:
    msg = make("Message", policy)
    msg.set_raw("Cc", value)
    check_headers(msg)
    recipients = envelope_from_message(msg).recipients
    assert recipients[0] == "b@example.org"
    assert set(recipients) <= {"b@example.org", "c@example.org", "d@example.org"}
    content = flatten_message(msg)
    headers = content.split(b"\r\n\r\n", 1)[0]
    # After DATA's line-end normalisation every line of the header section is a field
    # or a continuation: nothing was injected.
    for line in headers.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        assert line[:1] in (b" ", b"\t") or b":" in line, content


def test_the_issue_example_no_longer_adds_a_recipient() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.org\r\nRCPT TO:<x@evil.example>"  # compat32 stores it as is
    with pytest.raises(LocalProtocolError, match="not a fold"):
        envelope_from_message(msg)
    with pytest.raises(LocalProtocolError, match="'To'"):
        flatten_message(msg)


def test_a_compat32_header_object_is_checked_too() -> None:
    msg = Message()
    msg["From"] = "a@example.org"
    msg["To"] = Header("b@example.org\r\nRCPT TO:<x@evil.example>")  # type: ignore[assignment]
    refused(msg)


@pytest.mark.parametrize(
    "name", ["To\r\nRCPT TO:<x@evil.example>", "Bad Name", "X:Y", "", "T\u00f6", "X\x00", "X\t"]
)
def test_a_header_name_outside_ftext_is_refused(name: str) -> None:
    msg = make("Message", "compat32")
    msg.set_raw(name, "value")
    with pytest.raises(LocalProtocolError, match="name"):
        check_headers(msg)
    with pytest.raises(LocalProtocolError, match="name"):
        flatten_message(msg)


def test_every_ftext_character_is_a_valid_name() -> None:
    name = "".join(chr(c) for c in range(33, 127) if chr(c) != ":")
    msg = make("Message", "compat32")
    msg.set_raw(name, "value")
    check_headers(msg)
    assert b"\r\n" + name.encode() + b": " in flatten_message(msg)


@pytest.mark.parametrize("policy", ["compat32", "default", "SMTP"])
def test_a_header_in_a_sub_part_is_checked(policy: str) -> None:
    outer = MIMEMultipart(policy=POLICIES[policy])
    outer["From"] = "a@example.org"
    outer["To"] = "b@example.org"
    inner = MIMEMultipart(policy=POLICIES[policy])
    leaf = MIMEText("hello\n", policy=POLICIES[policy])
    leaf.set_raw("Content-Description", "x\r\n\r\n--boundary\r\nX-Injected: 1")
    inner.attach(MIMEText("first\n", policy=POLICIES[policy]))
    inner.attach(leaf)
    outer.attach(inner)
    with pytest.raises(LocalProtocolError, match="MIME part 3"):
        envelope_from_message(outer)
    refused(outer)


def test_a_header_in_an_attached_message_is_checked() -> None:
    attached = Message()
    attached["Subject"] = "inner"
    attached.set_raw("To", "c@example.org\nRCPT TO:<x@evil.example>")
    msg = MIMEMessage(attached)
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.org"
    refused(msg)


def test_an_embedded_boundary_parameter_is_refused() -> None:
    msg = MIMEMultipart(boundary="b\r\n\r\nX-Injected: 1")
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.org"
    msg.attach(MIMEText("x\n"))
    refused(msg)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_parsed_message_with_folds_still_goes(policy: str) -> None:
    source = (
        "From: a@example.org\nTo: b@example.org,\n c@example.org\nSubject: a\n long one\n\nhi\n"
    )
    msg = email.message_from_string(source, policy=POLICIES[policy])
    assert envelope_from_message(msg).recipients == ("b@example.org", "c@example.org")
    assert b"c@example.org\r\nSubject: a" in flatten_message(msg)  # folded or refolded


def test_a_policy_refolded_long_header_is_accepted() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["To"] = ", ".join(f"r{n}@example.org" for n in range(40))
    msg["Subject"] = "word " * 60
    content = flatten_message(msg)
    assert b"\r\n " in content  # the policy folded it
    assert len(envelope_from_message(msg).recipients) == 40


def test_the_caller_message_is_not_changed_by_a_refusal() -> None:
    msg = make("Message", "compat32")
    msg.set_raw("Cc", "c@example.org\r\nX: y")
    before = list(msg.raw_items())
    refused(msg)
    assert list(msg.raw_items()) == before


EMAIL_POLICIES = [name for name, policy in POLICIES.items() if "compat32" not in name]


@pytest.mark.parametrize("policy", EMAIL_POLICIES)
@pytest.mark.parametrize(
    "header",
    [
        "Subject: =?utf-8?q?hi=0D=0ABcc:_x@evil.example=0D=0A=0D=0Abody?= and a long tail",
        "Subject: =?utf-8?b?aGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?=",  # base64 of the same
        "X-Note: =?utf-8?q?a=0Ab?=",  # a bare LF
        "To: =?utf-8?q?b@x.org=0D=0ARCPT_TO:<x@evil.example>?=",
    ],
)
def test_an_encoded_word_hiding_a_line_break_is_refused(policy: str, header: str) -> None:
    """An ``EmailPolicy`` decodes RFC 2047 encoded words and, when it refolds the
    header, writes the decoded CR LF out raw (CPython before 3.13): the decoded value
    is checked too. An address header that cannot be read back is refused, not a
    ``ValueError`` from deep in ``email``."""
    source = f"From: a@example.org\nTo: b@example.org\n{header}\n\nbody\n"
    msg = email.message_from_string(source, policy=POLICIES[policy])
    refused(msg)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_an_encoded_word_with_a_fold_or_none_goes(policy: str) -> None:
    source = (
        "From: a@example.org\nTo: b@example.org\n"
        "Subject: =?utf-8?q?caf=C3=A9_hi=0D=0A_folded?= and some more words\n\nbody\n"
    )
    msg = email.message_from_string(source, policy=POLICIES[policy])
    content = flatten_message(msg)
    headers = content.split(b"\r\n\r\n", 1)[0]
    for line in headers.split(b"\r\n"):
        assert line[:1] in (b" ", b"\t") or b":" in line, content


def test_compat32_keeps_an_encoded_word_encoded() -> None:
    """compat32 never decodes an encoded word, so one hiding CR LF stays encoded on the
    wire: nothing is injected, and the message goes."""
    source = "From: a@example.org\nTo: b@example.org\nSubject: =?utf-8?q?hi=0D=0ABcc:_x?=\n\nb\n"
    msg = email.message_from_string(source, policy=email.policy.compat32)
    assert b"Subject: =?utf-8?q?hi=0D=0ABcc:_x?=\r\n" in flatten_message(msg)


#: The line boundaries of ``str.splitlines`` other than CR and LF.
OTHER_LINE_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("separator", OTHER_LINE_BREAKS)
@pytest.mark.parametrize("name", ["To", "Subject", "X-Custom"])
def test_every_other_line_boundary_is_refused(policy: str, separator: str, name: str) -> None:
    """A compat32 message sent with ``utf8=True`` (an SMTPUTF8 envelope) had each of these
    written out as a CRLF: ``Subject: hi<U+2028>Bcc: x`` became a real ``Bcc:`` line, and
    ``To: b@x<U+2028>RCPT TO:<evil@y>`` an extra recipient."""
    msg = make("Message", policy)
    msg.set_raw(name, f"b@example.org{separator}Bcc: x@evil.example")
    refused(msg)
    with pytest.raises(LocalProtocolError, match=f"U\\+{ord(separator):04X}"):
        flatten_message(msg, utf8=True)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_an_encoded_word_hiding_a_line_separator_is_refused(policy: str) -> None:
    msg = make("Message", policy)
    msg.set_raw("Subject", "=?utf-8?q?hi=E2=80=A8Bcc:_x@evil.example?=")
    if isinstance(msg.policy, email.policy.EmailPolicy):  # it decodes encoded words
        refused(msg)
    else:  # compat32 keeps the encoded word as text: nothing to split
        assert b"=?utf-8?q?hi=E2=80=A8" in flatten_message(msg, utf8=True)
