"""The message ``smtpproto send`` sends: envelope and ``EmailMessage`` from the arguments.

CLI layer; no SMTP knowledge: the envelope addresses are validated by the engine's own
command constructors (``Mail`` / ``Rcpt`` raise ``LocalProtocolError``, RFC 5321 §4.1.2)
*before* any connection is made, so a typo costs no round trip.

Edge cases: ``--to``/``--cc``/``--bcc`` may be ``Name <addr>`` (the envelope takes the
address, the header the whole text); Bcc recipients are in the envelope only, never in
a header. ``--header`` values replace a header of the same name (``--header "Subject:
x"`` wins over ``--subject``) and must not contain CR, LF or other control characters
(header injection). The body comes from ``--body``, ``--body-file`` or stdin (``-``)
and must be UTF-8 text; binary data belongs in ``--attach``. Every file error is a
one-line usage error naming the path.
"""

from __future__ import annotations

import argparse
import email.errors
import email.policy
import email.utils
import mimetypes
import os
import re
import sys
from dataclasses import dataclass
from email.message import EmailMessage

from ..client_engine.events import Mail, Rcpt
from ..wire.errors import LocalProtocolError
from ..wire.text import escape_text
from .common import CLIError, ExitCode, quote
from .content import MAX_LINE, Content, base64_size, open_content

__all__ = ["DEMO_BODY", "Envelope", "build_message", "envelope_address", "read_body"]

DEMO_SENDER = "newcomer@example.org"
DEMO_RECIPIENT = "friend@example.com"
#: The body when none is given outside the demo (swaks sends "This is a test mailing").
DEFAULT_BODY = "This is a test mailing from smtpproto.\n"
DEMO_SUBJECT = "Hello from smtpproto"
DEMO_BODY = """\
Hello!

This message went through a whole SMTP session: the greeting, EHLO,
STARTTLS, EHLO again, AUTH, then MAIL and RCPT (pipelined when the
server offers PIPELINING) and the content with DATA or BDAT. The
transcript above shows every line; secrets are hidden.

Try next:
  smtpproto send --help
  smtpproto probe HOST[:PORT]
  smtpproto explain 550 5.1.1
  smtpproto serve
"""

# RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except ":".
_FIELD_NAME = re.compile(r"[!-9;-~]+")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope (RFC 5321 §2.3.1): reverse-path and forward-paths."""

    sender: str
    recipients: tuple[str, ...]

    @property
    def international(self) -> bool:
        """Whether an address is not ASCII: the transaction needs SMTPUTF8 (RFC 6531
        §3.4), which only the server's EHLO reply can grant."""
        return not all(address.isascii() for address in (self.sender, *self.recipients))


def envelope_address(value: str) -> str:
    """The address of ``value``: itself, or what is inside ``<...>`` of ``Name <addr>``,
    read by the ``email`` package's RFC 5322 parser. ``email.utils.parseaddr`` read
    ``alice@example.org<bob@example.org>`` as alice before Python 3.13 (the header
    then showing bob) and as nothing since (CVE-2023-27043); a value that is not one
    valid address is returned as given, for the envelope check to refuse."""
    if "<" in value and value.rstrip().endswith(">"):
        header = email.policy.default.header_factory("To", value)
        invalid = any(isinstance(d, email.errors.InvalidHeaderDefect) for d in header.defects)
        if invalid or len(header.addresses) != 1:
            return value
        return str(header.addresses[0].addr_spec)
    return value.strip()


def split_addresses(values: list[str]) -> list[str]:
    """Each value split at its commas, as swaks takes ``--to a@x,b@y``: a comma inside
    a quoted display name or inside ``<...>`` does not split; empty parts are dropped."""
    found: list[str] = []
    for value in values:
        part, quoted, angle = "", False, False
        for char in value:
            if char == '"' and not angle:
                quoted = not quoted
            elif char == "<" and not quoted:
                angle = True
            elif char == ">" and not quoted:
                angle = False
            elif char == "," and not quoted and not angle:
                found.append(part)
                part = ""
                continue
            part += char
        found.append(part)
    return [part.strip() for part in found if part.strip()]


def _check_text(value: str, what: str) -> str:
    """Refuse control characters (CR/LF header injection among them) in ``value``."""
    if not value.isprintable():
        raise CLIError(f"{what} contains a control character: {quote(value)}", ExitCode.USAGE)
    return value


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CLIError(f"cannot read {what} {quote(path)}: {reason}", ExitCode.USAGE) from None


def read_body(args: argparse.Namespace, default: str) -> str:
    """The body text from ``--body``, ``--body-file`` or stdin, else ``default``."""
    if args.body_file is not None and args.body_file != "-":
        data = _read_file(args.body_file, "body file")
    elif args.body_file == "-" or args.body == "-":
        data = sys.stdin.buffer.read()
    elif args.body is not None:
        body = str(args.body)
        bad = next((i for i, ch in enumerate(body) if "\ud800" <= ch <= "\udfff"), -1)
        if bad >= 0:  # undecodable argv octets arrive as lone surrogates (surrogateescape)
            raise CLIError(
                f"--body is not UTF-8 text (an undecodable octet at character {bad}); "
                "send binary data with --attach or --data",
                ExitCode.USAGE,
            )
        return body
    else:
        return default
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        where = "stdin" if args.body_file in (None, "-") else repr(escape_text(args.body_file))
        raise CLIError(
            f"the body from {where} is not UTF-8 text (octet {error.start}); "
            "send binary data with --attach",
            ExitCode.USAGE,
        ) from None


