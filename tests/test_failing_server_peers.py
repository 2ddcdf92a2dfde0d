"""The built-in server failing on purpose with smtplib and aiosmtplib as the clients
(over 127.0.0.1): what users of those libraries test their error handling against.
This project's own clients: ``tests/adapters/test_failing_server.py``.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from typing import Any

import aiosmtplib
import pytest

from smtpproto.server import Session
from smtpproto.server_engine.events import RcptReceived, VrfyReceived
from smtpproto.testing import (
    Disconnect,
    Drop,
    Greylist,
    Respond,
    Rule,
    run_server,
)
from smtpproto.wire.reply import Reply

MESSAGE = b"Subject: peers\r\n\r\nhello\r\n"
TIMEOUT = 10.0


def test_smtplib_sees_per_recipient_refusals() -> None:
    rules = [
        Rule(stage="rcpt", recipient="bob@y.test", action=Respond(550, "No such user", "5.1.1"))
    ]
    with run_server(starttls=False, rules=rules) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            refused = client.sendmail("a@x.test", ["bob@y.test", "ann@y.test"], MESSAGE)
            assert refused == {"bob@y.test": (550, b"5.1.1 No such user")}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@x.test", ["bob@y.test"], MESSAGE)
        assert [m.recipients for m in server.wait_for_messages(1, TIMEOUT)] == [("ann@y.test",)]


def test_smtplib_sees_421_mid_transaction_and_a_drop_after_the_dot() -> None:
    rules = [
        Rule(stage="rcpt", message=1, action=Disconnect("Shutting down")),
        Rule(stage="data_end", message=2, action=Drop()),
    ]
    with run_server(starttls=False, rules=rules) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
            assert refused.value.recipients["b@y.test"][0] == 421
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        try:
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        finally:
            client.close()
        assert len(server.wait_for_messages(1, TIMEOUT)) == 1  # kept, though unanswered


def test_smtplib_greylisted_then_accepted() -> None:
    now = [0.0]
    rules = [Rule(stage="rcpt", action=Greylist(retry_after=30))]
    with (
        run_server(starttls=False, rules=rules, clock=lambda: now[0]) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        code, text = refused.value.recipients["b@y.test"]
        assert (code, text) == (451, b"4.7.1 Greylisted, please try again later")
        now[0] = 30.0
        assert client.sendmail("a@x.test", ["b@y.test"], MESSAGE) == {}


def test_smtplib_size_limit_is_advertised_and_the_declared_size_refused() -> None:
    with run_server(starttls=False, max_message_size=64) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "64"
            with pytest.raises(smtplib.SMTPSenderRefused) as info:  # MAIL ... SIZE=90
                client.sendmail("a@x.test", ["b@y.test"], MESSAGE + b"x" * 60)
            assert info.value.smtp_code == 552
        assert server.messages == []


def test_smtplib_auth_refused() -> None:
    rules = [Rule(stage="auth", action=Respond(535, "Authentication credentials invalid", "5.7.8"))]
    with (
        run_server(
            starttls=False, users={"u": "p"}, allow_plaintext_auth=True, rules=rules
        ) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("u", "p")
        assert info.value.smtp_code == 535


def test_smtplib_refused_session() -> None:
    rules = [Rule(stage="connect", action=Respond(554, "No SMTP service here", "5.7.1"))]
    with run_server(starttls=False, rules=rules) as server, pytest.raises(smtplib.SMTPConnectError):
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)


def test_aiosmtplib_sees_refusals_a_421_and_a_drop() -> None:
    rules = [
        Rule(stage="rcpt", recipient="bob@y.test", action=Respond(550, "No such user", "5.1.1")),
        Rule(stage="data_end", sender="spam@x.test", action=Respond(554, "Spam", "5.7.1")),
        Rule(stage="mail", sender="busy@x.test", action=Disconnect()),
        Rule(stage="data_end", sender="lost@x.test", action=Drop()),
    ]

    async def main(host: str, port: int) -> None:
        kwargs = {"hostname": host, "port": port, "timeout": TIMEOUT, "start_tls": False}
        async with aiosmtplib.SMTP(**kwargs) as client:
            refused, _ = await client.sendmail("a@x.test", ["bob@y.test", "ann@y.test"], MESSAGE)
            assert refused["bob@y.test"].code == 550
            with pytest.raises(aiosmtplib.SMTPDataError) as data:
                await client.sendmail("spam@x.test", ["ann@y.test"], MESSAGE)
            assert data.value.code == 554
        async with aiosmtplib.SMTP(**kwargs) as client:
            with pytest.raises((aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPServerDisconnected)):
                await client.sendmail("busy@x.test", ["ann@y.test"], MESSAGE)
        client = aiosmtplib.SMTP(**kwargs)
        await client.connect()
        try:
            with pytest.raises(aiosmtplib.SMTPServerDisconnected):
                await client.sendmail("lost@x.test", ["ann@y.test"], MESSAGE)
        finally:
            client.close()

    with run_server(starttls=False, rules=rules) as server:
        asyncio.run(main(server.host, server.port))
        senders = [m.sender for m in server.wait_for_messages(2, TIMEOUT)]
        assert senders == ["a@x.test", "lost@x.test"]


def test_a_slow_reply_arrives_after_the_delay_without_blocking_other_sessions() -> None:
    rules = [Rule(stage="connect", connection=1, delay=5.0)]
    with run_server(starttls=False, rules=rules) as server:
        slow = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        try:
            slow.settimeout(0.2)
            with pytest.raises(socket.timeout):
                slow.recv(100)  # nothing yet: the banner is held back
            with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as fast:
                assert fast.noop()[0] == 250  # the second connection is not slowed
        finally:
            slow.close()


def test_pipelined_commands_wait_behind_a_delayed_reply_in_order() -> None:
    rules = [Rule(stage="mail", delay=0.1), Rule(stage="rcpt", delay=0.05)]
    with run_server(starttls=False, rules=rules) as server:
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            sock.sendall(b"EHLO c.test\r\n")  # PIPELINING is known only after its reply
            for _ in range(20):  # the multiline 250, bounded
                line = reader.readline()
                assert line.startswith(b"250"), line
                if line.startswith(b"250 "):
                    break
            sock.sendall(
                b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
            )
            codes = []
            while len(codes) < 4:
                line = reader.readline()
                assert line, "the server closed early"
                if line[3:4] == b" ":
                    codes.append(int(line[:3]))
            assert codes == [250, 250, 250, 354]
            sock.sendall(MESSAGE + b".\r\nQUIT\r\n")
            assert reader.readline().startswith(b"250 ")
            assert reader.readline().startswith(b"221 ")
        assert server.wait_for_messages(1, TIMEOUT)[0].recipients == ("b@y.test", "c@y.test")


class _BadReplies(Session):
    """A policy with bugs: a reply RCPT cannot have, an ``async def`` hook."""

    def rcpt(self, event: RcptReceived) -> Reply:
        if event.recipient.startswith("354@"):
            return Reply(354, (b"Go ahead",))
        return super().rcpt(event)

    async def vrfy(self, event: VrfyReceived) -> Reply:  # type: ignore[override]
        return super().vrfy(event)

    def idle_timeout(self) -> Reply:
        return Reply(354, (b"not a last word",))


def test_a_reply_the_policy_cannot_give_is_a_policy_error_not_the_clients() -> None:
    # Before: the engine's LocalProtocolError was answered "500 5.5.2 Protocol error"
    # as if the client had broken the protocol, and the pytest fixture did not see it.
    with run_server(starttls=False, session_class=_BadReplies, timeout=0.5) as server:
        for command, argument in (("rcpt", "354@y.test"), ("vrfy", "a")):
            with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
                client.ehlo()
                client.mail("a@x.test")
                client.putcmd(command, argument if command == "vrfy" else f"TO:<{argument}>")
                assert client.getreply()[0] == 421
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            assert reader.readline().startswith(b"421 ")  # the idle timeout's own 421
        errors = server.policy_errors
        for _ in range(100):  # the last one is recorded right after the reply, bounded
            if len(errors) == 3:
                break
            time.sleep(0.05)
            errors = server.policy_errors
    assert len(errors) == 3, errors
    assert "354 cannot answer the pending 'rcpt'" in str(errors[0])
    assert "send() takes a Reply, got coroutine" in str(errors[1])
    assert "Reply(354, 'not a last word')" in str(errors[2])


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        ("mail", smtplib.SMTPSenderRefused),
        ("rcpt", smtplib.SMTPRecipientsRefused),
        ("data", smtplib.SMTPDataError),
        ("data_end", smtplib.SMTPDataError),
    ],
)
def test_smtplib_raises_for_a_421_the_error_of_the_command_it_answered(
    stage: Any, error: type[smtplib.SMTPException]
) -> None:
    # What docs/testing-server.md tells Django users (it said SMTPServerDisconnected).
    with run_server(starttls=False, rules=[Rule(stage=stage, action=Disconnect())]) as server:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        try:
            with pytest.raises(error) as info:
                client.sendmail("a@x.test", ["b@y.test"], MESSAGE)
        finally:
            client.close()
        raised = info.value
        if isinstance(raised, smtplib.SMTPRecipientsRefused):
            assert raised.recipients["b@y.test"][0] == 421
        else:
            assert isinstance(raised, smtplib.SMTPResponseException)
            assert raised.smtp_code == 421
        assert server.messages == []
