"""The pipelined fast lane (``ClientConnection.group_template``, ``send_group``)
against the general path.

Two connections get the same server bytes in the same chunks: one sends each command
with ``send`` and handles each reply with the general handlers, the other sends each
group with ``send_group``. Hypothesis draws the server's replies — positive, refusals of
MAIL/RCPT/DATA/the end of the content, 421 anywhere, multi-line, odd codes, garbage —
the octets they are split at, and an EOF anywhere; after every chunk the two must
have written the same bytes, produced the same events or the same error, and hold
the same engine state, down to each queued entry and transaction record.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest_datacodec import twin_params
from engine_helpers import EHLO_PIPELINING, feed, greeted
from smtpproto.client_engine.commands import Mail, Rcpt
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    Bdat,
    Content,
    Data,
    Ehlo,
    EndOfContent,
    Noop,
    ReadyForContent,
    Rset,
    StartTLS,
    TransactionResult,
)
from smtpproto.client_engine.states import ClientState
from smtpproto.wire.errors import LocalProtocolError
from smtpproto.wire.twins import CReplyParser, PyReplyParser

PARSERS = twin_params(PyReplyParser, CReplyParser)
EHLO_FAST = b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n"
SENDER = "sender@example.org"
MAX_MESSAGES = 4


def envelope(count: int, **mail: Any) -> tuple[Mail, tuple[Rcpt, ...]]:
    rcpts = tuple(Rcpt(recipient=f"r{i}@example.org") for i in range(count))
    return Mail(sender=SENDER, **mail), rcpts


def snapshot(conn: ClientConnection) -> tuple[Any, ...]:
    """Everything the engine holds that a later step can see."""
    s = conn._s
    seen: dict[int, int] = {}

    def txn(record: Any) -> Any:
        if record is None:
            return None
        return (
            seen.setdefault(id(record), len(seen)),  # which transaction, by first use
            record.mail,
            tuple(record.recipients),
            tuple(record.rcpt_replies),
            record.mail_reply,
            record.data_reply,
            tuple(record.lmtp_replies),
            record.commands_after_mail,
            record.finished,
            tuple(record._accepted),
            record._unanswered,
        )

    return (
        s.state,
        conn.timeout,
        conn.awaiting_reply,
        conn.final_reply_pending,
        conn.outstanding,
        [(e.verb, e.command, e.index, e.remaining, txn(e.txn)) for e in s.pending],
        txn(s.txn),
        None if s.encoder is None else (type(s.encoder), s.encoder.octets_in),
        s.raw,
        list(s.events),
        list(s.replies),
        list(s.incoming),
        s.incoming_size,
        s.parser.buffered,
        None if conn._error is None else (type(conn._error), str(conn._error)),
        s.mails_sent,  # LIMITS MAILMAX (RFC 9422 §4.1) counts every MAIL sent
    )


def attempt(action: Any) -> tuple[str, Any]:
    try:
        return "ok", action()
    except Exception as error:  # compared by type and message
        return "raised", (type(error), str(error))


def general_group(
    conn: ClientConnection, content: bytes | None, mail: Mail, rcpts: tuple[Rcpt, ...]
) -> bytes:
    """What the driver's general path sends for one group."""
    wire = b""
    if content is not None:
        if content:
            wire += conn.send(Content(data=content))
        wire += conn.send(EndOfContent())
    wire += conn.send(mail)
    for rcpt in rcpts:
        wire += conn.send(rcpt)
    return wire + conn.send(Data())


# -- the server's replies -------------------------------------------------------------

POSITIVE = {"MAIL": b"250 2.1.0 ok\r\n", "RCPT": b"250 2.1.5 ok\r\n", "DATA": b"354 go\r\n"}
KINDS = ["positive"] * 12 + ["echo"] * 2 + ["refused", "transient", "421", "multiline", "odd"]
KINDS += ["garbage"]
#: An AUTH secret (``Session.learn_secrets``) a server echoes (docs/design.md §4 rule 11).
SECRET = b"hunter2-secret"


