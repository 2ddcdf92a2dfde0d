"""DSN parameters to a server that does not offer DSN (RFC 3461 §4.1-4.2), through every
adapter against aiosmtpd (which offers no DSN and no PIPELINING, so MAIL and each RCPT
go one at a time). Issue: ``MailOptions(notify=...)`` or ``orcpt=True`` was refused only
when the RCPT was due, with MAIL already sent and accepted, so the session broke and
the next operation failed. Now the RCPTs are checked with the MAIL, before anything of
the transaction is sent: ``SMTPProtocolError`` (remote false), the session usable, the
next message delivered in a new transaction (a MAIL left open would make aiosmtpd
answer its MAIL 503 nested). The same holds for a non-ASCII recipient with
``smtputf8=False`` (RFC 6531 §3.4). The CLI's side: tests/cli/test_send_envelope.py."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from interop.peers import AiosmtpdPeer
from smtpproto.drivers.support import MailOptions
from smtpproto.exceptions import SMTPProtocolError

from .facade import SyncClient
from .test_constructor_checks import assert_caller_mistake

MakeClient = Callable[..., SyncClient]
SENDER, RCPT = "a@example.org", "b@example.org"

OPTIONS: dict[str, tuple[MailOptions, str, str]] = {
    "notify": (MailOptions(notify=("SUCCESS", "FAILURE")), RCPT, "NOTIFY=/ORCPT= needs the DSN"),
    "notify-never": (MailOptions(notify=("NEVER",)), RCPT, "NOTIFY=/ORCPT= needs the DSN"),
    "orcpt": (MailOptions(orcpt=True), RCPT, "NOTIFY=/ORCPT= needs the DSN"),
    "ret": (MailOptions(ret="HDRS"), RCPT, "RET= needs the DSN"),
    "envid": (MailOptions(envid="id-1"), RCPT, "ENVID= needs the DSN"),
    "utf8-recipient": (MailOptions(smtputf8=False), "b@exämple.org", "not ASCII"),
}


def _message(recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, recipient, "dsn"
    message.set_content("hi\n")
    return message


CALLS: dict[str, Callable[[SyncClient, MailOptions, str], Any]] = {
    "sendmail": lambda c, o, r: c.sendmail(SENDER, [RCPT, r], b"hi\r\n", options=o),
    "send_message": lambda c, o, r: c.send_message(_message(r), options=o),
}


def _deliver_after(client: SyncClient, peer: AiosmtpdPeer) -> None:
    assert client.session.usable
    assert client.noop().code == 250
    client.sendmail(SENDER, RCPT, b"next\r\n")  # MAIL is not nested: nothing was open
    [message] = peer.wait_for_messages(1)
    assert message.rcpt_tos == (RCPT,) and message.rcpt_options == ()
    assert message.content.endswith(b"next\r\n")


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("call", sorted(CALLS))
def test_refused_before_mail_session_usable(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer], call: str, option: str
) -> None:
    options, recipient, words = OPTIONS[option]
    peer = aiosmtpd_factory()
    with make_client(host=peer.host, port=peer.port, tls="none", timeout=10) as client:
        with pytest.raises(SMTPProtocolError, match=words) as caught:
            CALLS[call](client, options, recipient)
        assert_caller_mistake(caught.value)
        _deliver_after(client, peer)


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_send_many_refuses_each_message_before_mail(
    make_client: MakeClient, aiosmtpd_factory: Callable[..., AiosmtpdPeer], option: str
) -> None:
    options, recipient, words = OPTIONS[option]
    peer = aiosmtpd_factory()
    with make_client(host=peer.host, port=peer.port, tls="none", timeout=10) as client:
        outcomes = client.send_many([(SENDER, [RCPT, recipient], b"hi\r\n")] * 2, options=options)
        assert len(outcomes) == 2
        for outcome in outcomes:
            assert isinstance(outcome, SMTPProtocolError) and not outcome.remote
            assert words in str(outcome)
        _deliver_after(client, peer)
