"""A misbehaving server against the client engine's AUTH (RFC 4954), scripted.

Forged SCRAM server signatures and ``e=`` errors (RFC 5802 §5), a 334 where 235 was
due, 235 before the mechanism finished, endless challenges (the guard answers ``*``),
undecodable challenges (``*``, no credentials sent) and the OAuth failure flows
(XOAUTH2; RFC 7628 §3.2.3). Each runs with both reply parser twins. Genuine server
messages come from the real verifiers of ``smtpproto.sasl.server`` and are then tampered with.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from auth_helpers import (
    CB,
    EVERY,
    LONG_TOKEN,
    OAUTH,
    PASSWORD,
    TOKEN,
    USER,
    assert_secret_absent,
    client_mechanism,
    lookup,
)
from engine_helpers import feed, greeted
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    Auth,
    AuthChallenge,
    AuthContinue,
    AuthFailed,
    AuthSucceeded,
)
from smtpproto.sasl import (
    ClientMechanism,
    Login,
    OAuthBearer,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
)
from smtpproto.sasl.server import (
    Challenge,
    ScramSHA256PlusServer,
    ScramSHA256Server,
    ServerMechanism,
    Success,
)
from smtpproto.wire.errors import RemoteProtocolError

EHLO_EVERY = b"250-mx.example.org\r\n250 AUTH " + " ".join(EVERY).encode() + b"\r\n"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def scripted(parser_cls: Any, **config: Any) -> tuple[ClientConnection, list[bytes]]:
    lines: list[bytes] = []
    conn = greeted(
        parser_cls,
        EHLO_EVERY,
        tls_policy=TLSPolicy.IMPLICIT,
        transcript=lambda _direction, line: lines.append(line),
        **config,
    )
    return conn, lines


def scram_to_final(parser_cls: Any, plus: bool = False) -> tuple[ClientConnection, bytes, bytes]:
    """A SCRAM-SHA-256(-PLUS) exchange up to the server-final message: the connection,
    the client-final it sent and the genuine ``v=`` a real verifier would send."""
    conn, _ = scripted(parser_cls)
    if plus:
        client: ClientMechanism = ScramSHA256Plus(USER, PASSWORD, channel_binding=CB)
        server: ServerMechanism = ScramSHA256PlusServer(lookup, channel_binding=CB)
    else:
        client, server = ScramSHA256(USER, PASSWORD), ScramSHA256Server(lookup)
    wire = conn.send(Auth(mechanism=client))
    first = server.start(base64.b64decode(wire.split()[2]))
    assert isinstance(first, Challenge)
    (event,) = feed(conn, b"334 " + b64(first.data) + b"\r\n")
    assert isinstance(event, AuthChallenge)
    client_final = conn.send(AuthContinue())
    final = server.step(base64.b64decode(client_final.strip()))
    assert isinstance(final, Success) and final.data is not None
    return conn, client_final, final.data


def cancel_then(conn: ClientConnection, challenge: bytes) -> None:
    """Feed the 334 ``challenge``; the client must answer ``*`` and fail on the 501."""
    (event,) = feed(conn, b"334 " + b64(challenge) + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge == challenge
    assert conn.send(AuthContinue()) == b"*\r\n"
    (event,) = feed(conn, b"501 5.7.0 authentication cancelled\r\n")
    assert isinstance(event, AuthFailed) and not conn.authenticated


@pytest.mark.parametrize("plus", [False, True])
def test_scripted_genuine_server_final_then_235_succeeds(parser_cls: Any, plus: bool) -> None:
    conn, _, verifier = scram_to_final(parser_cls, plus)
    feed(conn, b"334 " + b64(verifier) + b"\r\n")
    assert conn.send(AuthContinue()) == b"\r\n"  # RFC 4954 §4: empty response
    (event,) = feed(conn, b"235 2.7.0 ok\r\n")
    assert isinstance(event, AuthSucceeded) and conn.authenticated


def test_scram_server_signature_mismatch_cancels(parser_cls: Any) -> None:
    conn, _, verifier = scram_to_final(parser_cls)
    forged = b"v=" + b64(bytes(32))
    assert forged != verifier
    cancel_then(conn, forged)


def test_scram_forged_signature_then_lying_235_is_an_error(parser_cls: Any) -> None:
    conn, _, _ = scram_to_final(parser_cls)
    feed(conn, b"334 " + b64(b"v=" + b64(b"\x01" * 32)) + b"\r\n")
    assert conn.send(AuthContinue()) == b"*\r\n"
    # The "*" already abandoned the exchange: a 235 to it is refused first (RFC 4954 §4).
    with pytest.raises(RemoteProtocolError, match="after it was cancelled with"):
        feed(conn, b"235 2.7.0 ok anyway\r\n")
    assert not conn.authenticated


@pytest.mark.parametrize("stage", ["server-first", "server-final"])
def test_scram_e_error_cancels(parser_cls: Any, stage: str) -> None:
    if stage == "server-final":
        conn, _, _ = scram_to_final(parser_cls)
    else:
        conn, _ = scripted(parser_cls)
        conn.send(Auth(mechanism=ScramSHA256(USER, PASSWORD)))
    cancel_then(conn, b"e=invalid-proof")


def test_scram_334_where_235_was_due(parser_cls: Any) -> None:
    conn, _, verifier = scram_to_final(parser_cls)
    feed(conn, b"334 " + b64(verifier) + b"\r\n")
    assert conn.send(AuthContinue()) == b"\r\n"
    cancel_then(conn, b"one more thing")


@pytest.mark.parametrize(
    ("name", "answers"), [("PLAIN", 0), ("CRAM-MD5", 1), ("XOAUTH2", 1), ("OAUTHBEARER", 1)]
)
def test_334_where_235_was_due_other_mechanisms(parser_cls: Any, name: str, answers: int) -> None:
    # PLAIN: its only message was on the AUTH line; the others answered one challenge.
    conn, _ = scripted(parser_cls)
    conn.send(Auth(mechanism=client_mechanism(name, TOKEN if name in OAUTH else PASSWORD)))
    for _ in range(answers):
        feed(conn, b"334 " + b64(b'{"status":"401"}') + b"\r\n")
        assert conn.send(AuthContinue()) != b"*\r\n"
    cancel_then(conn, b"again")


@pytest.mark.parametrize("answers", [0, 1])
def test_scram_235_before_server_final_is_an_error(parser_cls: Any, answers: int) -> None:
    # 235 straight after the AUTH line, or after the client-final without the v=.
    if answers:
        conn, _, _ = scram_to_final(parser_cls)
    else:
        conn, _ = scripted(parser_cls)
        conn.send(Auth(mechanism=ScramSHA256(USER, PASSWORD)))
    with pytest.raises(RemoteProtocolError, match="without proving it knows the password"):
        feed(conn, b"235 2.7.0 ok\r\n")
    assert not conn.authenticated


@pytest.mark.parametrize("name", ["LOGIN", "CRAM-MD5"])
def test_235_before_the_mechanism_finished_is_an_error(parser_cls: Any, name: str) -> None:
    conn, _ = scripted(parser_cls)
    conn.send(Auth(mechanism=client_mechanism(name, PASSWORD)))
    if name == "LOGIN":  # the user name went out, the password did not
        feed(conn, b"334 " + b64(b"Username:") + b"\r\n")
        conn.send(AuthContinue())
    with pytest.raises(RemoteProtocolError, match="failed the mechanism's check"):
        feed(conn, b"235 2.7.0 ok\r\n")
    assert not conn.authenticated


@pytest.mark.parametrize("name", EVERY)
def test_endless_challenges_end_in_cancel(parser_cls: Any, name: str) -> None:
    rounds = 3
    conn, _ = scripted(parser_cls, max_auth_rounds=rounds)
    mechanism = client_mechanism(name, TOKEN if name in OAUTH else PASSWORD)
    conn.send(Auth(mechanism=mechanism))
    answers = []
    for _ in range(rounds + 1):
        feed(conn, b"334 " + b64(b"again") + b"\r\n")
        answers.append(conn.send(AuthContinue()))
        if answers[-1] == b"*\r\n":
            break
    assert answers[-1] == b"*\r\n" and len(answers) <= rounds + 1
    with pytest.raises(RemoteProtocolError, match="keeps challenging"):
        for _ in range(rounds + 2):
            feed(conn, b"334 " + b64(b"again") + b"\r\n")
            conn.send(AuthContinue())


def test_challenge_guard_stops_login_before_the_password(parser_cls: Any) -> None:
    conn, _ = scripted(parser_cls, max_auth_rounds=1)
    conn.send(Auth(mechanism=Login(USER, PASSWORD)))
    feed(conn, b"334 " + b64(b"Username:") + b"\r\n")
    assert conn.send(AuthContinue()) == b64(USER.encode()) + b"\r\n"
    feed(conn, b"334 " + b64(b"Password:") + b"\r\n")
    assert conn.send(AuthContinue()) == b"*\r\n"  # the guard, not the mechanism


# Credentials that are not on the AUTH line: an undecodable first challenge must not
# draw them out (PLAIN and the OAuth tokens are too long for the line).
NOT_ON_THE_LINE: list[tuple[str, str]] = [
    ("PLAIN", "p" * 400),
    ("LOGIN", PASSWORD),
    ("CRAM-MD5", PASSWORD),
    ("SCRAM-SHA-1", PASSWORD),
    ("SCRAM-SHA-256", PASSWORD),
    ("SCRAM-SHA-1-PLUS", PASSWORD),
    ("SCRAM-SHA-256-PLUS", PASSWORD),
    ("XOAUTH2", LONG_TOKEN),
    ("OAUTHBEARER", LONG_TOKEN),
]


@pytest.mark.parametrize(("name", "secret"), NOT_ON_THE_LINE)
@pytest.mark.parametrize("bad", [b"!!not-base64", b"YWJj=YQ==", b"abc"])
def test_invalid_base64_challenge_sends_no_credentials(
    parser_cls: Any, name: str, secret: str, bad: bytes
) -> None:
    conn, lines = scripted(parser_cls)
    wire = conn.send(Auth(mechanism=client_mechanism(name, secret)))
    (event,) = feed(conn, b"334 " + bad + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge is None
    answer = conn.send(AuthContinue())
    assert answer == b"*\r\n"
    assert_secret_absent([wire, answer], secret)
    (event,) = feed(conn, b"501 5.5.2 cannot decode\r\n")
    assert isinstance(event, AuthFailed)
    assert_secret_absent(lines, secret)


@pytest.mark.parametrize(("name", "answer"), [("XOAUTH2", b"\r\n"), ("OAUTHBEARER", b"AQ==\r\n")])
def test_oauth_failure_flow(parser_cls: Any, name: str, answer: bytes) -> None:
    # XOAUTH2 (Google, Microsoft) and RFC 7628 §3.2.3: a 334 with base64 JSON, the fixed
    # answer (empty line; ^A), then 535 with the error details kept for the caller.
    details = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
    conn, lines = scripted(parser_cls)
    mechanism = client_mechanism(name, TOKEN)
    assert isinstance(mechanism, (XOAuth2, OAuthBearer))
    conn.send(Auth(mechanism=mechanism))
    (event,) = feed(conn, b"334 " + b64(json.dumps(details).encode()) + b"\r\n")
    assert isinstance(event, AuthChallenge) and json.loads(event.challenge or b"") == details
    assert conn.send(AuthContinue()) == answer
    (event,) = feed(conn, b"535 5.7.8 Username and Password not accepted\r\n")
    assert isinstance(event, AuthFailed) and event.reply.code == 535
    assert mechanism.error_details == details and not conn.authenticated
    assert_secret_absent(lines, TOKEN)


@pytest.mark.parametrize("name", OAUTH)
def test_oauth_error_then_lying_235_is_an_error(parser_cls: Any, name: str) -> None:
    conn, _ = scripted(parser_cls)
    conn.send(Auth(mechanism=client_mechanism(name, TOKEN)))
    feed(conn, b"334 " + b64(b"not json") + b"\r\n")
    conn.send(AuthContinue())
    with pytest.raises(RemoteProtocolError, match="after reporting an error"):
        feed(conn, b"235 2.7.0 ok\r\n")