def reply_bytes(verb: str, kind: str) -> bytes:
    positive = POSITIVE.get(verb, b"250 2.0.0 queued\r\n")
    code = positive[:3]
    return {
        "positive": positive,
        "echo": code + b" " + SECRET + b"\r\n",
        "refused": b"554 5.7.1 no\r\n" if verb == "DATA" else b"550 5.1.1 no\r\n",
        "transient": b"451 4.3.0 later\r\n",
        "421": b"421 4.3.2 closing\r\n",
        "multiline": code + b"-first\r\n" + code + b" second\r\n",
        "odd": b"252 2.1.5 odd\r\n" if verb != "DATA" else b"250 2.0.0 odd\r\n",
        "garbage": b"2x0 what\r\n",
    }[kind]


#: The server's SIZE limit in ``EHLO_FAST`` (RFC 1870 §4).
LIMIT = 100000
#: SIZE= values: zero, small, at, just past and far past the limit, the largest int.
SIZES = [0, 1, 40, LIMIT - 1, LIMIT, LIMIT + 1, 2**63 - 1]
#: The content a message is given as: what ``Content`` takes, and ``str``, refused.
CONTENT_KINDS = ["bytes"] * 4 + ["bytearray", "memoryview", "memoryview-of-bytearray", "str"]
#: Which MAIL a message's group carries: the template's own; the same with another
#: SIZE= (``Mail.with_size`` in the fast lane, the constructor in the reference); no
#: SIZE=; another sender (not the template's shape: the general path).
MAIL_VARIANTS = ["template", "size", "size", "size", "unsized", "other"]


def as_kind(content: bytes, kind: str) -> Any:
    return {
        "bytes": content,
        "bytearray": bytearray(content),
        "memoryview": memoryview(content),
        "memoryview-of-bytearray": memoryview(bytearray(content)),
        "str": content.decode("latin-1"),
    }[kind]


@st.composite
def scripts(draw: st.DrawFn) -> dict[str, Any]:
    contents = st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"."))
    # NUL, bare CR and LF, an over-long line (RFC 5321 §4.5.3.1.6), a lone dot, 8-bit:
    # what the encoder does to them (or refuses) must happen identically.
    odd = [b"a\x00b", b"a\rb\nc\r", b"x" * 1000, b".\r\n", b"\xff\xfe\r\n"]
    return {
        "rcpts": draw(st.integers(1, 3)),
        "contents": draw(
            st.lists(
                contents | st.sampled_from(odd),
                min_size=MAX_MESSAGES,
                max_size=MAX_MESSAGES,
            )
        ),
        "content_kinds": draw(
            st.lists(st.sampled_from(CONTENT_KINDS), min_size=MAX_MESSAGES, max_size=MAX_MESSAGES)
        ),
        "template_size": draw(st.sampled_from([None, *SIZES])),
        "mails": draw(
            st.lists(
                st.tuples(st.sampled_from(MAIL_VARIANTS), st.sampled_from(SIZES)),
                min_size=MAX_MESSAGES,
                max_size=MAX_MESSAGES,
            )
        ),
        "kinds": draw(
            st.lists(st.sampled_from(KINDS + ["positive"] * 20), min_size=40, max_size=40)
        ),
        "cuts": draw(st.lists(st.integers(0, 40), min_size=MAX_MESSAGES, max_size=MAX_MESSAGES)),
        "eof_at": draw(st.none() | st.integers(0, 4 * MAX_MESSAGES)),
        "transcript": draw(st.sampled_from([False] * 4 + [True])),
        "secret": draw(st.booleans()),
    }


VERB_NAMES = {"MAIL": "MAIL", "RCPT": "RCPT", "DATA": "DATA"}


