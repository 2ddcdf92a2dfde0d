"""Command serialisation: MAIL/RCPT parameters against the capabilities, AUTH, BDAT.

Theory of operation: commands arrive already validated (their constructors checked
grammar and controls and kept the wire form of their arguments). What is left needs
the session: whether each parameter's extension was advertised in the last EHLO
(``Capabilities``), the server's SIZE, whether TLS is active. Every function here
either returns the complete bytes to write or raises ``LocalProtocolError`` naming the
missing extension; nothing is half-written.
"""

from __future__ import annotations

import base64

from ..wire.abnf import MAX_COMMAND_LINE, xtext_encode
from ..wire.errors import LocalProtocolError
from .capabilities import Capabilities
from .commands import Mail, Rcpt

__all__ = [
    "MAX_AUTH_RESPONSE",
    "bdat_header",
    "write_auth",
    "write_auth_response",
    "write_mail",
    "write_rcpt",
]

#: RFC 4954 §4: a client response line may be up to 12288 octets (base64 + CRLF).
MAX_AUTH_RESPONSE = 12288


def _need(caps: Capabilities | None, keyword: str, what: str) -> Capabilities:
    if caps is None:
        raise LocalProtocolError(
            f"{what} needs the {keyword} extension, but no EHLO reply advertised it "
            "(the session began with HELO or EHLO was not answered yet)"
        )
    if not caps.has(keyword):
        raise LocalProtocolError(f"{what} needs the {keyword} extension, not advertised")
    return caps


def write_mail(mail: Mail, caps: Capabilities | None, *, tls_active: bool) -> bytes:
    """``MAIL FROM:<path> params CRLF``; each parameter only if advertised.

    SIZE above the server's advertised limit fails here (RFC 1870 §6.1). A non-ASCII
    sender or AUTH= mailbox needs SMTPUTF8 requested and advertised (RFC 6531 §3.4);
    BODY=BINARYMIME needs BINARYMIME and CHUNKING (RFC 3030 §3); REQUIRETLS needs TLS
    active (RFC 8689 §4.1).
    """
    if mail._plain:
        return mail._plain
    params = b""
    if mail.size is not None:
        limit = _need(caps, "SIZE", "SIZE=").size
        if limit is not None and mail.size > limit:
            raise LocalProtocolError(
                f"declared size {mail.size} is above the server's SIZE {limit} (RFC 1870 §6)"
            )
        params += b" SIZE=" + str(mail.size).encode("ascii")
    if mail.body is not None:
        if mail.body == "BINARYMIME":
            _need(caps, "BINARYMIME", "BODY=BINARYMIME")
            _need(caps, "CHUNKING", "BODY=BINARYMIME")
        elif not (caps is not None and caps.has("BINARYMIME")):
            _need(caps, "8BITMIME", f"BODY={mail.body}")
        params += b" BODY=" + mail.body.encode("ascii")
    if mail.smtputf8:
        _need(caps, "SMTPUTF8", "SMTPUTF8")
        params += b" SMTPUTF8"
    elif not mail.sender.isascii():  # pragma: no cover - the constructor refuses it
        raise LocalProtocolError("a non-ASCII sender needs smtputf8=True")
    if mail.ret is not None:
        _need(caps, "DSN", "RET=")
        params += b" RET=" + mail.ret.encode("ascii")
    if mail.envid is not None:
        _need(caps, "DSN", "ENVID=")
        params += b" ENVID=" + xtext_encode(mail.envid).encode("ascii")
    if mail.requiretls:
        _need(caps, "REQUIRETLS", "REQUIRETLS")
        if not tls_active:
            raise LocalProtocolError("REQUIRETLS needs TLS to be active (RFC 8689 §4.1)")
        params += b" REQUIRETLS"
    if mail.mt_priority is not None:
        _need(caps, "MT-PRIORITY", "MT-PRIORITY=")
        params += b" MT-PRIORITY=" + str(mail.mt_priority).encode("ascii")
    if mail.by is not None:
        _need(caps, "DELIVERBY", "BY=")
        params += b" BY=" + mail.by.upper().encode("ascii")
    if mail.auth is not None:
        _need(caps, "AUTH", "AUTH=")
        if mail.auth == "":
            params += b" AUTH=<>"
        else:
            if not mail.auth.isascii() and not mail.smtputf8:
                raise LocalProtocolError("a non-ASCII AUTH= mailbox needs smtputf8=True")
            params += b" AUTH=" + xtext_encode(mail.auth).encode("ascii")
    # The path is at most 256 octets (RFC 5321 §4.5.3.1.3, checked by format_path), so
    # "MAIL FROM:<path>" CRLF fits 512; parameters may lengthen the line (RFC 1870 §3:
    # extensions raise the limit), each bounded by its own rule.
    return b"MAIL FROM:" + mail._path + params + b"\r\n"


def write_rcpt(
    rcpt: Rcpt,
    caps: Capabilities | None,
    *,
    smtputf8: bool,
    count: int,
    rcptmax: int | None,
) -> bytes:
    """``RCPT TO:<path> params CRLF``. ``smtputf8``: whether the transaction's MAIL
    asked for SMTPUTF8; ``count``: RCPTs already sent in this transaction, checked
    against ``rcptmax``, the server's LIMITS RCPTMAX (RFC 9422 §4.2)."""
    if not smtputf8 and not rcpt.recipient.isascii():
        raise LocalProtocolError(
            f"recipient {rcpt.recipient!a} is not ASCII: it needs Mail(smtputf8=True) "
            "(RFC 6531 §3.4)"
        )
    if rcpt._params:
        _need(caps, "DSN", "NOTIFY=/ORCPT=")
    if rcptmax is not None and count >= rcptmax:
        raise LocalProtocolError(
            f"the server's LIMITS RCPTMAX is {rcptmax}: start another transaction for "
            "the remaining recipients (RFC 9422 §4.2)"
        )
    return rcpt._wire  # the path is at most 256 octets: the line fits (see write_mail)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def write_auth(name: str, initial: bytes | None) -> tuple[bytes, bool]:
    """``AUTH name [initial-response]``; returns the line and whether the initial
    response went on it. RFC 4954 §4: the initial response is sent on the AUTH line
    only if the line stays within 512 octets (an empty one as ``=``); otherwise the
    client waits for the empty 334 challenge and sends it then."""
    head = b"AUTH " + name.encode("ascii")
    if initial is None:
        return head + b"\r\n", False
    encoded = _b64(initial) if initial else b"="
    line = head + b" " + encoded + b"\r\n"
    if len(line) <= MAX_COMMAND_LINE:
        return line, True
    return head + b"\r\n", False


def write_auth_response(response: bytes | None) -> bytes:
    """One continuation line: base64 of ``response`` (an empty response is an empty
    line), or ``*`` when ``response`` is None (cancel, RFC 4954 §4). A line over 12288
    octets is refused."""
    if response is None:
        return b"*\r\n"
    line = _b64(response) + b"\r\n"
    if len(line) > MAX_AUTH_RESPONSE:
        raise LocalProtocolError(
            f"SASL response of {len(line)} octets is longer than {MAX_AUTH_RESPONSE} (RFC 4954 §4)"
        )
    return line


def bdat_header(size: int, last: bool) -> bytes:
    """``BDAT size [LAST] CRLF`` (RFC 3030 §2); the chunk follows verbatim."""
    return b"BDAT %d LAST\r\n" % size if last else b"BDAT %d\r\n" % size
