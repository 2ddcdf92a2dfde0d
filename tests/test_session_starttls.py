"""``Session.starttls()``: the rest of ``open`` after ``open(until="ehlo")`` (for
commands that must precede STARTTLS, such as swaks' ``--xclient-before-starttls``)."""

from __future__ import annotations

import pytest

from engine_helpers import ScriptedServer
from session_helpers import Transport
from smtpproto.client_engine.config import ClientConfig, TLSPolicy
from smtpproto.drivers.session import Session
from smtpproto.exceptions import SMTPProtocolError

EHLO_TLS = b"250-mx.example.org\r\n250-PIPELINING\r\n250-XCLIENT NAME ADDR\r\n250 STARTTLS\r\n"
EHLO_AFTER = b"250-mx.example.org\r\n250 PIPELINING\r\n"


def verbs(server: ScriptedServer) -> list[bytes]:
    return [line.split(b" ", 1)[0] for line in server.lines]


def test_xclient_between_the_first_ehlo_and_starttls() -> None:
    server = ScriptedServer(
        {b"EHLO": [EHLO_TLS, EHLO_TLS, EHLO_AFTER], b"XCLIENT": [b"220 mx ESMTP\r\n"]}
    )
    session = Session(ClientConfig(tls_policy=TLSPolicy.REQUIRED), server_hostname="mx")
    transport = Transport(server)
    transport.run(session.open(until="ehlo"))
    assert transport.run(session.xclient({"ADDR": "192.0.2.1"})).code == 220
    reply = transport.run(session.starttls())
    assert reply.code == 250 and session.conn.tls_active and transport.tls_upgrades == 1
    assert verbs(server) == [b"EHLO", b"XCLIENT", b"EHLO", b"STARTTLS", b"EHLO"]
    assert transport.run(session.starttls()) == reply  # nothing more to do
    assert verbs(server)[-1] == b"EHLO"


@pytest.mark.parametrize("policy", [TLSPolicy.NONE, TLSPolicy.OPPORTUNISTIC])
def test_nothing_to_start(policy: TLSPolicy) -> None:
    server = ScriptedServer({b"EHLO": [EHLO_AFTER]})
    session = Session(ClientConfig(tls_policy=policy))
    transport = Transport(server)
    hello = transport.run(session.open(until="ehlo"))
    assert transport.run(session.starttls()) == hello and verbs(server) == [b"EHLO"]


def test_starttls_before_open_is_refused() -> None:
    session = Session(ClientConfig())
    with pytest.raises(SMTPProtocolError, match="needs an open session"):
        Transport(ScriptedServer()).run(session.starttls())