def message_mail(template_mail: Mail, variant: str, size: int) -> tuple[Mail, Mail | None, bool]:
    """The MAIL the reference sends, the one given to ``send_group`` (None: the
    template's own) and whether ``send_group`` takes it."""
    limit_ok = size <= LIMIT
    if variant == "template":
        own = template_mail.size
        return template_mail, None, own is None or own <= LIMIT
    if variant == "size":
        reference = Mail(sender=SENDER, size=size)  # made and checked in full
        fast = template_mail.with_size(size)
        assert fast == reference
        return reference, fast, template_mail.size is not None and limit_ok
    if variant == "unsized":
        return Mail(sender=SENDER), Mail(sender=SENDER), template_mail.size is None
    other = Mail(sender="other@example.org", size=template_mail.size)
    return other, other, False


@pytest.mark.parametrize("parser_cls", PARSERS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts())
def test_send_group_equals_the_general_path(parser_cls: Any, script: dict[str, Any]) -> None:
    logs: tuple[list[Any], list[Any]] = ([], [])
    general, fast = (
        greeted(
            parser_cls,
            EHLO_FAST,
            transcript=(lambda *line, log=log: log.append(line)) if script["transcript"] else None,
        )
        for log in logs
    )
    general.command_replies = fast.command_replies = False
    if script["secret"]:  # replies are redacted before they are matched
        general._s.learn_secrets([SECRET])
        fast._s.learn_secrets([SECRET])
    mail, rcpts = envelope(script["rcpts"], size=script["template_size"])
    # The template does not depend on its own SIZE= value (a slot, checked per group).
    template = fast.group_template(mail, rcpts)
    assert template is not None
    kinds = iter(script["kinds"])
    chunks_fed = 0
    for message in range(MAX_MESSAGES):
        state = general.state
        if state is ClientState.DISCARD_CONTENT:  # a lone "." (RFC 2920 §3.1)
            assert general.send(EndOfContent()) == fast.send(EndOfContent())
            content = None
        elif state is ClientState.CONTENT:
            content = as_kind(script["contents"][message], script["content_kinds"][message])
        elif state is ClientState.READY:
            content = None
        else:
            break
        general_mail, fast_mail, mail_ok = message_mail(mail, *script["mails"][message])
        # A transcript logs each command: ``send_group`` declines, ``send`` serves; so
        # it does for a MAIL not of the template's shape, a SIZE= above the server's
        # limit and content that is not bytes-like.
        fast_case = (
            not script["transcript"]
            and (state is ClientState.CONTENT or not general.awaiting_reply)
            and mail_ok
            and (content is None or type(content) is not str)
        )
        sent_general = attempt(
            lambda c=content, m=general_mail: general_group(general, c, m, rcpts)
        )
        if fast_case:
            sent_fast = attempt(lambda c=content, m=fast_mail: fast.send_group(c, template, m))
            assert sent_fast[0] == "raised" or sent_fast[1] is not None
        else:
            before = snapshot(fast)
            assert fast.send_group(content, template, fast_mail) is None
            assert snapshot(fast) == before  # nothing changed
            sent_fast = attempt(
                lambda c=content, m=fast_mail or mail: general_group(fast, c, m, rcpts)
            )
        assert sent_fast == sent_general
        assert snapshot(fast) == snapshot(general)
        if sent_general[0] == "raised":
            return
        # The server answers every entry queued, in order, split at ``cut``.
        answer = b"".join(
            reply_bytes(
                entry.verb.name if entry.verb.name in VERB_NAMES else "END", next(kinds, "positive")
            )
            for entry in general._s.pending
        )
        cut = min(script["cuts"][message], len(answer))
        for chunk in (answer[:cut], answer[cut:]):
            if not chunk:
                continue
            if script["eof_at"] == chunks_fed:
                chunk = b""
            chunks_fed += 1
            got_general = attempt(lambda: feed(general, chunk))  # noqa: B023
            got_fast = attempt(lambda: feed(fast, chunk))  # noqa: B023
            assert got_fast == got_general
            assert snapshot(fast) == snapshot(general)
            assert logs[1] == logs[0]
            if script["secret"]:
                assert SECRET.decode() not in repr(got_general)
            if got_general[0] == "raised" or not chunk:
                return


