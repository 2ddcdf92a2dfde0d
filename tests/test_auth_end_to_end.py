"""AUTH end to end (RFC 4954): every SASL mechanism through both engines, in memory.

Each mechanism with a server verifier runs through ``auth_helpers.AuthPair`` (client
engine, server engine, ``AuthExchange``): the right secret gives ``AuthSucceeded``, a
wrong one 535 and ``AuthFailed``, and the client's transcript never shows the secret,
raw, as base64 or inside any base64 token. Then ``Session.login`` chooses the mechanism
from the AUTH list the server advertised after STARTTLS. The misbehaving-server paths
are in ``test_auth_scripted.py``.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_helpers import (
    BAD_TOKEN,
    CB,
    EVERY,
    LONG_TOKEN,
    MAX_STEPS,
    OAUTH,
    PASSWORD,
    TOKEN,
    USER,
    VERIFIERS,
    WRONG,
    AuthPair,
    assert_secret_absent,
    b64_tokens,
    check_token,
    client_mechanism,
    lookup,
    make_verifiers,
)
from server_support import Session as ServerSession
from smtpproto.client_engine.config import ClientConfig
from smtpproto.client_engine.events import (
    AuthChallenge,
    AuthFailed,
    AuthSucceeded,
)
from smtpproto.drivers.session import Read, Session, UpgradeTLS, Write
from smtpproto.exceptions import SMTPProtocolError, SMTPReplyError
from smtpproto.sasl import (
    MECHANISM_PREFERENCE,
    ChannelBinding,
    OAuthBearer,
    ScramSHA256,
    XOAuth2,
)
from smtpproto.sasl.saslprep import SASLprepError, saslprep
from smtpproto.sasl.server import (
    SERVER_MECHANISMS,
    ScramSHA1Server,
    ScramSHA256Server,
)
from smtpproto.server_engine.auth import AuthExchange
from smtpproto.server_engine.events import (
    AuthCancelled,
    AuthRequested,
    AuthResponse,
    EhloReceived,
    ServerEvent,
)
from smtpproto.server_engine.replies import ehlo_reply
from smtpproto.wire.reply import Reply

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


@settings(max_examples=25, deadline=None)
@given(user=CREDENTIAL, password=CREDENTIAL, other=CREDENTIAL)
@pytest.mark.parametrize("name", [n for n in EVERY if n not in OAUTH])
def test_any_credentials_round_trip(name: str, user: str, password: str, other: str) -> None:
    # Whatever the user name and password (escaping, SASLprep, spaces), the right
    # password authenticates and another one does not. Every mechanism looks up the
    # SASLprep'd user name (the smtpproto.sasl.server docstring), so the names need not be
    # SASLprep-invariant: the database is keyed, and the identity reported, prepared.
    prepped = saslprep(user, allow_unassigned=True)
    verifiers = make_verifiers({prepped: password}.get, check_token)
    pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
    right = pair.authenticate(client_mechanism(name, password, user=user))
    assert isinstance(right, AuthSucceeded) and pair.exchanges[0].identity == prepped
    if saslprep(other, allow_unassigned=True) != saslprep(password, allow_unassigned=True):
        pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
        wrong = pair.authenticate(client_mechanism(name, other, user=user))
        assert isinstance(wrong, AuthFailed) and wrong.reply.code == 535


@pytest.mark.parametrize("name", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_a_salt_holding_a_short_passwords_base64_is_no_echo(name: str) -> None:
    # The base64 of a one-octet password ("1": "MQ==") ends one random 16-octet salt in
    # 256. The client took that for the server echoing the secret and cancelled (501):
    # the cause of test_any_credentials_round_trip's intermittent failures.
    salt = base64.b64decode("g+h7qejMSr6U0eL2QPpwMQ==")
    server = ScramSHA1Server if name == "SCRAM-SHA-1" else ScramSHA256Server
    verifiers = {name: lambda cb: server({USER: "1"}.get, _salt=salt)}
    pair = AuthPair(name, verifiers=verifiers)
    assert isinstance(pair.authenticate(client_mechanism(name, "1")), AuthSucceeded)
    challenges = [e.challenge for e in pair.events if isinstance(e, AuthChallenge)]
    assert b",s=g+h7qejMSr6U0eL2QPpwMQ==," in (challenges[0] or b"")  # reached the mechanism
    pair = AuthPair(name, verifiers=verifiers)
    wrong = pair.authenticate(client_mechanism(name, "2"))
    assert isinstance(wrong, AuthFailed) and wrong.reply.code == 535


@pytest.mark.parametrize("password", ["=", ",", "1", "ab", "xyz"])
@pytest.mark.parametrize("name", [n for n in EVERY if n.startswith("SCRAM")])
def test_a_short_passwords_base64_in_a_server_message_is_no_echo(name: str, password: str) -> None:
    # "=" is "PQ==" in base64, the end of every SCRAM-SHA-256 server-final 334 ("v=" and
    # 44 characters: 46 octets): the reply was redacted before it was decoded and the
    # client answered "*" (501), for that password every time. Found by
    # test_any_credentials_round_trip (hypothesis, user="0", password="=").
    verifiers = make_verifiers({USER: password}.get, check_token)
    pair = AuthPair(" ".join(EVERY), verifiers=verifiers)
    assert isinstance(pair.authenticate(client_mechanism(name, password)), AuthSucceeded)


@pytest.mark.parametrize("password", ["host", "localhost", "@localhost>"])
def test_a_cram_md5_password_inside_the_challenge_is_answered(password: str) -> None:
    # CRAM-MD5's challenge is "<random.random@localhost>": a password inside it was taken
    # for an echo and answered "*" (501) every time, though it never crosses the wire
    # (found by test_any_credentials_round_trip, password="host"). The event hides it.
    verifiers = make_verifiers({USER: password}.get, check_token)
    pair = AuthPair("CRAM-MD5", verifiers=verifiers)
    assert isinstance(pair.authenticate(client_mechanism("CRAM-MD5", password)), AuthSucceeded)
    (challenge,) = [e for e in pair.events if isinstance(e, AuthChallenge)]
    assert challenge.challenge is None and b"*" not in bytes(pair.wire).split(b"\r\n")


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
