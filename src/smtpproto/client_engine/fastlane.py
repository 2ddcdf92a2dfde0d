"""The pipelined fast lane of ``send_many`` (docs/design.md §2): a transaction's
MAIL, RCPTs and DATA (or BDAT LAST) checked and serialised once, reused per message.

Theory of operation: ``make_template`` checks and serialises a MAIL, its RCPTs and
DATA once, with the checks their senders (``sending``) make in a fresh transaction,
for the capabilities and TLS state of the moment, a SIZE= value left as a slot (RFC
1870 §6: each message declares its own size, checked per group against the server's
limit). ``send_group`` then ends the open content (dot-stuffed by the DATA codec twin,
then ``.`` CRLF, RFC 5321 §4.5.2) and opens the template's transaction in one step,
queueing the same ``Pending`` entries and ``Transaction`` as those ``send`` calls (RFC
2920 §3.1: the content may open a group, DATA ends it; the content follows only a
354, RFC 5321 §4.1.1.4). ``send_bdat_group`` does the same for a whole message in one
``BDAT n LAST`` chunk (RFC 3030 §2), after an RSET when asked. The transaction is
marked ``group``: its replies take the group step (``replies.handle_replies``), each
still checked against its entry by its handler (RFC 5321 §4.2.1). Outside its
plain case each returns None having changed nothing, and the caller uses ``send``.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter

from ..wire.errors import LocalProtocolError
from .capabilities import Capabilities
from .config import require_tls_if_policy
from .events import Bdat, Data, EndOfContent, Mail, Rcpt, Rset
from .session import Pending, Session, Transaction, fill_pending, fill_transaction
from .states import GROUP_ENDERS, ClientState, Verb
from .writers import bdat_header, write_mail, write_rcpt

__all__ = ["GroupTemplate", "make_template", "send_bdat_group", "send_group"]

S = ClientState
V = Verb

#: The commands ``send_group`` queues for the end of the content and DATA: immutable.
_GROUP_END = EndOfContent()
_GROUP_DATA = Data()
_GROUP_RSET = Rset()
#: A MAIL's fields but its SIZE: two MAILs with the same shape differ only in SIZE=,
#: which a template leaves as a slot (``GroupTemplate.size_head``).
_mail_shape = attrgetter(
    *(f.name for f in dataclasses.fields(Mail) if f.compare and f.name != "size")
)
#: The content ``send_group`` takes: what ``Content`` takes (``commands._check_bytes``).
_CONTENT_TYPES = (bytes, bytearray, memoryview)
# The members each message's group reads, as module constants: an enum member read
# off its class costs about 60-85 ns on CPython 3.10-3.12, a global about 10
# (``connection``).
_READY = S.READY
_CONTENT = S.CONTENT
_TRANSACTION = S.TRANSACTION
_MAIL = V.MAIL
_RCPT = V.RCPT
_DATA = V.DATA
_END_OF_CONTENT = V.END_OF_CONTENT
_RSET = V.RSET
_BDAT_LAST = V.BDAT_LAST


class GroupTemplate:
    """A MAIL, its RCPTs and DATA, checked and serialised once for one session's
    capabilities and TLS state (``make_template``); reused for every message of a
    ``send_many`` batch with that envelope, whatever each message's SIZE=."""

    __slots__ = (
        "addresses",
        "bdat",
        "caps",
        "limit",
        "mail",
        "rcpts",
        "session",
        "shape",
        "size_head",
        "size_rest",
        "tls_active",
        "wire",
    )

    def __init__(
        self,
        mail: Mail,
        rcpts: tuple[Rcpt, ...],
        wire: bytes,
        caps: Capabilities,
        tls: bool,
        session: Session,
        bdat: bool = False,
    ) -> None:
        self.mail = mail
        self.shape = _mail_shape(mail)
        self.rcpts = rcpts
        self.addresses = tuple(rcpt.recipient for rcpt in rcpts)
        #: For ``send_bdat_group`` (the group ends with ``BDAT n LAST``, RFC 3030 §2),
        #: else for ``send_group`` (it ends with DATA).
        self.bdat = bdat
        #: ``MAIL ... CRLF RCPT ... CRLF ...`` then ``DATA CRLF`` unless ``bdat``, for a
        #: MAIL without SIZE=.
        self.wire = wire
        #: With SIZE= (RFC 1870 §6: each message's own): ``MAIL FROM:<path> SIZE=``
        #: and what follows the value, through the last RCPT (or DATA); the value is checked
        #: against ``limit``, the server's (``writers.write_mail``'s check), per
        #: message. None: no SIZE= (``wire`` is the whole group).
        self.size_head: bytes | None = None
        self.size_rest = b""
        self.limit = caps.size
        #: What the checks were made against: the template is used only while the
        #: session still has exactly these capabilities and this TLS state.
        self.caps = caps
        self.tls_active = tls
        #: The one session it was checked for: ``parse_ehlo`` gives connections with
        #: the same EHLO reply the same ``caps`` object, but not the same config (LMTP,
        #: TLS policy), so another connection's template is never used.
        self.session = session


