"""Every adapter against real servers on 127.0.0.1: aiosmtpd, Postfix smtp-sink, Exim.

The peers come from ``tests/interop`` (see ``test_peers_baseline.py`` for smtplib doing
the same against each, the reference when one of these fails).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from interop.peers import AUTH_PASSWORD, AUTH_USER, AiosmtpdPeer, SinkPeer
from interop.peers_exim import EximPeer
from smtpproto.drivers.session import MailOptions
from smtpproto.exceptions import SMTPProtocolError, SMTPRecipientsRefused

from .exim_client import exim_client
from .facade import SyncClient

pytestmark = pytest.mark.interop

MakeClient = Callable[..., SyncClient]
TIMEOUT = 10.0
CONTENT = (
    b"From: sender@example.test\r\n"
    b"To: rcpt@example.test\r\n"
    b"Subject: adapters\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b"caf\xc3\xa9 with 8-bit octets\r\n"
    b"\r\n"
    b"  trailing spaces  \r\n"
)


def lf(content: bytes) -> bytes:
    return content.replace(b"\r\n", b"\n")


def transcript(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "smtpproto.transcript"]


# -- aiosmtpd -----------------------------------------------------------------------------


def test_aiosmtpd_starttls_auth_smtputf8_exact_bytes(
    make_client: MakeClient, aiosmtpd_tls_server: AiosmtpdPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    peer = aiosmtpd_tls_server
    assert peer.tls is not None
    message = EmailMessage()
    message["From"] = "J\u00f6rg <j\u00f6rg@example.test>"
    message["To"] = "rcpt@example.test"
    message["Bcc"] = "hidden@example.test"
    message["Subject"] = "gr\u00fc\u00dfe"
    message.set_content("caf\u00e9\n.dot line\n")
    with make_client(
        host=peer.host,
        port=peer.port,
        tls="required",
        ssl_context=peer.tls.client_context(),
        server_hostname="localhost",
        timeout=TIMEOUT,
    ) as client:
        assert client.session.conn.tls_active
        client.login(AUTH_USER, AUTH_PASSWORD)
        result = client.send_message(message)
        assert result.delivered == ("rcpt@example.test", "hidden@example.test")
        result = client.sendmail("a@example.test", ["b@example.test"], CONTENT)
    first, second = peer.wait_for_messages(2)
    assert first.tls and first.auth_user == AUTH_USER and first.smtp_utf8
    assert first.mail_from == "j\u00f6rg@example.test"
    assert b"Bcc" not in first.content and b"hidden" not in first.content
    assert "J\u00f6rg".encode() in first.content  # UTF-8 header, not an encoded word
    assert first.content.endswith(b"caf\xc3\xa9\r\n.dot line\r\n")
    assert second.content == CONTENT
    assert "BODY=8BITMIME" in second.mail_options
    lines = transcript(caplog)
    assert "C: STARTTLS" in lines
    assert not any(AUTH_PASSWORD in line for line in lines)
    assert any(line.startswith("C: AUTH PLAIN <redacted>") for line in lines)


def test_aiosmtpd_cleartext_auth_is_refused_by_default(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer]
) -> None:
    peer = aiosmtpd_factory(auth=True, auth_require_tls=False)
    with make_client(host=peer.host, port=peer.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPProtocolError, match="cleartext"):
            client.login(AUTH_USER, AUTH_PASSWORD)
        # Refused before AUTH was sent: the session goes on (docs/design.md §2).
        assert client.session.usable and not client.session.conn.authenticated
        assert client.noop().code == 250


# -- smtp-sink ----------------------------------------------------------------------------


def round_trips(caplog: pytest.LogCaptureFixture) -> int:
    """How often the transcript turns from client lines to server lines: each turn is
    one wait for the server (a round trip)."""
    sides = [r.getMessage()[:2] for r in caplog.records if r.name == "smtpproto.transcript"]
    return sum(1 for before, after in itertools.pairwise(sides) if (before, after) == ("C:", "S:"))


def test_smtp_sink_pipelining_round_trips(
    make_client: MakeClient, smtp_sink: SinkPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """300 messages over one PIPELINING session: MAIL, RCPT and DATA go in one write,
    so each message costs two waits for the server (its 354, then its 250), not four.
    Counted from the transcript, never timed (a messages-per-second bound flaked)."""
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    count = 300
    with make_client(host=smtp_sink.host, port=smtp_sink.port, timeout=TIMEOUT) as client:
        assert client.capabilities is not None and client.capabilities.pipelining
        for i in range(count):
            result = client.sendmail(f"s{i}@example.test", ["a@example.test"], CONTENT)
            assert result.delivered == ("a@example.test",)
        turns = round_trips(caplog)  # before QUIT: EHLO, then the messages
    messages = smtp_sink.wait_for_messages(count)
    assert [m.mail_from for m in messages] == [f"s{i}@example.test" for i in range(count)]
    assert all(m.content == lf(CONTENT) for m in messages)
    assert turns == 1 + 2 * count, turns


def test_smtp_sink_refusals_are_per_recipient(
    make_client: MakeClient, smtp_sink_factory: Callable[..., SinkPeer]
) -> None:
    sink = smtp_sink_factory(extra_args=("-f", "RCPT"))
    with make_client(host=sink.host, port=sink.port, timeout=TIMEOUT) as client:
        with pytest.raises(SMTPRecipientsRefused) as info:
            client.sendmail("a@example.test", ["b@example.test", "c@example.test"], CONTENT)
        assert [reply.code for _, reply in info.value.results] == [500, 500]
        assert client.noop().code == 250


# -- Exim ---------------------------------------------------------------------------------


def test_exim_chunking_pipelining_dsn_8bit_tls_auth(
    make_client: MakeClient, exim_server: EximPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    big = b"Subject: big\r\n\r\n" + b"".join(b"line %06d \xc3\xa9\r\n" % i for i in range(30000))
    options = MailOptions(ret="HDRS", envid="env-1", notify=("SUCCESS", "FAILURE"))
    with exim_client(make_client, exim_server) as client:
        caps = client.capabilities
        assert caps is not None and caps.chunking and caps.pipelining and caps.dsn
        assert client.session.conn.tls_active
        client.login(AUTH_USER, AUTH_PASSWORD)
        small = client.sendmail(
            "sender@example.test", ["a@exim.test", "b@exim.test"], CONTENT, options=options
        )
        assert small.delivered == ("a@exim.test", "b@exim.test")
        large = client.sendmail("sender@example.test", ["c@exim.test"], big)
        assert large.delivered == ("c@exim.test",)
    # NOTIFY=SUCCESS makes Exim mail a success DSN to the sender, which its accept
    # router delivers into the same maildir, in parallel with the delivery to c: so four
    # deliveries, in any order (waiting for three raced the DSN against c).
    deliveries = exim_server.wait_for_messages(4)
    by_rcpt = {d.rcpt_tos: d for d in deliveries}
    assert sorted(by_rcpt) == [(a,) for a in ("a@exim.test", "b@exim.test", "c@exim.test")] + [
        ("sender@example.test",)
    ]
    assert by_rcpt[("a@exim.test",)].content == lf(CONTENT)
    assert by_rcpt[("b@exim.test",)].content == lf(CONTENT)
    assert by_rcpt[("c@exim.test",)].content == lf(big)
    dsn = by_rcpt[("sender@example.test",)]
    assert dsn.mail_from == ""  # RFC 3461 §6.2: a DSN has the null reverse-path
    assert b"Original-Envelope-ID: env-1" in dsn.content
    for rcpt in (b"a@exim.test", b"b@exim.test"):
        assert b"Action: delivered\nFinal-Recipient: rfc822;" + rcpt in dsn.content
    assert b"text/rfc822-headers" in dsn.content  # RET=HDRS
    lines = transcript(caplog)
    bdat = [line for line in lines if line.startswith("C: BDAT")]
    assert len(bdat) > 2 and bdat[-1].endswith("LAST")
    assert not any(line.startswith("C: DATA") for line in lines)
    assert any("RET=HDRS ENVID=env-1" in line for line in lines)
    assert any("NOTIFY=SUCCESS,FAILURE" in line for line in lines)


def test_exim_smtputf8_send_message(make_client: MakeClient, exim_server: EximPeer) -> None:
    message = EmailMessage()
    message["From"] = "s\u00e9nder@example.test"
    message["To"] = "d@exim.test"
    message["Subject"] = "\u00fcmlaut"
    message.set_content("h\u00e9llo\n")
    with exim_client(make_client, exim_server) as client:
        result = client.send_message(message)
        assert result.delivered == ("d@exim.test",)
    [delivery] = exim_server.wait_for_messages(1)
    assert delivery.mail_from == "s\u00e9nder@example.test"
    assert "From: s\u00e9nder@example.test".encode() in delivery.content
    assert delivery.content.endswith("h\u00e9llo\n".encode())
