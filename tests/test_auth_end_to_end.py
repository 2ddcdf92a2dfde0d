"""AUTH end to end (RFC 4954): every SASL mechanism through both engines, in memory.

Theory of operation: ``AuthPair`` joins a ``ClientConnection`` to a ``ServerConnection``
whose AUTH events go to an ``AuthExchange`` over the real server verifier, so each
mechanism is proved against an independent implementation of the other side, and the
client's transcript hook is checked for the secret (raw, base64, or inside any base64
token). The scripted tests then play a misbehaving server against the client engine:
forged SCRAM signatures, ``e=`` errors, endless or undecodable challenges, a 334 where
235 was due, 235 too early, the OAuth failure flows. Finally ``Session.login`` chooses
the mechanism from the AUTH list the server advertised after STARTTLS.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import feed, greeted
from server_support import Session as ServerSession
from smtpproto._client_config import ClientConfig, TLSPolicy
from smtpproto._connection import ClientConnection
from smtpproto._errors import RemoteProtocolError
from smtpproto._events import (
    NEED_DATA,
    Auth,
    AuthChallenge,
    AuthContinue,
    AuthFailed,
    AuthSucceeded,
    Ehlo,
    Event,
)
from smtpproto._reply import Reply
from smtpproto._sasl_server import (
    SERVER_MECHANISMS,
    CramMD5Server,
    LoginServer,
    OAuthBearerServer,
    PasswordLookup,
    PlainServer,
    ScramSHA1PlusServer,
    ScramSHA1Server,
    ScramSHA256PlusServer,
    ScramSHA256Server,
    ServerMechanism,
    Success,
    TokenCheck,
    XOAuth2Server,
)
from smtpproto._saslprep import SASLprepError, saslprep
from smtpproto._server_auth import AuthExchange
from smtpproto._server_events import (
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    EhloReceived,
    ServerEvent,
)
from smtpproto._server_replies import ehlo_reply
from smtpproto._session import Read, Session, UpgradeTLS, Write
from smtpproto.exceptions import SMTPProtocolError, SMTPReplyError
from smtpproto.sasl import (
    MECHANISM_PREFERENCE,
    ChannelBinding,
    ClientMechanism,
    CramMD5,
    Login,
    OAuthBearer,
    Plain,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
)

USER = "alice"
PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
TOKEN = "ya29.good-token-" + "g" * 40
BAD_TOKEN = "ya29.revoked-token-" + "r" * 40
LONG_TOKEN = "ya29.long-" + "t" * 600  # too long for the AUTH line: sent after a 334
CB = ChannelBinding("tls-exporter", bytes(range(32)))
OAUTH = ("XOAUTH2", "OAUTHBEARER")
EVERY = tuple(SERVER_MECHANISMS)
MAX_STEPS = 200


def lookup(user: str) -> str | None:
    return {USER: PASSWORD}.get(user)


def check_token(user: str, token: str) -> bool:
    return user == USER and token in (TOKEN, LONG_TOKEN)


Verifiers = Mapping[str, Callable[[ChannelBinding], ServerMechanism]]


def make_verifiers(lookup: PasswordLookup, check_token: TokenCheck) -> Verifiers:
    """A server verifier factory per mechanism name (``cb``: the server's TLS view)."""
    return {
        "PLAIN": lambda cb: PlainServer(lookup),
        "LOGIN": lambda cb: LoginServer(lookup),
        "CRAM-MD5": lambda cb: CramMD5Server(lookup),
        "SCRAM-SHA-1": lambda cb: ScramSHA1Server(lookup),
        "SCRAM-SHA-256": lambda cb: ScramSHA256Server(lookup),
        "SCRAM-SHA-1-PLUS": lambda cb: ScramSHA1PlusServer(lookup, channel_binding=cb),
        "SCRAM-SHA-256-PLUS": lambda cb: ScramSHA256PlusServer(lookup, channel_binding=cb),
        "XOAUTH2": lambda cb: XOAuth2Server(check_token),
        "OAUTHBEARER": lambda cb: OAuthBearerServer(check_token),
    }


VERIFIERS = make_verifiers(lookup, check_token)


def client_mechanism(
    name: str, secret: str, cb: ChannelBinding = CB, user: str = USER
) -> ClientMechanism:
    """The client side of ``name`` for ``user`` with ``secret`` (password or token)."""
    makers: dict[str, Callable[[], ClientMechanism]] = {
        "PLAIN": lambda: Plain(user, secret),
        "LOGIN": lambda: Login(user, secret),
        "CRAM-MD5": lambda: CramMD5(user, secret),
        "SCRAM-SHA-1": lambda: ScramSHA1(user, secret),
        "SCRAM-SHA-256": lambda: ScramSHA256(user, secret),
        "SCRAM-SHA-1-PLUS": lambda: ScramSHA1Plus(user, secret, channel_binding=cb),
        "SCRAM-SHA-256-PLUS": lambda: ScramSHA256Plus(user, secret, channel_binding=cb),
        "XOAUTH2": lambda: XOAuth2(user, secret),
        "OAUTHBEARER": lambda: OAuthBearer(user, secret),
    }
    return makers[name]()


def b64_tokens(line: bytes) -> list[bytes]:
    """Every space-separated token of ``line`` that decodes as base64, decoded."""
    decoded = []
    for token in line.split():
        try:
            decoded.append(base64.b64decode(token, validate=True))
        except (binascii.Error, ValueError):
            continue
    return decoded


def assert_secret_absent(lines: list[bytes], secret: str) -> None:
    """``secret`` appears in no line: not raw, not as base64, not inside a base64 token."""
    raw = secret.encode()
    for line in lines:
        assert raw not in line and base64.b64encode(raw) not in line, line
        assert not any(raw in token for token in b64_tokens(line)), line


class AuthPair:
    """A client engine and a server engine (AUTH by ``AuthExchange``) joined in memory.

    The client starts under implicit TLS so AUTH is allowed; the server advertises
    ``AUTH <offered>``; its SCRAM -PLUS verifiers see ``server_cb``.
    """

    def __init__(
        self,
        offered: str,
        *,
        server_cb: ChannelBinding = CB,
        verifiers: Verifiers = VERIFIERS,
    ) -> None:
        self.transcript: list[bytes] = []
        self.wire = bytearray()  # everything the client wrote
        self.server_cb = server_cb
        self.verifiers = verifiers
        self.exchanges: list[AuthExchange] = []
        self.events: list[Event] = []
        config = ClientConfig(
            tls_policy=TLSPolicy.IMPLICIT,
            transcript=lambda _direction, line: self.transcript.append(line),
        )
        self.client = ClientConnection(config)
        self.server = ServerSession(
            extensions=("AUTH " + offered,), tls_active=True, policy=self._auth_policy
        )
        self._delivered = 0
        self.exchange_bytes()
        self.exchange_bytes(self.client.send(Ehlo(hostname="client.test")))
        assert self.client.capabilities is not None

    def _auth_policy(self, event: ServerEvent) -> Reply | None:
        if isinstance(event, AuthRequested):
            self.exchanges.append(AuthExchange(self.verifiers[event.mechanism](self.server_cb)))
        if isinstance(event, (AuthRequested, AuthResponse, AuthCancelled)):
            return self.exchanges[-1].reply(event)
        return None

    def exchange_bytes(self, data: bytes = b"") -> list[Event]:
        """Deliver client bytes to the server and its replies back; the new events."""
        self.wire += data
        if data:
            self.server.feed(data)
        fresh = bytes(self.server.out[self._delivered :])
        self._delivered = len(self.server.out)
        if fresh:
            self.client.receive_data(fresh)
        new: list[Event] = []
        for _ in range(MAX_STEPS):
            event = self.client.next_event()
            if event is NEED_DATA:
                self.events += new
                return new
            assert isinstance(event, Event)
            new.append(event)
        raise AssertionError("the client engine never needed data")

    def authenticate(self, mechanism: ClientMechanism) -> Event:
        """Run AUTH with ``mechanism`` to its end; the ``AuthSucceeded``/``AuthFailed``."""
        new = self.exchange_bytes(self.client.send(Auth(mechanism=mechanism)))
        for _ in range(MAX_STEPS):
            (event,) = new
            if not isinstance(event, AuthChallenge):
                return event
            new = self.exchange_bytes(self.client.send(AuthContinue()))
        raise AssertionError("the AUTH exchange never ended")


# -- every mechanism through both engines ---------------------------------------------------


def test_every_server_verifier_is_exercised() -> None:
    assert set(VERIFIERS) == set(SERVER_MECHANISMS)


@pytest.mark.parametrize("name", EVERY)
def test_right_credentials_authenticate(name: str) -> None:
    secret = TOKEN if name in OAUTH else PASSWORD
    pair = AuthPair(" ".join(EVERY))
    event = pair.authenticate(client_mechanism(name, secret))
    assert isinstance(event, AuthSucceeded) and event.reply.code == 235
    assert pair.client.authenticated and pair.server.conn.authenticated
    (exchange,) = pair.exchanges
    assert exchange.done and exchange.identity == USER and exchange.failure_reason is None
    assert b"AUTH " + name.encode() in [line.split(b" <")[0] for line in pair.transcript]
    assert_secret_absent(pair.transcript, secret)
    if name in ("PLAIN", "LOGIN", *OAUTH):  # the secret did cross the wire, redacted
        assert any(secret.encode() in token for token in b64_tokens(bytes(pair.wire)))
    else:  # challenge-response: the secret itself never leaves the client
        assert_secret_absent(bytes(pair.wire).split(b"\r\n"), secret)


@pytest.mark.parametrize("name", EVERY)
def test_wrong_secret_is_535_and_auth_failed(name: str) -> None:
    wrong = BAD_TOKEN if name in OAUTH else WRONG
    pair = AuthPair(" ".join(EVERY))
    mechanism = client_mechanism(name, wrong)
    event = pair.authenticate(mechanism)
    assert isinstance(event, AuthFailed) and event.reply.code == 535
    assert not pair.client.authenticated and not pair.server.conn.authenticated
    (exchange,) = pair.exchanges
    assert exchange.done and exchange.identity is None
    assert exchange.failure_reason in ("invalid credentials", "invalid token")
    assert_secret_absent(pair.transcript, wrong)
    if name in OAUTH:  # RFC 7628 §3.2.2: the error JSON reached the client
        assert isinstance(mechanism, (XOAuth2, OAuthBearer))
        assert mechanism.error_details == {"status": "invalid_token", "schemes": "bearer"}
    # the session goes on: a second attempt with the right secret succeeds
    right = TOKEN if name in OAUTH else PASSWORD
    assert isinstance(pair.authenticate(client_mechanism(name, right)), AuthSucceeded)


@pytest.mark.parametrize("name", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
@pytest.mark.parametrize(
    ("server_cb", "reason"),
    [
        (ChannelBinding("tls-exporter", b"\xff" * 32), "channel binding mismatch"),
        (ChannelBinding("tls-server-end-point", CB.data), "unsupported channel binding type"),
    ],
)
def test_channel_binding_mismatch_fails(name: str, server_cb: ChannelBinding, reason: str) -> None:
    # The client's TLS view differs from the server's (a man in the middle): RFC 5802 §6.
    pair = AuthPair(name, server_cb=server_cb)
    event = pair.authenticate(client_mechanism(name, PASSWORD))
    assert isinstance(event, AuthFailed) and event.reply.code == 535
    assert pair.exchanges[0].failure_reason == reason and not pair.client.authenticated


def test_channel_binding_downgrade_is_detected() -> None:
    # The client has binding data but saw no -PLUS offer (stripped): flag "y"; the server
    # offers -PLUS, so it knows the offer was removed in transit (RFC 5802 §6).
    verifiers = {"SCRAM-SHA-256": lambda cb: ScramSHA256Server(lookup, channel_binding=cb)}
    pair = AuthPair("SCRAM-SHA-256", verifiers=verifiers)
    mechanism = ScramSHA256(USER, PASSWORD, channel_binding=CB, server_supports_plus=False)
    event = pair.authenticate(mechanism)
    assert isinstance(event, AuthFailed)
    assert pair.exchanges[0].failure_reason is not None
    assert "downgrade" in pair.exchanges[0].failure_reason


# User names that need saslname escaping (RFC 5802 §5.1) or are not ASCII; passwords that
# SASLprep maps (RFC 4013 §3: soft hyphen to nothing, NFKC) before the server compares.
TRICKY_USERS = ("a,b=c", "j\u00f6rg")
PREPPED = (("I\u00adX", "IX"), ("\u2163-ninja", "IV-ninja"))


@pytest.mark.parametrize("user", TRICKY_USERS)
@pytest.mark.parametrize("name", EVERY)
def test_escaped_and_non_ascii_user_names(name: str, user: str) -> None:
    verifiers = make_verifiers({user: PASSWORD}.get, lambda u, t: (u, t) == (user, TOKEN))
    pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
    secret = TOKEN if name in OAUTH else PASSWORD
    event = pair.authenticate(client_mechanism(name, secret, user=user))
    assert isinstance(event, AuthSucceeded) and pair.exchanges[0].identity == user


@pytest.mark.parametrize(("given", "stored"), PREPPED)
@pytest.mark.parametrize("name", [n for n in EVERY if n not in (*OAUTH, "CRAM-MD5")])
def test_saslprep_equivalent_passwords(name: str, given: str, stored: str) -> None:
    pair = AuthPair(" ".join(EVERY), verifiers=make_verifiers({USER: stored}.get, check_token))
    event = pair.authenticate(client_mechanism(name, given))
    assert isinstance(event, AuthSucceeded)
    assert_secret_absent(pair.transcript, given)


@pytest.mark.parametrize(
    ("name", "user", "secret"),
    [
        ("PLAIN", USER, "p" * 400),
        ("SCRAM-SHA-256", "u" * 400, PASSWORD),
        ("SCRAM-SHA-1-PLUS", "u" * 400, PASSWORD),
        ("XOAUTH2", USER, LONG_TOKEN),
        ("OAUTHBEARER", USER, LONG_TOKEN),
    ],
)
def test_long_initial_response_after_an_empty_334(name: str, user: str, secret: str) -> None:
    # RFC 4954 §4: too long for the 512-octet AUTH line, so it follows a "334 " challenge.
    verifiers = make_verifiers({user: secret}.get, lambda u, t: (u, t) == (user, secret))
    pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
    event = pair.authenticate(client_mechanism(name, secret, user=user))
    assert isinstance(event, AuthSucceeded)
    assert bytes(pair.wire).split(b"\r\n")[1] == b"AUTH " + name.encode()
    assert_secret_absent(pair.transcript, secret)


def test_client_cancel_reaches_the_server_engine() -> None:
    # The client refuses the server's iteration count (RFC 5802 §5.1: at least 4096
    # here, the client wants more): it answers "*", the server engine replies 501.
    pair = AuthPair("SCRAM-SHA-256")
    event = pair.authenticate(ScramSHA256(USER, PASSWORD, min_iterations=10_000))
    assert isinstance(event, AuthFailed) and event.reply.code == 501
    assert pair.exchanges[0].failure_reason == "cancelled by the client"
    assert bytes(pair.wire).endswith(b"\r\n*\r\n") and not pair.server.conn.authenticated
    assert isinstance(pair.authenticate(ScramSHA256(USER, PASSWORD)), AuthSucceeded)


def _prep_ok(text: str) -> bool:
    try:
        return bool(saslprep(text, allow_unassigned=True))
    except SASLprepError:
        return False


CREDENTIAL = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x24F, blacklist_characters="\x7f"),
    min_size=1,
    max_size=24,
).filter(_prep_ok)