def make_template(
    s: Session, mail: Mail, rcpts: tuple[Rcpt, ...], bdat: bool = False
) -> GroupTemplate | None:
    """The template for ``mail``'s shape and ``rcpts`` (for BDAT LAST groups when
    ``bdat``, else DATA), or None when the fast lane cannot carry them (no PIPELINING,
    LMTP, no CHUNKING for BDAT, an empty or refused envelope): the general path then
    decides, and refuses what it refuses. Changes nothing.

    With SIZE= the template is checked for ``SIZE=0`` and keeps the value as a slot:
    each message's size is checked against the server's limit in ``send_group``
    (RFC 1870 §6.1), so a template serves messages of every length, and one whose
    size the server refuses takes the general path, which refuses it."""
    caps = s.caps
    if caps is None or not s.pipelining or s.config.lmtp or not rcpts:
        return None
    if type(mail) is not Mail or any(type(rcpt) is not Rcpt for rcpt in rcpts):
        return None
    if bdat and not caps.chunking:  # ``_data_command``'s check (RFC 3030 §2)
        return None
    if mail.body == "BINARYMIME" and not bdat:  # needs BDAT (``_data_command``)
        return None
    checked = mail if mail.size is None else mail.with_size(0)
    try:
        require_tls_if_policy(s.config, s.tls_active, "MAIL")
        wire = write_mail(checked, caps, tls_active=s.tls_active)
        for count, rcpt in enumerate(rcpts):
            wire += write_rcpt(rcpt, caps, smtputf8=mail.smtputf8, count=count, rcptmax=s.rcptmax)
    except LocalProtocolError:
        return None
    if not bdat:
        wire += b"DATA\r\n"
    template = GroupTemplate(mail, rcpts, wire, caps, s.tls_active, s, bdat)
    if checked is not mail:
        # ``write_mail`` writes SIZE= first: ``MAIL FROM:<path> SIZE=0 ...``.
        head = b"MAIL FROM:" + mail._path + b" SIZE="
        if not wire.startswith(head + b"0"):
            return None
        template.size_head = head
        template.size_rest = wire[len(head) + 1 :]
    return template


def _envelope(s: Session, template: GroupTemplate, mail: Mail | None) -> tuple[Mail, bytes] | None:
    """``mail`` (None: the template's own) and the template's bytes for it, or None
    when the fast lane may not serve them: the template was made for another session
    or for its capabilities or TLS state of another moment, a transcript logs each
    command, LIMITS MAILMAX allows no more MAIL (RFC 9422 §4.1), ``mail`` is not of the
    template's shape, or its SIZE= is refused (above the server's limit, RFC 1870
    §6.1; none where the template has one, or the reverse): the general path decides."""
    if not (
        template.session is s
        and template.caps is s.caps
        and template.tls_active is s.tls_active
        and s.transcript is None
        and s.pipelining
        and (s.mailmax is None or s.mails_sent < s.mailmax)
    ):
        return None
    if mail is None:
        mail = template.mail
    elif mail is not template.mail and (
        type(mail) is not Mail or _mail_shape(mail) != template.shape
    ):
        return None
    head = template.size_head
    size = mail.size
    if head is None:
        return None if size is not None else (mail, template.wire)
    limit = template.limit
    if size is None or (limit is not None and size > limit):
        return None  # the general path refuses it
    return mail, head + b"%d" % size + template.size_rest