def _check_envelope(envelope: Envelope) -> None:
    """Validate with the engine's constructors; errors become usage errors."""
    try:
        Mail(sender=envelope.sender, smtputf8=envelope.international)
        for recipient in envelope.recipients:
            Rcpt(recipient=recipient)
    except LocalProtocolError as error:
        raise CLIError(f"invalid address: {escape_text(str(error))}", ExitCode.USAGE) from None


def build_message(
    args: argparse.Namespace, *, sender: str, demo: bool, hostname: str
) -> tuple[Envelope, Content]:
    """The envelope and content for ``send``; raises ``CLIError`` (usage) on bad input.

    ``sender`` is the envelope sender to use when ``--from`` is missing; ``demo`` picks
    the demo recipient, subject and body when those are not given. ``--data`` sends a
    file as is; a ``--body-file`` (or ``--body -``) without ``--attach`` is streamed
    after the headers.
    The caller closes the content.
    """
    to = split_addresses(args.to) or ([DEMO_RECIPIENT] if demo else [])
    cc, bcc = split_addresses(args.cc), split_addresses(args.bcc)
    if not (to or cc or bcc):
        raise CLIError("give at least one recipient with --to, --cc or --bcc", ExitCode.USAGE)
    from_header = args.sender if args.sender is not None else sender
    for value in [from_header, *to, *cc, *bcc]:
        _check_text(value, "an address")
    envelope = Envelope(
        envelope_address(from_header),
        tuple(envelope_address(value) for value in [*to, *cc, *bcc]),
    )
    _check_envelope(envelope)
    if args.data is not None:
        return envelope, _data_content(args)
    # A non-ASCII address in a header needs UTF-8 headers (RFC 6532); non-ASCII display
    # names and subjects alone become encoded words (RFC 2047) and need nothing.
    utf8 = not all(envelope_address(part).isascii() for part in [from_header, *to, *cc])
    message = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    message["From"] = from_header
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    date = email.utils.formatdate(localtime=True)
    subject = args.subject
    if subject is None:  # swaks' default, so a test message is recognisable in a mailbox
        subject = DEMO_SUBJECT if demo else f"test {date}"
    message["Subject"] = _check_text(subject, "the subject")
    message["Date"] = date
    domain = envelope.sender.rpartition("@")[2] or hostname
    message["Message-ID"] = email.utils.make_msgid(domain=domain if domain.isascii() else None)
    from .._version import __version__

    message["User-Agent"] = f"smtpproto/{__version__}"
    for header in args.header:
        name, sep, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _FIELD_NAME.fullmatch(name):
            raise CLIError(f"bad --header {quote(header)}: expected 'Name: value'", ExitCode.USAGE)
        _check_text(value, f"header {name}")
        del message[name]
        message[name] = value
    streamed = args.body_file if args.body_file is not None else args.body
    if (args.body_file is not None or streamed == "-") and not args.attach:
        return envelope, _streamed_body(message, streamed)  # a file or stdin: bounded memory
    message.set_content(read_body(args, DEMO_BODY if demo else DEFAULT_BODY))
    for path in args.attach:
        data = _read_file(path, "attachment")
        kind, encoding = mimetypes.guess_type(path)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        message.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=os.path.basename(path)
        )
    data = message.as_bytes()
    return envelope, Content(data, len(data), not data.isascii())


def _data_content(args: argparse.Namespace) -> Content:
    """``--data FILE|-``: the file is the message, sent as is (the SMTP codec still
    makes line ends CRLF and dot-stuffs). A NUL or a line over 998 octets is refused
    now, before connecting (RFC 5321 §4.5.2, §4.5.3.1.6). With ``--no-data-fixup``
    the octets are raw DATA content, NULs and long lines included; only content that
    would end the DATA early is refused now (``content.open_content``)."""
    if args.no_data_fixup:
        file, facts = open_content(args.data, "data file", raw=True)
        return Content(b"", facts.size, facts.eight_bit, file, "8bit", raw=True)
    file, facts = open_content(args.data, "data file")
    problem = None
    if facts.nul:
        problem = "contains a NUL octet"
    elif facts.longest_line > MAX_LINE:
        problem = f"has a line of {facts.longest_line} octets (SMTP allows {MAX_LINE})"
    if problem is not None:
        file.close()
        where = "stdin" if args.data == "-" else repr(escape_text(args.data))
        raise CLIError(f"the data from {where} {problem}", ExitCode.USAGE)
    return Content(b"", facts.size, facts.eight_bit, file, "8bit")


def _streamed_body(message: EmailMessage, path: str) -> Content:
    """``message``'s headers, then the UTF-8 text of ``path`` (``-``: stdin, spooled)
    streamed in the transfer encoding its scan allows
    (``content.ContentFacts.transfer_encoding``)."""
    file, facts = open_content(path, "body file")
    if not facts.utf8:
        file.close()
        where = "stdin" if path == "-" else quote(path)
        raise CLIError(
            f"the body from {where} is not UTF-8 text; send binary data with --attach",
            ExitCode.USAGE,
        )
    encoding = facts.transfer_encoding
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = 'text/plain; charset="utf-8"'
    message["Content-Transfer-Encoding"] = encoding
    message.set_payload("")
    head = message.as_bytes()
    size = facts.size if encoding != "base64" else base64_size(facts.size)
    return Content(head, len(head) + size, facts.eight_bit and encoding == "8bit", file, encoding)