# -- the fast lane is taken, and only in its case -----------------------------------


def test_the_groups_bytes_and_events() -> None:
    conn = greeted(PyReplyParser, EHLO_FAST)
    conn.command_replies = False
    mail, rcpts = envelope(2)
    template = conn.group_template(mail, rcpts)
    assert template is not None
    first = conn.send_group(None, template)
    assert first == (
        b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<r0@example.org>\r\n"
        b"RCPT TO:<r1@example.org>\r\nDATA\r\n"
    )
    assert conn.timeout == conn._s.config.timeouts.mail  # the oldest entry's own
    events = feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    assert [type(event) for event in events] == [ReadyForContent]
    wire = conn.send_group(b"line\r\n.dot\r\nno end", template)
    # Dot-stuffed, a final CRLF added, then "." (RFC 5321 §4.5.2), then the next group.
    assert wire == b"line\r\n..dot\r\nno end\r\n.\r\n" + first
    assert conn.final_reply_pending
    assert conn.timeout == conn._s.config.timeouts.data_termination
    events = feed(conn, b"250 queued\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    assert [type(event) for event in events] == [TransactionResult, ReadyForContent]
    assert isinstance(events[0], TransactionResult)
    assert events[0].delivered == ("r0@example.org", "r1@example.org")


@pytest.mark.parametrize(
    ("ehlo", "config", "mail", "count"),
    [
        (EHLO_PIPELINING.replace(b"PIPELINING", b"8BITMIME"), {}, {}, 1),  # no PIPELINING
        (EHLO_FAST, {"lmtp": True}, {}, 1),  # LMTP: one reply per recipient
        (EHLO_PIPELINING, {}, {"size": 10}, 1),  # SIZE= without SIZE (RFC 1870 §6)
        (EHLO_FAST, {}, {"body": "BINARYMIME"}, 1),  # needs BDAT (RFC 3030)
        (EHLO_FAST, {}, {"smtputf8": True}, 1),  # SMTPUTF8 not offered
        (EHLO_FAST + b"250 LIMITS RCPTMAX=2\r\n", {}, {}, 3),  # past RCPTMAX (RFC 9422)
        (EHLO_FAST, {"tls_policy": TLSPolicy.REQUIRED}, {}, 1),  # MAIL before STARTTLS
        (EHLO_FAST, {}, {}, 0),  # no recipient (RFC 5321 §3.3)
    ],
)
def test_no_template_where_the_general_path_decides(
    ehlo: bytes, config: dict[str, Any], mail: dict[str, Any], count: int
) -> None:
    ehlo = ehlo.replace(b"250 8BITMIME\r\n250 LIMITS", b"250-8BITMIME\r\n250 LIMITS")
    conn = greeted(PyReplyParser, ehlo, **config)
    before = snapshot(conn)
    assert conn.group_template(*envelope(count, **mail)) is None
    assert snapshot(conn) == before


def test_send_group_declines_outside_its_case_and_changes_nothing() -> None:
    conn = greeted(PyReplyParser, EHLO_FAST)
    template = conn.group_template(*envelope(1))
    assert template is not None
    before = snapshot(conn)
    assert conn.send_group(b"content", template) is None  # READY: no content open
    assert snapshot(conn) == before
    conn.send_group(None, template)
    before = snapshot(conn)
    assert conn.send_group(None, template) is None  # replies due
    assert snapshot(conn) == before
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(Content(data=b"begun\r\n"))
    before = snapshot(conn)
    assert conn.send_group(b"more", template) is None  # content already begun
    assert conn.send_group(bytearray(b"x"), template) is None  # only exact bytes
    assert snapshot(conn) == before


def test_send_group_declines_a_template_made_for_other_capabilities() -> None:
    conn = greeted(PyReplyParser, EHLO_FAST)
    template = conn.group_template(*envelope(1))
    assert template is not None
    conn.send(Ehlo(hostname="c.example"))
    feed(conn, EHLO_FAST.replace(b"SIZE 100000", b"SIZE 10"))  # a new EHLO: new caps
    before = snapshot(conn)
    assert conn.send_group(None, template) is None
    assert snapshot(conn) == before


def test_send_group_declines_with_a_transcript() -> None:
    lines: list[tuple[str, bytes]] = []
    conn = greeted(PyReplyParser, EHLO_FAST, transcript=lambda d, line: lines.append((d, line)))
    template = conn.group_template(*envelope(1))
    assert template is not None
    assert conn.send_group(None, template) is None


def test_send_group_with_a_wrong_template_changes_nothing() -> None:
    conn = greeted(PyReplyParser, EHLO_FAST)
    before = snapshot(conn)
    with pytest.raises(LocalProtocolError, match="GroupTemplate"):
        conn.send_group(None, "MAIL FROM:<x>")  # type: ignore[arg-type]
    assert snapshot(conn) == before


def test_content_the_encoder_refuses_is_sticky() -> None:
    conn = greeted(PyReplyParser, EHLO_FAST)
    conn.command_replies = False
    template = conn.group_template(*envelope(1))
    assert template is not None
    conn.send_group(None, template)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    with pytest.raises(LocalProtocolError, match="NUL"):
        conn.send_group(b"a\x00b", template)
    assert conn.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send_group(None, template)


def test_group_after_error_refused() -> None:
    conn = greeted(PyReplyParser, EHLO_FAST)
    template = conn.group_template(*envelope(1))
    assert template is not None
    conn.send_failed()
    with pytest.raises(LocalProtocolError):
        conn.group_template(*envelope(1))
    with pytest.raises(LocalProtocolError):
        conn.send_group(None, template)


@pytest.mark.parametrize(
    "other", [{"lmtp": True}, {"tls_policy": TLSPolicy.REQUIRED}], ids=["lmtp", "tls-required"]
)
def test_send_group_declines_another_connections_template(other: dict[str, Any]) -> None:
    # The EHLO intern table gives both connections the same Capabilities object: the
    # template of one must still never carry the other's MAIL past its own checks
    # (LMTP's per-recipient replies, a TLS policy that refuses MAIL in clear text).
    one = greeted(PyReplyParser, EHLO_FAST)
    two = greeted(PyReplyParser, EHLO_FAST, **other)
    assert one.capabilities is two.capabilities
    template = one.group_template(*envelope(1))
    assert template is not None
    assert two.group_template(*envelope(1)) is None
    before = snapshot(two)
    assert two.send_group(None, template) is None
    assert snapshot(two) == before


def test_a_template_serves_every_size_and_is_checked_per_group() -> None:
    # RFC 1870 §6: each message's own SIZE=; the template keeps the value as a slot.
    conn = greeted(PyReplyParser, EHLO_FAST)
    conn.command_replies = False
    mail, rcpts = envelope(1, size=LIMIT + 1)  # its own size is above the limit
    template = conn.group_template(mail, rcpts)
    assert template is not None
    before = snapshot(conn)
    assert conn.send_group(None, template) is None  # ... so its own group declines
    assert conn.send_group(None, template, mail.with_size(2**63 - 1)) is None
    assert conn.send_group(None, template, Mail(sender=SENDER)) is None  # no SIZE=
    assert conn.send_group(None, template, Mail(sender="o@example.org", size=1)) is None
    assert snapshot(conn) == before
    wire = conn.send_group(None, template, mail.with_size(0))  # SIZE=0 is a size
    assert wire is not None and wire.startswith(b"MAIL FROM:<sender@example.org> SIZE=0\r\n")
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    wire = conn.send_group(memoryview(b"x\r\n"), template, mail.with_size(LIMIT))
    group = b"MAIL FROM:<sender@example.org> SIZE=100000\r\nRCPT TO:<r0@example.org>\r\n"
    assert wire == b"x\r\n.\r\n" + group + b"DATA\r\n"


def test_with_size_checks_the_size_as_the_constructor_does() -> None:
    mail = Mail(sender=SENDER, body="8BITMIME", envid="id")
    for size in (0, 1, 2**63 - 1):
        assert mail.with_size(size) == Mail(sender=SENDER, body="8BITMIME", envid="id", size=size)
    for bad in (-1, 2**63, True, 1.0, "1", None):
        with pytest.raises(LocalProtocolError, match="size must be"):
            mail.with_size(bad)  # type: ignore[arg-type]
    plain = Mail(sender=SENDER)
    assert plain._plain and not plain.with_size(5)._plain  # SIZE= is never the plain line


def test_a_template_after_rset_and_after_starttls() -> None:
    ehlo = EHLO_FAST.replace(b"250 8BITMIME", b"250-8BITMIME\r\n250 STARTTLS")
    conn = greeted(PyReplyParser, ehlo)
    conn.command_replies = False
    mail, rcpts = envelope(1, size=10)
    template = conn.group_template(mail, rcpts)
    assert template is not None
    conn.send(Rset())
    feed(conn, b"250 ok\r\n")
    first = conn.send_group(None, template)  # RSET changes no capability: still valid
    assert first is not None
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(Content(data=b"x\r\n"))
    conn.send(EndOfContent())
    feed(conn, b"250 queued\r\n")
    conn.send(StartTLS())
    feed(conn, b"220 ready\r\n")
    conn.tls_established()
    conn.send(Ehlo(hostname="c.example"))
    feed(conn, ehlo)  # the same reply: the same interned capabilities (§2)
    assert conn.capabilities is template.caps
    before = snapshot(conn)
    assert conn.send_group(None, template) is None  # made before TLS: declined
    assert snapshot(conn) == before
    again = conn.group_template(mail, rcpts)
    assert again is not None and conn.send_group(None, again) == first


# -- BDAT LAST groups (``send_bdat_group``, RFC 3030 §2) --------------------------------

EHLO_BDAT = EHLO_FAST.replace(b"250 8BITMIME", b"250-8BITMIME\r\n250-BINARYMIME\r\n250 CHUNKING")
#: Before a group: nothing, replies due to a BDAT LAST (the window), a NOOP (which
#: ends a group, RFC 2920 §3.1: MAIL may not follow it unanswered).
BEFORE = ["nothing", "nothing", "window", "window", "noop"]


def general_bdat(
    conn: ClientConnection, data: bytes, mail: Mail, rcpts: tuple[Rcpt, ...], reset: bool
) -> bytes:
    """What the driver's general path sends for one BDAT LAST message."""
    wire = conn.send(Rset()) if reset else b""
    wire += conn.send(mail)
    for rcpt in rcpts:
        wire += conn.send(rcpt)
    return wire + conn.send(Bdat(data=data, last=True))


def bdat_mail(template_mail: Mail, variant: str, size: int) -> tuple[Mail, Mail | None, bool]:
    """``message_mail`` for a template whose MAIL may have a BODY=."""
    body = template_mail.body
    if variant == "size":
        reference = Mail(sender=SENDER, size=size, body=body)  # made and checked in full
        fast = template_mail.with_size(size)
        assert fast == reference
        return reference, fast, template_mail.size is not None and size <= LIMIT
    if variant == "template":
        return message_mail(template_mail, variant, size)
    sender = SENDER if variant == "unsized" else "other@example.org"
    other = Mail(sender=sender, size=None if variant == "unsized" else size, body=body)
    return other, other, variant == "unsized" and template_mail.size is None


@st.composite
def bdat_scripts(draw: st.DrawFn) -> dict[str, Any]:
    n = MAX_MESSAGES
    return {
        "ehlo": draw(st.sampled_from([EHLO_BDAT, EHLO_BDAT.replace(b"250-8BITMIME\r\n", b"")])),
        "body": draw(st.sampled_from([None, "8BITMIME", "BINARYMIME"])),
        "rcpts": draw(st.integers(1, 3)),
        "template_size": draw(st.sampled_from([None, *SIZES])),
        "mails": draw(
            st.lists(
                st.tuples(st.sampled_from(MAIL_VARIANTS), st.sampled_from(SIZES)),
                min_size=n,
                max_size=n,
            )
        ),
        "data": draw(
            st.lists(st.binary(max_size=30) | st.just(b"\xff8bit"), min_size=n, max_size=n)
        ),
        "resets": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "before": draw(st.lists(st.sampled_from(BEFORE), min_size=n, max_size=n)),
        "kinds": draw(
            st.lists(st.sampled_from(KINDS + ["positive"] * 20), min_size=60, max_size=60)
        ),
        "transcript": draw(st.sampled_from([False] * 4 + [True])),
    }


@pytest.mark.parametrize("parser_cls", PARSERS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=bdat_scripts())
def test_send_bdat_group_equals_the_general_path(parser_cls: Any, script: dict[str, Any]) -> None:
    logs: tuple[list[Any], list[Any]] = ([], [])
    general, fast = (
        greeted(
            parser_cls,
            script["ehlo"],
            transcript=(lambda *line, log=log: log.append(line)) if script["transcript"] else None,
        )
        for log in logs
    )
    general.command_replies = fast.command_replies = False
    size = script["template_size"]
    mail = Mail(sender=SENDER, size=size, body=script["body"])
    rcpts = envelope(script["rcpts"])[1]
    template = fast.group_template(mail, rcpts, bdat=True)
    if template is None:  # only where the general path refuses the MAIL itself
        assert attempt(lambda: general.send(mail.with_size(0) if size else mail))[0] == "raised"
        return
    assert fast.send_group(None, template) is None  # a BDAT template: not for DATA
    kinds = iter(script["kinds"])
    for message in range(MAX_MESSAGES):
        if general.state is not ClientState.READY:
            break
        before = script["before"][message]
        if before == "noop":
            assert general.send(Noop()) == fast.send(Noop())
        variant, value = script["mails"][message]
        general_mail, fast_mail, mail_ok = bdat_mail(mail, variant, value)
        data = script["data"][message]
        reset = script["resets"][message]
        fast_case = (
            not script["transcript"]
            and before != "noop"
            and mail_ok
            and (data.isascii() or script["body"] is not None)
        )
        sent_general = attempt(
            lambda d=data, m=general_mail, r=reset: general_bdat(general, d, m, rcpts, r)
        )
        if fast_case:
            sent_fast = attempt(
                lambda d=data, m=fast_mail, r=reset: fast.send_bdat_group(d, template, m, reset=r)
            )
            assert sent_fast[0] == "raised" or sent_fast[1] is not None
        else:
            previous = snapshot(fast)
            assert fast.send_bdat_group(data, template, fast_mail, reset=reset) is None
            assert snapshot(fast) == previous  # nothing changed
            sent_fast = attempt(
                lambda d=data, m=fast_mail or mail, r=reset: general_bdat(fast, d, m, rcpts, r)
            )
        assert sent_fast == sent_general
        assert snapshot(fast) == snapshot(general)
        assert logs[1] == logs[0]
        if sent_general[0] == "raised":
            return
        if before == "window" and message < MAX_MESSAGES - 1:
            continue  # the replies stay due: the next group is pipelined behind them
        answer = b"".join(
            reply_bytes(
                entry.verb.name if entry.verb.name in VERB_NAMES else "END", next(kinds, "positive")
            )
            for entry in general._s.pending
        )
        got_general = attempt(lambda: feed(general, answer))  # noqa: B023
        got_fast = attempt(lambda: feed(fast, answer))  # noqa: B023
        assert got_fast == got_general
        assert snapshot(fast) == snapshot(general)
        if got_general[0] == "raised":
            return


def test_a_bdat_group_after_a_window_and_an_rset() -> None:
    conn = greeted(PyReplyParser, EHLO_BDAT)
    conn.command_replies = False
    mail, rcpts = envelope(1, size=5)
    template = conn.group_template(mail, rcpts, bdat=True)
    assert template is not None
    first = conn.send_bdat_group(b"one\r\n", template)
    assert first == b"MAIL FROM:<sender@example.org> SIZE=5\r\nRCPT TO:<r0@example.org>\r\n" + (
        b"BDAT 5 LAST\r\none\r\n"
    )
    assert conn.state is ClientState.READY and conn.final_reply_pending
    second = conn.send_bdat_group(b"second\r\n", template, mail.with_size(8), reset=True)
    assert second is not None and second.startswith(
        b"RSET\r\nMAIL FROM:<sender@example.org> SIZE=8\r\n"
    )
    events = feed(
        conn, b"250 ok\r\n250 ok\r\n250 queued\r\n250 reset\r\n250 ok\r\n250 ok\r\n250 queued\r\n"
    )
    results = [e for e in events if type(e) is TransactionResult]
    assert [r.delivered for r in results] == [("r0@example.org",)] * 2
    assert conn.send_bdat_group(b"x", template, mail.with_size(LIMIT + 1)) is None  # RFC 1870
    assert conn.send_bdat_group(bytearray(b"x"), template) is None  # type: ignore[arg-type]


def test_send_bdat_group_declines_outside_ready_and_changes_nothing() -> None:
    conn = greeted(PyReplyParser, EHLO_BDAT)
    mail, rcpts = envelope(1)
    template = conn.group_template(mail, rcpts, bdat=True)
    assert template is not None
    conn.send(mail)  # a transaction open: MAIL may not be sent now
    before = snapshot(conn)
    assert conn.send_bdat_group(b"x", template) is None
    assert conn.send_bdat_group(b"x", template, reset=True) is None
    assert snapshot(conn) == before
    with pytest.raises(LocalProtocolError, match="GroupTemplate"):
        conn.send_bdat_group(b"x", None)  # type: ignore[arg-type]
    assert snapshot(conn) == before


@pytest.mark.parametrize("bdat", [False, True], ids=["data", "bdat"])
def test_no_group_past_the_servers_mailmax(bdat: bool) -> None:
    # RFC 9422 §4.1: past LIMITS MAILMAX the general path refuses the MAIL before it is
    # sent; the lane declines it, changing nothing, and counts each MAIL it sends.
    ehlo = EHLO_BDAT if bdat else EHLO_FAST
    conn = greeted(
        PyReplyParser, ehlo.replace(b"250-PIPELINING", b"250-PIPELINING\r\n250-LIMITS MAILMAX=2")
    )
    conn.command_replies = False
    mail, rcpts = envelope(1, size=5)
    template = conn.group_template(mail, rcpts, bdat=bdat)
    assert template is not None
    for _ in range(2):
        if bdat:
            assert conn.send_bdat_group(b"abcde", template) is not None
            feed(conn, b"250 ok\r\n250 ok\r\n250 queued\r\n")
        else:
            assert conn.send_group(None, template) is not None
            feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
            conn.send(EndOfContent())
            feed(conn, b"250 queued\r\n")
    assert conn._s.mails_sent == 2
    before = snapshot(conn)
    group = conn.send_bdat_group(b"abcde", template) if bdat else conn.send_group(None, template)
    assert group is None
    assert snapshot(conn) == before
    with pytest.raises(LocalProtocolError, match="MAILMAX"):
        conn.send(mail)