# SCRAM sends the user name after SASLprep (RFC 5802 §5.1) and the verifier looks that
# form up; PLAIN, LOGIN and CRAM-MD5 look up the name as sent. Only names SASLprep leaves
# alone are looked up the same way by every mechanism (see the report on issue 4).
USER_NAME = CREDENTIAL.filter(lambda text: saslprep(text, allow_unassigned=True) == text)


@settings(max_examples=25, deadline=None)
@given(user=USER_NAME, password=CREDENTIAL, other=CREDENTIAL)
@pytest.mark.parametrize("name", [n for n in EVERY if n not in OAUTH])
def test_any_credentials_round_trip(name: str, user: str, password: str, other: str) -> None:
    # Whatever the user name and password (escaping, SASLprep, spaces), the right
    # password authenticates and another one does not.
    verifiers = make_verifiers({user: password}.get, check_token)
    pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
    right = pair.authenticate(client_mechanism(name, password, user=user))
    assert isinstance(right, AuthSucceeded) and pair.exchanges[0].identity == user
    if saslprep(other, allow_unassigned=True) != saslprep(password, allow_unassigned=True):
        pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
        wrong = pair.authenticate(client_mechanism(name, other, user=user))
        assert isinstance(wrong, AuthFailed) and wrong.reply.code == 535