def _open(s: Session, template: GroupTemplate, mail: Mail) -> Transaction:
    """Queue ``mail`` and the template's RCPTs, as ``_send_mail`` and ``_send_rcpt``;
    the transaction is marked ``group`` (its replies take the group step,
    ``replies.handle_replies``)."""
    pending = s.pending
    addresses = template.addresses
    count = len(addresses)
    # The record ``Transaction(mail, addresses)`` makes, marked ``group``.
    s.txn = txn = fill_transaction(
        mail, None, list(addresses), [None] * count, None, [], count, False, True, [], count
    )
    s.mails_sent += 1  # LIMITS MAILMAX (RFC 9422 §4.1), as ``_send_mail`` counts
    pending.append(fill_pending(_MAIL, mail, txn, 1, -1))
    for index, rcpt in enumerate(template.rcpts):
        pending.append(fill_pending(_RCPT, rcpt, txn, 1, index))
    return txn


def send_group(
    s: Session,
    content: bytes | bytearray | memoryview | None,
    template: GroupTemplate,
    mail: Mail | None = None,
) -> bytes | None:
    """End the current content with ``content`` (its whole, in CONTENT; bytes,
    bytearray or memoryview, as ``Content`` takes) or nothing (None, in READY with no
    reply due), then open a transaction for ``mail`` (the template's own when None,
    else a MAIL of its shape: the same but for SIZE=) and the template's RCPTs, then
    DATA; return the bytes, or None with nothing changed when this is not the fast
    lane's case."""
    if template.bdat:
        return None
    envelope = _envelope(s, template, mail)
    if envelope is None:
        return None
    mail, group = envelope
    pending = s.pending
    state = s.state
    if content is None:
        if state is not _READY or pending:
            return None
        wire = group
    else:
        encoder = s.encoder
        txn = s.txn
        if (
            state is not _CONTENT
            or type(content) not in _CONTENT_TYPES
            or s.raw is not None
            or encoder is None
            or encoder.octets_in
            or txn is None
        ):
            return None
        # From here on the content's exchange is on the wire: a refusal by the
        # encoder (a NUL, an over-long line) is sticky, as ``send(Content)``'s is.
        wire = encoder.feed(content) + encoder.finish() + group
        s.encoder = None
        pending.append(fill_pending(_END_OF_CONTENT, _GROUP_END, txn, 1, -1))
    txn = _open(s, template, mail)
    txn.commands_after_mail += 1  # DATA
    pending.append(fill_pending(_DATA, _GROUP_DATA, txn, 1, -1))
    s.state = _TRANSACTION
    return wire


def send_bdat_group(
    s: Session, data: bytes, template: GroupTemplate, mail: Mail | None = None, reset: bool = False
) -> bytes | None:
    """In READY, with nothing queued that MAIL may not follow (RFC 2920 §3.1): RSET
    when ``reset``, then a transaction for ``mail`` (as in ``send_group``) and the
    template's RCPTs, then ``BDAT n LAST`` with ``data`` (the whole message, sent as
    is, RFC 3030 §2); return the bytes, or None with nothing changed when this is not
    the fast lane's case (8-bit ``data`` without BODY=8BITMIME or BINARYMIME, as
    ``_data_command`` refuses it, included)."""
    if not template.bdat or type(data) is not bytes:
        return None
    if s.state is not _READY:
        return None
    pending = s.pending
    if pending:
        last = pending[-1].verb  # ``check_pipelining`` for RSET and MAIL
        if last is None or last in GROUP_ENDERS:
            return None
    envelope = _envelope(s, template, mail)
    if envelope is None:
        return None
    mail, group = envelope
    body = mail.body
    if body != "8BITMIME" and body != "BINARYMIME" and not data.isascii():
        return None
    if reset:  # ``_simple_command``: RSET ends what transaction there is
        txn, s.txn = s.txn, None
        pending.append(Pending(_RSET, _GROUP_RSET, txn))
        group = b"RSET\r\n" + group
    txn = _open(s, template, mail)
    txn.commands_after_mail += 1  # BDAT LAST
    pending.append(Pending(_BDAT_LAST, Bdat(data=data, last=True), txn))
    return group + bdat_header(len(data), True) + data
