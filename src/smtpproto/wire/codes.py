"""What SMTP reply codes and RFC 3463 enhanced status codes mean, and what to do about them.

Theory of operation
-------------------
Two tables kept as data: ``_BASIC`` maps a three-digit reply code to a frozen
``ReplyCodeInfo`` (class, meaning, where it is defined, and practical advice for the
sender); ``_ENHANCED`` maps ``(subject, detail)`` of an enhanced status code to its
detail text and source, with ``_SUBJECTS`` giving each subject's meaning. Lookups never
fail for a well-formed code: an unknown reply code gets a generic entry built from its
first digit (the class) and second digit (the category, RFC 5321 §4.2.1); an unknown
enhanced detail falls back to the subject's ``X.Y.0`` meaning and says so.

Sources: RFC 5321 §4.2.2-4.2.3 (basic codes), RFC 3207 (STARTTLS), RFC 4954 (AUTH),
RFC 1870 (SIZE), RFC 3030 (CHUNKING/BDAT), RFC 3461 (DSN), RFC 6531 (SMTPUTF8),
RFC 7504 (521/556), RFC 2033 (LMTP: one reply per recipient after DATA, same codes),
RFC 3463 and the IANA registry of RFC 5248 with later registrations (RFC 3886, 4468,
4954, 6531, 6710, 7293, 7372, 7505, 8617, 8689).

**Servers use codes differently.** Many reply 550 for policy, 554 for "mailbox
unknown", 451 for greylisting, 452 or 552 for too many recipients. The advice here is
a hint for a program or a person; the server's text and enhanced code say more.

This module imports nothing from the package: it sits below ``reply``, whose
``Reply.explain`` calls ``explain`` and quotes the server's text; ``explain_reply``
calls back ``reply.explain``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class StatusTriple(Protocol):
    """An enhanced status code as three integers (``EnhancedStatusCode`` is one)."""

    def __iter__(self) -> Iterator[int]: ...


class ExplainableReply(Protocol):
    """What :func:`explain_reply` needs of a reply: ``Reply.explain``."""

    def explain(self, command: str | None = None) -> str: ...


__all__ = [
    "EnhancedCodeInfo",
    "ReplyCodeInfo",
    "describe_code",
    "describe_enhanced",
    "explain",
    "explain_reply",
    "known_codes",
    "known_enhanced",
]

_HINT = "Servers use codes differently, so this advice is a hint."


@dataclass(frozen=True, slots=True)
class ReplyCodeInfo:
    """What one basic reply code means and what the sender should do.

    ``reply_class`` is the first digit (2-5; ``smtpproto.ReplyClass(info.reply_class)``
    gives the enum). ``source`` names the RFC and section. ``generic`` is true for codes
    no RFC assigns: the entry is then derived from the first two digits (§4.2.1).
    """

    code: int
    reply_class: int
    meaning: str
    source: str
    advice: str
    generic: bool = False


@dataclass(frozen=True, slots=True)
class EnhancedCodeInfo:
    """What one RFC 3463 enhanced status code ``class.subject.detail`` means.

    ``fallback`` is true when the detail is not registered and ``detail_text`` is the
    subject's ``X.Y.0`` meaning (or, for an unregistered subject, a generic text).
    """

    class_: int
    subject: int
    detail: int
    class_text: str
    subject_text: str
    detail_text: str
    source: str
    fallback: bool = False

    @property
    def code(self) -> str:
        """The code as written on the wire, e.g. ``"5.1.1"``."""
        return f"{self.class_}.{self.subject}.{self.detail}"


_RETRY = "Retry later with back-off (minutes, growing), keeping the message queued."
_NO_RETRY = "Do not retry as is: change the command, address or message first."


def _b(code: int, meaning: str, source: str, advice: str) -> tuple[int, ReplyCodeInfo]:
    return code, ReplyCodeInfo(code, code // 100, meaning, source, advice)


# One entry per code reads better than the formatter's one-argument-per-line layout.
# fmt: off
_BASIC: dict[int, ReplyCodeInfo] = dict(
    [
        _b(211, "System status, or system help reply",
           "RFC 5321 §4.2.2",
           "Informational; nothing to do."),
        _b(214, "Help message for a human user",
           "RFC 5321 §4.2.2",
           "Informational; show it to a person if useful."),
        _b(220, "Service ready (greeting); or, after STARTTLS, ready to start TLS",
           "RFC 5321 §4.2.2; RFC 3207 §4",
           "Go on: send EHLO after the greeting; after STARTTLS, start the TLS handshake now and "
           "send EHLO again once it completes."),
        _b(221, "Service closing transmission channel",
           "RFC 5321 §4.2.2",
           "The server is closing after QUIT (or on its own): close the connection."),
        _b(235, "Authentication succeeded",
           "RFC 4954 §6",
           "Logged in; continue with MAIL FROM."),
        _b(250, "Requested mail action okay, completed",
           "RFC 5321 §4.2.2",
           "Success; send the next command. After the final '.' the message is accepted (LMTP, RFC "
           "2033: one 250 per accepted recipient)."),
        _b(251, "User not local; will forward",
           "RFC 5321 §3.4, §4.2.2",
           "Success: the server takes the message for forwarding."),
        _b(252, "Cannot VRFY user, but will accept message and attempt delivery",
           "RFC 5321 §3.5.3, §4.2.2",
           "VRFY gave no answer; the address may still work, so send to it normally."),
        _b(334, "Server challenge: send the next AUTH response",
           "RFC 4954 §4",
           "Send the SASL response (base64) or '*' to cancel."),
        _b(354, "Start mail input; end with <CRLF>.<CRLF>",
           "RFC 5321 §4.2.2",
           "Send the message content, dot-stuffed, then '.' on a line of its own."),
        _b(421, "Service not available, closing transmission channel",
           "RFC 5321 §4.2.2",
           "The server is closing the connection (shutdown, overload, too many connections): treat "
           "the open transaction as failed temporarily and reconnect later with back-off."),
        _b(432, "A password transition is needed",
           "RFC 4954 §6",
           "Log in once with a plaintext mechanism over TLS (or as the provider instructs) to "
           "finish the password transition, then retry."),
        _b(450, "Requested mail action not taken: mailbox unavailable (busy, or temporarily "
           "blocked for policy reasons, e.g. greylisting)",
           "RFC 5321 §4.2.2",
           "Retry later with back-off (minutes, growing), keeping the message queued. Greylisting "
           "usually passes on a retry after a few minutes."),
        _b(451, "Requested action aborted: local error in processing",
           "RFC 5321 §4.2.2",
           "Retry later with back-off (minutes, growing), keeping the message queued. Often "
           "greylisting or a server-side problem (DNS, content scanner)."),
        _b(452, "Requested action not taken: insufficient system storage (on RCPT: too many "
           "recipients)",
           "RFC 5321 §4.2.2, §4.5.3.1.10; RFC 1870 §6",
           "Temporary. On RCPT it means too many recipients (RFC 5321 §4.5.3.1.10 prefers 452 "
           "here; older servers send 552): keep the recipients accepted so far and send the rest "
           "in a later transaction. Otherwise the server is short of storage (552 is the "
           "permanent, too-big-for-the-limit case): retry later with back-off."),
        _b(454, "TLS not available due to temporary reason; or temporary authentication failure",
           "RFC 3207 §4; RFC 4954 §6",
           "Retry later with back-off. If TLS is required by your policy, do not fall back to "
           "cleartext."),
        _b(455, "Server unable to accommodate parameters",
           "RFC 5321 §4.2.2, §4.2.3",
           "The MAIL/RCPT parameters cannot be honoured now: retry later, or without the optional "
           "parameter."),
        _b(500, "Syntax error, command unrecognized (also: command line too long; RFC 4954: AUTH "
           "line too long)",
           "RFC 5321 §4.2.2; RFC 4954 §4",
           "The server did not understand the command: check the extension was offered in EHLO and "
           "that the line is within limits. Do not retry as is: change the command, address or "
           "message first."),
        _b(501, "Syntax error in parameters or arguments",
           "RFC 5321 §4.2.2; RFC 3207 §4",
           "Fix the command's arguments (address syntax, parameters). Do not retry as is: change "
           "the command, address or message first."),
        _b(502, "Command not implemented",
           "RFC 5321 §4.2.2",
           "The server lacks this command: use an alternative (HELO instead of EHLO, DATA instead "
           "of BDAT) or skip it."),
        _b(503, "Bad sequence of commands",
           "RFC 5321 §4.2.2",
           "Commands came in the wrong order (e.g. RCPT before MAIL, or AUTH needed first): this "
           "is a client bug or a missing login; reset with RSET."),
        _b(504, "Command parameter not implemented (RFC 4954: unrecognized authentication type)",
           "RFC 5321 §4.2.2; RFC 4954 §4",
           "Drop the unsupported parameter or choose a mechanism from the EHLO list."),
        _b(521, "Host does not accept mail",
           "RFC 7504 §3",
           "This server never accepts mail: do not retry; the address is undeliverable here."),
        _b(530, "Must issue STARTTLS first, or authentication required",
           "RFC 3207 §4; RFC 4954 §6",
           "Start TLS and/or log in (AUTH), then send the command again."),
        _b(534, "Authentication mechanism is too weak",
           "RFC 4954 §6",
           "Choose a stronger mechanism, or start TLS first."),
        _b(535, "Authentication credentials invalid",
           "RFC 4954 §6",
           "Check the username and password (or token); do not retry with the same credentials — "
           "repeated failures can lock the account."),
        _b(538, "Encryption required for requested authentication mechanism",
           "RFC 4954 §6",
           "Start TLS, then authenticate again."),
        _b(541, "Message rejected by a recipient's policy or spam filter (no RFC; used by "
           "filtering appliances)",
           "vendor usage, not an RFC",
           "Policy or spam rejection: do not resend unchanged; check the sender's reputation, "
           "SPF/DKIM/DMARC and the content, or contact the recipient's postmaster."),
        _b(550, "Requested action not taken: mailbox unavailable (not found, no access, or "
           "rejected for policy reasons)",
           "RFC 5321 §4.2.2; RFC 6531 §3.5",
           "Permanent: on RCPT the address is bad — drop or fix it (repeated sends to bad "
           "addresses harm sender reputation); on MAIL or after DATA it is usually a policy or "
           "spam rejection. Do not retry as is: change the command, address or message first."),
        _b(551, "User not local; please try another path",
           "RFC 5321 §3.4, §4.2.2",
           "The recipient is not served here: update the address from the server's text if it "
           "gives one; do not retry here."),
        _b(552, "Requested mail action aborted: exceeded storage allocation (message too big; "
           "historically also too many recipients)",
           "RFC 5321 §4.2.2, §4.5.3.1.10; RFC 1870 §6; RFC 3030",
           "After DATA/BDAT or on MAIL SIZE=: the message is too big — shrink it or send a link. "
           "On RCPT: treat as too many recipients (§4.5.3.1.10) and send the rest in another "
           "transaction."),
        _b(553, "Requested action not taken: mailbox name not allowed (bad syntax; RFC 6531: "
           "non-ASCII address not permitted)",
           "RFC 5321 §4.2.2; RFC 6531 §3.5",
           "The address is refused as written: fix or drop it (non-ASCII addresses need SMTPUTF8). "
           "Repeated sends to bad addresses harm sender reputation."),
        _b(554, "Transaction failed (at the greeting: no SMTP service here)",
           "RFC 5321 §4.2.2, §3.1",
           "Permanent, usually a policy or spam rejection (blocklisted IP, content filter): do not "
           "resend unchanged; investigate reputation and content. At the greeting: this server "
           "will not talk to you — quit."),
        _b(555, "MAIL FROM/RCPT TO parameters not recognized or not implemented",
           "RFC 5321 §4.2.3; RFC 3461 §4",
           "Remove parameters the server did not advertise in EHLO (SIZE, DSN's "
           "NOTIFY/RET/ENVID/ORCPT, SMTPUTF8, BODY) and retry."),
        _b(556, "Domain does not accept mail",
           "RFC 7504 §4; RFC 7505 §4.1",
           "The recipient's domain accepts no mail (e.g. null MX): drop the address."),
    ]
)
# fmt: on

_CATEGORIES = {
    0: "syntax",
    1: "information",
    2: "connections",
    3: "unspecified",
    4: "unspecified",
    5: "mail system",
}

_CLASS_TEXT = {
    2: "success",
    3: "intermediate",
    4: "transient failure",
    5: "permanent failure",
}

_CLASS_ADVICE = {
    2: "The command succeeded; go on.",
    3: "The server waits for more: send the next piece (content or AUTH response).",
    4: _RETRY,
    5: _NO_RETRY,
}


def describe_code(code: int) -> ReplyCodeInfo:
    """Describe a basic reply code; codes no RFC assigns get a generic entry.

    The generic entry comes from the first digit (the class) and the second digit (the
    category, RFC 5321 §4.2.1: x0z syntax, x1z information, x2z connections, x3z/x4z
    unspecified, x5z mail system; 6-9 are unassigned). Raises ``ValueError`` for a code
    outside 200-599 or not an int.
    """
    if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
        raise ValueError(f"reply code must be an int from 200 to 599, got {code!r}")
    known = _BASIC.get(code)
    if known is not None:
        return known
    first, second = code // 100, code // 10 % 10
    category = _CATEGORIES.get(second, "unassigned category")
    meaning = f"Unassigned {_CLASS_TEXT[first]} reply ({category})"
    return ReplyCodeInfo(code, first, meaning, "RFC 5321 §4.2.1", _CLASS_ADVICE[first], True)


def known_codes() -> tuple[int, ...]:
    """Every basic reply code with an entry of its own, ascending."""
    return tuple(sorted(_BASIC))


# -- enhanced status codes ---------------------------------------------------------------

# RFC 3463 §3.1-3.8 define one subject each, in order.
_SUBJECTS: dict[int, str] = {
    0: "Other or undefined status",
    1: "Addressing status",
    2: "Mailbox status",
    3: "Mail system status",
    4: "Network and routing status",
    5: "Mail delivery protocol status",
    6: "Message content or media status",
    7: "Security or policy status",
}

_ENHANCED: dict[tuple[int, int], tuple[str, str]] = {
    (0, 0): ("Other undefined status", "RFC 3463 §3.1"),
    (1, 0): ("Other address status", "RFC 3463 §3.2"),
    (1, 1): ("Bad destination mailbox address", "RFC 3463 §3.2"),
    (1, 2): ("Bad destination system address", "RFC 3463 §3.2"),
    (1, 3): ("Bad destination mailbox address syntax", "RFC 3463 §3.2"),
    (1, 4): ("Destination mailbox address ambiguous", "RFC 3463 §3.2"),
    (1, 5): ("Destination address valid", "RFC 3463 §3.2"),
    (1, 6): ("Destination mailbox has moved, no forwarding address", "RFC 3463 §3.2"),
    (1, 7): ("Bad sender's mailbox address syntax", "RFC 3463 §3.2"),
    (1, 8): ("Bad sender's system address", "RFC 3463 §3.2"),
    (1, 9): ("Message relayed to non-compliant mailer", "RFC 3886"),
    (1, 10): ("Recipient address has null MX", "RFC 7505 §4.1"),
    (2, 0): ("Other or undefined mailbox status", "RFC 3463 §3.3"),
    (2, 1): ("Mailbox disabled, not accepting messages", "RFC 3463 §3.3"),
    (2, 2): ("Mailbox full", "RFC 3463 §3.3"),
    (2, 3): ("Message length exceeds administrative limit", "RFC 3463 §3.3"),
    (2, 4): ("Mailing list expansion problem", "RFC 3463 §3.3"),
    (3, 0): ("Other or undefined mail system status", "RFC 3463 §3.4"),
    (3, 1): ("Mail system full", "RFC 3463 §3.4"),
    (3, 2): ("System not accepting network messages", "RFC 3463 §3.4"),
    (3, 3): ("System not capable of selected features", "RFC 3463 §3.4"),
    (3, 4): ("Message too big for system", "RFC 3463 §3.4"),
    (3, 5): ("System incorrectly configured", "RFC 3463 §3.4"),
    (3, 6): ("Requested priority was changed", "RFC 6710"),
    (4, 0): ("Other or undefined network or routing status", "RFC 3463 §3.5"),
    (4, 1): ("No answer from host", "RFC 3463 §3.5"),
    (4, 2): ("Bad connection", "RFC 3463 §3.5"),
    (4, 3): ("Directory server failure", "RFC 3463 §3.5"),
    (4, 4): ("Unable to route", "RFC 3463 §3.5"),
    (4, 5): ("Mail system congestion", "RFC 3463 §3.5"),
    (4, 6): ("Routing loop detected", "RFC 3463 §3.5"),
    (4, 7): ("Delivery time expired", "RFC 3463 §3.5"),
    (5, 0): ("Other or undefined protocol status", "RFC 3463 §3.6"),
    (5, 1): ("Invalid command", "RFC 3463 §3.6"),
    (5, 2): ("Syntax error", "RFC 3463 §3.6"),
    (5, 3): ("Too many recipients", "RFC 3463 §3.6"),
    (5, 4): ("Invalid command arguments", "RFC 3463 §3.6"),
    (5, 5): ("Wrong protocol version", "RFC 3463 §3.6"),
    (5, 6): ("Authentication exchange line is too long", "RFC 4954 §6"),
    (6, 0): ("Other or undefined media error", "RFC 3463 §3.7"),
    (6, 1): ("Media not supported", "RFC 3463 §3.7"),
    (6, 2): ("Conversion required and prohibited", "RFC 3463 §3.7"),
    (6, 3): ("Conversion required but not supported", "RFC 3463 §3.7"),
    (6, 4): ("Conversion with loss performed", "RFC 3463 §3.7"),
    (6, 5): ("Conversion failed", "RFC 3463 §3.7"),
    (6, 6): ("Message content not available", "RFC 4468"),
    (6, 7): ("Non-ASCII addresses not permitted for that sender/recipient", "RFC 6531 §3.5"),
    (6, 8): (
        "UTF-8 string reply is required, but not permitted by the SMTP client",
        "RFC 6531 §3.5",
    ),
    (6, 9): (
        "UTF-8 header message cannot be transferred to one or more recipients, so "
        "the message must be rejected",
        "RFC 6531 §3.5",
    ),
    (6, 10): (
        "UTF-8 string reply is required, but not permitted by the SMTP client "
        "(deprecated duplicate of X.6.8)",
        "RFC 6531 §3.5; RFC 5248 registry",
    ),
    (7, 0): ("Other or undefined security status", "RFC 3463 §3.8"),
    (7, 1): ("Delivery not authorized, message refused", "RFC 3463 §3.8"),
    (7, 2): ("Mailing list expansion prohibited", "RFC 3463 §3.8"),
    (7, 3): ("Security conversion required but not possible", "RFC 3463 §3.8"),
    (7, 4): ("Security features not supported", "RFC 3463 §3.8"),
    (7, 5): ("Cryptographic failure", "RFC 3463 §3.8"),
    (7, 6): ("Cryptographic algorithm not supported", "RFC 3463 §3.8"),
    (7, 7): ("Message integrity failure", "RFC 3463 §3.8"),
    (7, 8): ("Authentication credentials invalid", "RFC 4954 §6"),
    (7, 9): ("Authentication mechanism is too weak", "RFC 4954 §6"),
    (7, 10): ("Encryption needed", "RFC 5248 §2.4"),
    (7, 11): ("Encryption required for requested authentication mechanism", "RFC 4954 §6"),
    (7, 12): ("A password transition is needed", "RFC 4954 §6"),
    (7, 13): ("User account disabled", "RFC 5248 §2.4"),
    (7, 14): ("Trust relationship required", "RFC 5248 §2.4"),
    (7, 15): ("Priority level is too low", "RFC 6710"),
    (7, 16): ("Message is too big for the specified priority", "RFC 6710"),
    (7, 17): ("Mailbox owner has changed", "RFC 7293"),
    (7, 18): ("Domain owner has changed", "RFC 7293"),
    (7, 19): ("RRVS test cannot be completed", "RFC 7293"),
    (7, 20): ("No passing DKIM signature found", "RFC 7372 §3.1"),
    (7, 21): ("No acceptable DKIM signature found", "RFC 7372 §3.1"),
    (7, 22): ("No valid author-matched DKIM signature found", "RFC 7372 §3.1"),
    (7, 23): ("SPF validation failed", "RFC 7372 §3.2"),
    (7, 24): ("SPF validation error", "RFC 7372 §3.2"),
    (7, 25): ("Reverse DNS validation failed", "RFC 7372 §3.3"),
    (7, 26): ("Multiple authentication checks failed", "RFC 7372 §3.4"),
    (7, 27): ("Sender address has null MX", "RFC 7505 §4.2"),
    (7, 29): ("ARC validation failure", "RFC 8617"),
    (7, 30): ("REQUIRETLS support required", "RFC 8689"),
}

# RFC 3463 §2: class "." subject "." detail; class 2/4/5; subject, detail 1*3digit.
_ENHANCED_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})", re.ASCII)


def describe_enhanced(status: StatusTriple | str) -> EnhancedCodeInfo:
    """Describe an enhanced status code (``"5.1.1"`` or an ``EnhancedStatusCode``).

    An unregistered detail falls back to the subject's ``X.Y.0`` text with
    ``fallback=True``; an unregistered subject (8-999) gets a generic text, also
    flagged. Raises ``ValueError`` for anything that is not ``class.subject.detail``
    with class 2, 4 or 5 and one to three digits each (RFC 3463 §2).
    """
    if isinstance(status, str):
        match = _ENHANCED_RE.fullmatch(status)
        if match is None:
            raise ValueError(
                f"not an RFC 3463 enhanced status code: {status!r}"
            )  # repr escapes controls
        class_, subject, detail = int(match[1]), int(match[2]), int(match[3])
    else:
        try:
            class_, subject, detail = (int(part) for part in status)
        except (TypeError, ValueError):
            raise ValueError(f"not an enhanced status code: {status!r}") from None
        if class_ not in (2, 4, 5) or not (0 <= subject <= 999 and 0 <= detail <= 999):
            raise ValueError(f"not an RFC 3463 enhanced status code: {status!r}")
    class_text = _CLASS_TEXT[class_]
    subject_text = _SUBJECTS.get(subject)
    if subject_text is None:
        text = f"Unregistered subject {subject}"
        return EnhancedCodeInfo(
            class_, subject, detail, class_text, text, text, "RFC 3463 §2", fallback=True
        )
    entry = _ENHANCED.get((subject, detail))
    if entry is not None:
        return EnhancedCodeInfo(class_, subject, detail, class_text, subject_text, *entry)
    detail_text, source = _ENHANCED[(subject, 0)]
    return EnhancedCodeInfo(
        class_, subject, detail, class_text, subject_text, detail_text, source, fallback=True
    )


def known_enhanced() -> tuple[tuple[int, int], ...]:
    """Every registered ``(subject, detail)`` pair, ascending."""
    return tuple(sorted(_ENHANCED))


# -- plain-words explanations ------------------------------------------------------------

_COMMAND_ADVICE: dict[tuple[int, str], str] = {
    (550, "RCPT"): "The recipient address is bad or refused: drop it or fix it, do not "
    "retry it (repeated sends to bad addresses harm sender reputation).",
    (553, "RCPT"): "The recipient address is not allowed as written: fix or drop it "
    "(non-ASCII addresses need SMTPUTF8); repeated sends to bad addresses harm sender "
    "reputation.",
    (550, "MAIL"): "The sender address is refused, usually by policy (unknown or "
    "unauthorised sender domain, SPF): check the sender address and authorisation.",
    (553, "MAIL"): "The sender address is not allowed as written: fix its syntax, or log "
    "in with an account allowed to use it.",
    (550, "DATA"): "The message was refused after the content, usually by a spam or "
    "content policy: do not resend unchanged.",
    (552, "RCPT"): "Too many recipients for this transaction (RFC 5321 §4.5.3.1.10 "
    "treats 552 here as the historical 452): send the remaining recipients in another "
    "transaction.",
    (552, "MAIL"): "The declared SIZE exceeds the server's limit (RFC 1870): shrink the "
    "message or send a link.",
    (552, "DATA"): "The message is too big (or the mailbox is over quota): shrink it or "
    "send a link.",
    (452, "RCPT"): "Too many recipients for now (RFC 5321 §4.5.3.1.10): accept the "
    "recipients taken so far, send the rest in a later transaction.",
    (452, "MAIL"): "The server is short of storage for a message this size (RFC 1870): "
    "retry later with back-off.",
    (452, "DATA"): "The server ran short of storage: retry later with back-off.",
}

_COMMAND_ALIASES = {"BDAT": "DATA", "HELO": "EHLO", "LHLO": "EHLO"}


def _command_verb(command: str) -> str:
    """The verb of ``command`` (``"RCPT TO:<a@b>"`` -> ``"RCPT"``), upper case."""
    word = command.strip().split(maxsplit=1)
    verb = word[0].split(":", 1)[0].upper() if word else ""
    return _COMMAND_ALIASES.get(verb, verb)


def explain(
    code: int,
    enhanced: str | StatusTriple | None = None,
    *,
    command: str | None = None,
) -> str:
    """Explain a reply in plain words: what it means and what the sender should do.

    ``command`` is the command the reply answers (a verb such as ``"RCPT"`` or the whole
    line); it refines the advice for 550, 553, 552 and 452. An enhanced code whose class
    does not match the reply's first digit is reported as inconsistent and given no
    weight (RFC 3463 §2). Raises ``ValueError`` for a code outside 200-599 or a
    malformed enhanced code, ``TypeError`` for a ``command`` that is not a ``str``.
    Ends with a reminder that the advice is a hint.
    """
    info = describe_code(code)
    parts = [f"{code} ({_CLASS_TEXT[info.reply_class]}): {info.meaning} [{info.source}]."]
    if enhanced is not None:
        status = describe_enhanced(enhanced)
        parts.append(
            f"Enhanced status {status.code}: {status.subject_text} — {status.detail_text}"
            + (" (detail not registered; subject meaning shown)" if status.fallback else "")
            + f" [{status.source}]."
        )
        if status.class_ != info.reply_class:
            parts.append(
                f"The enhanced code's class {status.class_} does not match the reply's "
                f"first digit {info.reply_class}; trust the reply code (RFC 3463 §2)."
            )
    advice = info.advice
    if command is not None:
        if not isinstance(command, str):
            raise TypeError(f"command must be a str such as 'RCPT', got {type(command).__name__}")
        advice = _COMMAND_ADVICE.get((code, _command_verb(command)), advice)
    parts.append(f"What to do: {advice}")
    parts.append(_HINT)
    return " ".join(parts)


def explain_reply(reply: ExplainableReply, command: str | None = None) -> str:
    """``explain`` for a ``Reply``, followed by the server's own text, escaped: the same
    as ``reply.explain(command)``, where the quoting lives (docs/design.md §4 rule 12)."""
    return reply.explain(command)