# -- a misbehaving server against the client engine -----------------------------------------

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
    assert not isinstance(first, Success) and hasattr(first, "data")
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
    with pytest.raises(RemoteProtocolError, match="failed the mechanism's check"):
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


# -- Session.login chooses from the AUTH list learned after STARTTLS ------------------------


class LoginWire:
    """Plays the adapter for ``Session`` drivers against a server engine: STARTTLS is
    "negotiated" by telling both engines; the server advertises ``before`` without TLS
    and ``after`` with it, and verifies AUTH with the real verifiers."""

    def __init__(self, before: str, after: str, binding: ChannelBinding | None = CB) -> None:
        self.before, self.after, self.binding = before, after, binding
        self.requested: list[str] = []
        self.exchanges: list[AuthExchange] = []
        self.server = ServerSession(policy=self._policy)
        self.pending = bytes(self.server.out)
        self.session = Session(ClientConfig(), server_hostname="mx.test", local_hostname="c.test")
        self.run(self.session.open())
        assert self.session.conn.tls_active

    def _policy(self, event: ServerEvent) -> Reply | None:
        if isinstance(event, EhloReceived):
            tls = self.server.conn.tls_active
            auth = self.after if tls else self.before
            extensions = ["PIPELINING"] + ([] if tls else ["STARTTLS"])
            return ehlo_reply("mx.test", extensions + ([f"AUTH {auth}"] if auth else []))
        if isinstance(event, AuthRequested):
            self.requested.append(event.mechanism)
            self.exchanges.append(AuthExchange(VERIFIERS[event.mechanism](CB)))
        if isinstance(event, (AuthRequested, AuthResponse, AuthCancelled)):
            return self.exchanges[-1].reply(event)
        return None

    def run(self, driver: Any) -> Any:
        answer: Any = None
        for _ in range(MAX_STEPS):
            try:
                request = driver.send(answer)
            except StopIteration as stop:
                return stop.value
            answer = None
            if isinstance(request, Write):
                start = len(self.server.out)
                self.server.feed(request.data)
                self.pending += bytes(self.server.out[start:])
            elif isinstance(request, Read):
                assert self.pending, "the client waits but the server said nothing"
                answer, self.pending = self.pending, b""
            else:
                assert isinstance(request, UpgradeTLS)
                self.server.conn.tls_established()
                answer = self.binding
        raise AssertionError("the driver never finished")


