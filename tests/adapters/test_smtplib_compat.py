"""Code written for smtplib catches what every adapter raises (issue 13 part 3).

Each test puts a real ``except smtplib.<Class>`` clause around a client of the adapter
under test talking to a scripted server (socket pair), so the mapping of
``adapters/smtplib_compat.py`` is checked the way migrating code uses it; the same
errors are still caught by smtpproto's own classes, with unchanged messages.
"""

from __future__ import annotations

import pickle
import smtplib
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from smtpproto.exceptions import (
    SMTPConnectError,
    SMTPDeliveryStatusUnknown,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPTimeoutError,
)
from smtpproto.testing import Respond, Rule, run_server

from .facade import SyncClient
from .peer import Peer, scripted

MakeClient = Callable[..., SyncClient]
MESSAGE = b"Subject: test\r\n\r\nbody\r\n"
AUTH_EHLO = b"250-mx.example.org\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"


def _send(make_client: MakeClient, script: Callable[[Peer], None], **kwargs: object) -> None:
    """Connect to ``script`` and send one message (what raises is the test's)."""
    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=kwargs.pop("timeout", 5), **kwargs)
        try:
            client.connect()
            client.sendmail("a@example.org", ["b@example.org", "c@example.org"], MESSAGE)
        finally:
            client.close()


def _transaction(peer: Peer, replies: bytes) -> None:
    peer.greet()
    for verb in (b"MAIL", b"RCPT", b"RCPT", b"DATA"):
        peer.expect(verb)
    peer.send(replies)


