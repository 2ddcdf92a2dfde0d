"""Shared pieces of the AUTH tests: credentials, verifiers, and two engines joined.

``AuthPair`` joins a ``ClientConnection`` to a ``ServerConnection`` whose AUTH events go
to an ``AuthExchange`` over the real server verifier (``smtpproto.sasl.server``), so a client
mechanism is proved against an independent implementation of the other side. Its
transcript hook output and the bytes the client wrote are kept for secret checks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping

from server_support import Session as ServerSession
from smtpproto.client_engine.config import ClientConfig, TLSPolicy
from smtpproto.client_engine.connection import ClientConnection
from smtpproto.client_engine.events import (
    NEED_DATA,
    Auth,
    AuthChallenge,
    AuthContinue,
    Ehlo,
    Event,
)
from smtpproto.sasl import (
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
from smtpproto.sasl.server import (
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
    TokenCheck,
    XOAuth2Server,
)
from smtpproto.server_engine.auth import AuthExchange
from smtpproto.server_engine.events import (
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    ServerEvent,
)
from smtpproto.wire.reply import Reply

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