def test_login_uses_only_the_auth_list_learned_after_starttls() -> None:
    wire = LoginWire(before="SCRAM-SHA-256 CRAM-MD5 PLAIN", after="LOGIN PLAIN")
    assert wire.run(wire.session.login(USER, PASSWORD)).code == 235
    assert wire.requested == ["PLAIN"] and wire.session.conn.authenticated
    wire = LoginWire(before="PLAIN", after="PLAIN SCRAM-SHA-1 SCRAM-SHA-256")
    assert wire.run(wire.session.login(USER, PASSWORD)).code == 235
    assert wire.requested == ["SCRAM-SHA-256"]


def test_login_refused_when_auth_is_offered_only_before_starttls() -> None:
    wire = LoginWire(before="PLAIN LOGIN", after="")
    with pytest.raises(SMTPProtocolError, match="does not advertise AUTH"):
        wire.run(wire.session.login(USER, PASSWORD))
    assert wire.requested == []


@pytest.mark.parametrize("strongest", MECHANISM_PREFERENCE)
def test_login_picks_the_strongest_offered(strongest: str) -> None:
    weaker = MECHANISM_PREFERENCE[MECHANISM_PREFERENCE.index(strongest) :]
    wire = LoginWire(before="PLAIN", after=" ".join(reversed(weaker)) + " XOAUTH2")
    assert wire.run(wire.session.login(USER, PASSWORD)).code == 235
    assert wire.requested == [strongest]
    assert wire.exchanges[0].identity == USER and wire.server.conn.authenticated