def test_a_refused_greeting_is_smtplib_connect_error(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.send(b"554 5.7.1 go away\r\n")

    try:
        _send(make_client, script)
    except smtplib.SMTPConnectError as error:
        assert error.smtp_code == 554
        assert error.smtp_error == b"5.7.1 go away"
        assert isinstance(error, SMTPReplyError)
        assert str(error) == "server refused: 554 5.7.1 go away"
    else:
        pytest.fail("no SMTPConnectError")


def test_a_refused_ehlo_is_smtplib_helo_error(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.send(b"220 mx\r\n")
        peer.expect(b"EHLO")
        peer.send(b"550 5.7.1 not you\r\n")  # no HELO fallback after a 550

    try:
        _send(make_client, script)
    except smtplib.SMTPHeloError as error:
        assert (error.smtp_code, error.smtp_error) == (550, b"5.7.1 not you")
    else:
        pytest.fail("no SMTPHeloError")


def test_a_refused_sender_is_smtplib_sender_refused(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        _transaction(peer, b"553 5.1.8 bad sender\r\n503 no\r\n503 no\r\n503 no\r\n")

    try:
        _send(make_client, script)
    except smtplib.SMTPSenderRefused as error:
        assert (error.smtp_code, error.smtp_error) == (553, b"5.1.8 bad sender")
        assert error.sender == "a@example.org"
        assert isinstance(error, SMTPReplyError) and error.command == "MAIL"
    else:
        pytest.fail("no SMTPSenderRefused")


def test_every_recipient_refused_is_smtplib_recipients_refused(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        _transaction(peer, b"250 ok\r\n550 5.1.1 no such user\r\n451 4.7.1 later\r\n554 no\r\n")

    try:
        _send(make_client, script)
    except smtplib.SMTPRecipientsRefused as error:
        assert error.recipients == {
            "b@example.org": (550, b"5.1.1 no such user"),
            "c@example.org": (451, b"4.7.1 later"),
        }
        assert isinstance(error, SMTPRecipientsRefused)
        assert set(error.refused) == {"b@example.org", "c@example.org"}
    else:
        pytest.fail("no SMTPRecipientsRefused")


def test_refused_content_is_smtplib_data_error(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        _transaction(peer, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_data()
        peer.send(b"554 5.6.0 spam\r\n")

    try:
        _send(make_client, script)
    except smtplib.SMTPDataError as error:
        assert (error.smtp_code, error.smtp_error) == (554, b"5.6.0 spam")
    else:
        pytest.fail("no SMTPDataError")


def test_refused_auth_is_smtplib_authentication_error(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet(AUTH_EHLO)
        peer.expect(b"AUTH PLAIN")
        peer.send(b"535 5.7.8 bad credentials: s3cret-Pa55w0rd\r\n")  # echoes the secret

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5, allow_cleartext_auth=True)
        client.connect()
        try:
            client.login("user", "s3cret-Pa55w0rd")
        except smtplib.SMTPAuthenticationError as error:
            assert error.smtp_code == 535
            assert error.smtp_error.startswith(b"5.7.8 bad credentials: ")
            assert b"Pa55w0rd" not in error.smtp_error  # redacted like the message
        else:
            pytest.fail("no SMTPAuthenticationError")
        finally:
            client.close()


def test_421_is_a_response_and_server_disconnected(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        _transaction(peer, b"421 4.3.2 shutting down\r\n")

    try:
        _send(make_client, script)
    except smtplib.SMTPServerDisconnected as error:
        assert isinstance(error, smtplib.SMTPSenderRefused)
        assert error.smtp_code == 421  # type: ignore[attr-defined]  # an SMTPSenderRefused
    else:
        pytest.fail("no SMTPServerDisconnected")


def test_a_drop_after_the_final_dot_is_server_disconnected(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        _transaction(peer, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        peer.read_data()

    try:
        _send(make_client, script)
    except smtplib.SMTPServerDisconnected as error:
        assert isinstance(error, SMTPDeliveryStatusUnknown)
        assert error.recipients == ("b@example.org", "c@example.org")
    else:
        pytest.fail("no SMTPServerDisconnected")


def test_a_lost_connection_is_server_disconnected(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()
        peer.expect(b"MAIL")

    try:
        _send(make_client, script)
    except smtplib.SMTPServerDisconnected as error:
        assert isinstance(error, (SMTPConnectError, SMTPProtocolError))
    else:
        pytest.fail("no SMTPServerDisconnected")


def test_a_timeout_is_timeout_error_and_smtp_exception(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()
        for _ in range(10):  # read, never answer, until the client gives up (EOF)
            peer.line()

    try:
        _send(make_client, script, timeout=0.3)
    except TimeoutError as error:  # smtplib lets socket.timeout out
        assert isinstance(error, smtplib.SMTPException)
        assert isinstance(error, SMTPTimeoutError)
    else:
        pytest.fail("no TimeoutError")


def test_a_caller_mistake_is_an_smtp_exception(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet()

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5)
        client.connect()
        try:
            client.sendmail("a@example.org", ["b@exa\nmple.org"], MESSAGE)
        except smtplib.SMTPException as error:
            assert isinstance(error, SMTPProtocolError) and not error.remote
        else:
            pytest.fail("no SMTPException")
        client.close()


def test_send_many_outcomes_are_smtplib_compatible(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        peer.greet(b"250-mx\r\n250 8BITMIME\r\n")
        peer.expect(b"MAIL")
        peer.send(b"553 5.1.8 bad sender\r\n")

    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5)
        client.connect()
        (outcome,) = client.send_many([("a@example.org", "b@example.org", MESSAGE)])
        assert isinstance(outcome, smtplib.SMTPSenderRefused)
        assert outcome.smtp_code == 553
        client.close()


def test_errors_still_pickle_and_keep_their_class(make_client: MakeClient) -> None:
    def script(peer: Peer) -> None:
        _transaction(peer, b"250 ok\r\n550 5.1.1 a\r\n550 5.1.1 b\r\n554 no\r\n")

    with pytest.raises(SMTPRecipientsRefused) as caught:
        _send(make_client, script)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, smtplib.SMTPRecipientsRefused)
    assert isinstance(copy, SMTPRecipientsRefused)
    assert str(copy) == str(caught.value)
    assert copy.recipients == caught.value.recipients  # type: ignore[attr-defined]
    assert isinstance(caught.value, SMTPError) and isinstance(caught.value, OSError)


def test_importing_an_adapter_does_not_import_smtplib() -> None:
    """The twins are made on the first error: ``import`` pays nothing for them."""
    code = (
        "import sys, smtpproto.blocking, smtpproto.asyncio_client, smtpproto.trio_client;"
        "assert 'smtplib' not in sys.modules, 'smtplib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_refused_sender_of_an_email_message_is_named(make_client: MakeClient) -> None:
    """``send_message`` without ``sender=``: ``SMTPSenderRefused.sender`` is the envelope
    sender taken from the message's headers."""

    def script(peer: Peer) -> None:
        peer.greet()
        for verb in (b"MAIL", b"RCPT", b"DATA"):
            peer.expect(verb)
        peer.send(b"553 5.1.8 bad sender\r\n503 no\r\n503 no\r\n")

    message = EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "bob@example.org"
    message.set_content("hi\n")
    with scripted(script) as sock:
        client = make_client(sock=sock, timeout=5)
        client.connect()
        try:
            client.send_message(message)
        except smtplib.SMTPSenderRefused as error:
            assert error.sender == "alice@example.org"
        else:
            pytest.fail("no SMTPSenderRefused")
        finally:
            client.close()


@pytest.mark.parametrize("pipelining", [True, False])
def test_send_many_names_the_refused_sender(make_client: MakeClient, pipelining: bool) -> None:
    """Each ``send_many`` outcome refused at MAIL is an ``SMTPSenderRefused`` whose
    ``sender`` is that message's envelope sender (it was None), tuple or email message,
    against the built-in server; it survives pickling."""
    refused = Rule(stage="mail", sender="refused@example.org", action=Respond(553, "no", "5.1.8"))
    message = EmailMessage()
    message["From"] = "Refused <refused@example.org>"
    message["To"] = "bob@example.org"
    message.set_content("hi\n")
    items = [
        ("a@example.org", ["b@example.org"], MESSAGE),
        ("refused@example.org", ["b@example.org"], MESSAGE),
        message,
    ]
    with (
        run_server(starttls=False, rules=[refused]) as server,
        make_client(host=server.host, port=server.port, tls="none", timeout=5) as client,
    ):
        outcomes = client.send_many(items, pipelining=pipelining)
    assert not isinstance(outcomes[0], BaseException)
    for outcome in outcomes[1:]:
        assert isinstance(outcome, smtplib.SMTPSenderRefused), outcome
        assert outcome.smtp_code == 553
        assert outcome.sender == "refused@example.org"
        copy = pickle.loads(pickle.dumps(outcome))
        assert isinstance(copy, smtplib.SMTPSenderRefused)
        assert copy.sender == "refused@example.org"