def test_login_without_channel_binding_skips_plus() -> None:
    wire = LoginWire(before="", after="SCRAM-SHA-256-PLUS SCRAM-SHA-1 PLAIN", binding=None)
    assert wire.run(wire.session.login(USER, PASSWORD)).code == 235
    assert wire.requested == ["SCRAM-SHA-1"]


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [("PLAIN XOAUTH2 OAUTHBEARER", "OAUTHBEARER"), ("SCRAM-SHA-256 XOAUTH2", "XOAUTH2")],
)
def test_login_with_a_token_prefers_oauth(offered: str, chosen: str) -> None:
    wire = LoginWire(before="PLAIN", after=offered)
    assert wire.run(wire.session.login(USER, PASSWORD, token=TOKEN)).code == 235
    assert wire.requested == [chosen]


def test_login_with_a_token_but_no_oauth_offered() -> None:
    wire = LoginWire(before="XOAUTH2", after="PLAIN LOGIN")
    with pytest.raises(SMTPProtocolError, match="no offered AUTH mechanism fits"):
        wire.run(wire.session.login(USER, token=TOKEN))
    assert wire.requested == []


def test_login_wrong_password_raises_and_session_stays_usable() -> None:
    wire = LoginWire(before="PLAIN", after="SCRAM-SHA-256 PLAIN")
    with pytest.raises(SMTPReplyError) as info:
        wire.run(wire.session.login(USER, WRONG))
    assert info.value.code == 535 and wire.requested == ["SCRAM-SHA-256"]
    assert wire.session.usable and not wire.session.conn.authenticated
    assert wire.run(wire.session.login(USER, PASSWORD)).code == 235
