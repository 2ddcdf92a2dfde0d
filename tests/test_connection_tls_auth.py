"""Engine scenarios: STARTTLS boundary, TLS policies, AUTH."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from engine_helpers import EHLO_ALL, EHLO_PIPELINING, feed, greeted, make_conn, names
from smtpproto.client_engine.config import TLSPolicy
from smtpproto.client_engine.events import (
    Auth,
    AuthChallenge,
    AuthContinue,
    AuthFailed,
    AuthSucceeded,
    Ehlo,
    Mail,
    Noop,
    StartTLS,
    TLSReady,
)
from smtpproto.client_engine.states import ClientState
from smtpproto.sasl import ClientMechanism, Plain, SASLError
from smtpproto.wire.errors import LocalProtocolError, RemoteProtocolError

# -- STARTTLS --------------------------------------------------------------------------


def _starttls(parser_cls: Any, **config: Any) -> Any:
    conn = greeted(parser_cls, **config)
    assert conn.send(StartTLS()) == b"STARTTLS\r\n"
    return conn


def test_starttls_handshake_then_new_ehlo(parser_cls: Any) -> None:
    conn = _starttls(parser_cls)
    with pytest.raises(LocalProtocolError):  # STARTTLS ends the group
        conn.send(Noop())
    conn = _starttls(parser_cls)
    (event,) = feed(conn, b"220 2.0.0 ready\r\n")
    assert isinstance(event, TLSReady)
    assert conn.state is ClientState.TLS_HANDSHAKE
    assert conn.timeout is None
    conn.tls_established()
    assert conn.tls_active and conn.capabilities is None
    assert conn.state is ClientState.HELLO
    with pytest.raises(LocalProtocolError):
        conn.send(Mail(sender="a@example.org"))
    conn = _starttls(parser_cls)
    feed(conn, b"220 ready\r\n")
    conn.tls_established()
    conn.send(Ehlo(hostname="c.example"))
    feed(conn, EHLO_ALL)
    with pytest.raises(LocalProtocolError, match="already active"):
        conn.send(StartTLS())


@pytest.mark.parametrize(
    "chunks",
    [
        [b"220 ready\r\n250 injected\r\n"],
        [b"220 ready\r\n250-inj"],
        [b"220 ready\r\n", b"250 injected\r\n"],
        [b"220 ready\r\nX"],
    ],
)
def test_bytes_after_starttls_220_are_refused(parser_cls: Any, chunks: list[bytes]) -> None:
    conn = _starttls(parser_cls)
    for chunk in chunks:
        conn.receive_data(chunk)
    with pytest.raises(RemoteProtocolError, match="STARTTLS"):
        feed(conn, b"")
    assert conn.state is ClientState.ERROR


def test_bytes_after_processed_220_are_refused_at_receive(parser_cls: Any) -> None:
    conn = _starttls(parser_cls)
    feed(conn, b"220 ready\r\n")
    with pytest.raises(RemoteProtocolError, match="STARTTLS"):
        conn.receive_data(b"250 injected\r\n")
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_tls_established_without_starttls_is_refused(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_starttls_needs_advertisement_and_policy(parser_cls: Any) -> None:
    conn = greeted(parser_cls, EHLO_PIPELINING)
    with pytest.raises(LocalProtocolError, match="STARTTLS"):
        conn.send(StartTLS())
    conn = greeted(parser_cls, tls_policy=TLSPolicy.NONE)
    with pytest.raises(LocalProtocolError, match="NONE"):
        conn.send(StartTLS())
    conn = greeted(parser_cls, tls_policy=TLSPolicy.IMPLICIT)
    assert conn.tls_active
    with pytest.raises(LocalProtocolError, match="already active"):
        conn.send(StartTLS())


def test_starttls_refused_opportunistic_continues(parser_cls: Any) -> None:
    conn = _starttls(parser_cls)
    assert names(feed(conn, b"454 4.7.0 TLS not available\r\n")) == ["StartTLSRefused"]
    assert conn.state is ClientState.READY
    conn.send(Mail(sender="a@example.org"))


def test_required_tls_starttls_refused_ends_session(parser_cls: Any) -> None:
    conn = _starttls(parser_cls, tls_policy=TLSPolicy.REQUIRED)
    events = feed(conn, b"454 no\r\n")
    assert names(events) == ["StartTLSRefused", "TLSUnavailable"]
    assert conn.state is ClientState.MUST_QUIT


def test_required_tls_without_starttls_advertised(parser_cls: Any) -> None:
    conn = make_conn(parser_cls, tls_policy=TLSPolicy.REQUIRED)
    feed(conn, b"220 hi\r\n")
    conn.send(Ehlo(hostname="c.example"))
    assert names(feed(conn, EHLO_PIPELINING)) == ["EhloAccepted", "TLSUnavailable"]
    with pytest.raises(LocalProtocolError):
        conn.send(Mail(sender="a@example.org"))


def test_required_tls_refuses_mail_and_auth_before_tls(parser_cls: Any) -> None:
    conn = greeted(parser_cls, tls_policy=TLSPolicy.REQUIRED)
    with pytest.raises(LocalProtocolError, match="STARTTLS"):
        conn.send(Mail(sender="a@example.org"))
    conn = greeted(parser_cls, tls_policy=TLSPolicy.REQUIRED, allow_cleartext_auth=True)
    with pytest.raises(LocalProtocolError, match="STARTTLS"):
        conn.send(Auth(mechanism=Plain("user", "pw")))


# -- AUTH ------------------------------------------------------------------------------


def _tls(parser_cls: Any, ehlo: bytes = EHLO_ALL, **config: Any) -> Any:
    return greeted(parser_cls, ehlo, tls_policy=TLSPolicy.IMPLICIT, **config)


def test_auth_refused_on_cleartext(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    with pytest.raises(LocalProtocolError, match="cleartext"):
        conn.send(Auth(mechanism=Plain("user", "pw")))
    conn = greeted(parser_cls, allow_cleartext_auth=True)
    assert conn.send(Auth(mechanism=Plain("user", "pw"))).startswith(b"AUTH PLAIN ")


def test_auth_plain_initial_response(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    wire = conn.send(Auth(mechanism=Plain("user", "pw")))
    assert wire == b"AUTH PLAIN " + base64.b64encode(b"\0user\0pw") + b"\r\n"
    (event,) = feed(conn, b"235 2.7.0 ok\r\n")
    assert isinstance(event, AuthSucceeded) and conn.authenticated
    with pytest.raises(LocalProtocolError, match="already"):
        conn.send(Auth(mechanism=Plain("user", "pw")))


def test_auth_failure_event(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    conn.send(Auth(mechanism=Plain("user", "pw")))
    (event,) = feed(conn, b"535 5.7.8 bad credentials\r\n")
    assert isinstance(event, AuthFailed) and not conn.authenticated
    assert conn.state is ClientState.READY


def test_auth_mechanism_must_be_advertised(parser_cls: Any) -> None:
    conn = _tls(parser_cls, b"250-mx\r\n250 AUTH LOGIN\r\n")
    with pytest.raises(LocalProtocolError, match="PLAIN"):
        conn.send(Auth(mechanism=Plain("user", "pw")))


def test_long_initial_response_waits_for_empty_challenge(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    password = "p" * 400  # base64 of the response pushes the line over 512 octets
    wire = conn.send(Auth(mechanism=Plain("user", password)))
    assert wire == b"AUTH PLAIN\r\n"
    (event,) = feed(conn, b"334 \r\n")
    assert isinstance(event, AuthChallenge) and event.challenge == b""
    assert conn.send(AuthContinue()) == base64.b64encode(f"\0user\0{password}".encode()) + b"\r\n"
    assert names(feed(conn, b"235 ok\r\n")) == ["AuthSucceeded"]


def test_line_of_exactly_512_octets_keeps_initial_response(parser_cls: Any) -> None:
    # "AUTH PLAIN " (11) + base64 (n) + CRLF (2) = 512 -> n = 499 is not a multiple of 4;
    # 496 octets of base64 (372 raw) gives 509, the longest that fits.
    password = "p" * (372 - len("\0user\0"))
    wire = _tls(parser_cls).send(Auth(mechanism=Plain("user", password)))
    assert len(wire) == 509 and wire != b"AUTH PLAIN\r\n"
    password += "ppp"  # 375 raw -> 500 base64 -> 513 octets: too long
    assert _tls(parser_cls).send(Auth(mechanism=Plain("user", password))) == b"AUTH PLAIN\r\n"


class _Echo(ClientMechanism):
    """A test mechanism: answers each challenge with ``reply:<challenge>``."""

    name = "PLAIN"

    def __init__(self, *, initial: bytes | None = None, fail: bool = False) -> None:
        self.initial = initial
        self.fail = fail
        self.finished = False

    def initial_response(self) -> bytes | None:
        return self.initial

    def respond(self, challenge: bytes) -> bytes:
        if self.fail:
            raise SASLError("cannot answer")
        return b"reply:" + challenge

    def finish(self) -> None:
        self.finished = True

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return (b"reply",)


def test_empty_initial_response_is_equals_sign(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    assert conn.send(Auth(mechanism=_Echo(initial=b""))) == b"AUTH PLAIN =\r\n"


def test_challenge_response_rounds(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    mechanism = _Echo()
    assert conn.send(Auth(mechanism=mechanism)) == b"AUTH PLAIN\r\n"
    (event,) = feed(conn, b"334 " + base64.b64encode(b"nonce") + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge == b"nonce"
    assert conn.send(AuthContinue()) == base64.b64encode(b"reply:nonce") + b"\r\n"
    feed(conn, b"235 ok\r\n")
    assert mechanism.finished


@pytest.mark.parametrize("challenge", [b"!!notbase64", b"abc", b"YWJj=YQ=="])
def test_invalid_base64_challenge_is_cancelled(parser_cls: Any, challenge: bytes) -> None:
    conn = _tls(parser_cls)
    conn.send(Auth(mechanism=_Echo()))
    (event,) = feed(conn, b"334 " + challenge + b"\r\n")
    assert isinstance(event, AuthChallenge) and event.challenge is None
    assert conn.send(AuthContinue()) == b"*\r\n"
    assert names(feed(conn, b"501 cancelled\r\n")) == ["AuthFailed"]


@pytest.mark.parametrize("challenge", [b"!!notbase64", base64.b64encode(b"x")])
def test_a_235_after_a_cancel_is_a_protocol_error(parser_cls: Any, challenge: bytes) -> None:
    """RFC 4954 §4: the server MUST answer a "*" with 501. A 235 there would report
    as authenticated an exchange the client abandoned (an undecodable challenge, the
    mechanism failing its check): a protocol error, not ``AuthSucceeded``."""
    conn = _tls(parser_cls)
    mechanism = _Echo(initial=b"\0user\0pw", fail=challenge != b"!!notbase64")
    conn.send(Auth(mechanism=mechanism))
    feed(conn, b"334 " + challenge + b"\r\n")
    assert conn.send(AuthContinue()) == b"*\r\n"
    with pytest.raises(RemoteProtocolError, match="cancelled with"):
        feed(conn, b"235 2.7.0 ok\r\n")
    assert not conn.authenticated and not mechanism.finished


def test_mechanism_error_sends_cancel(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    conn.send(Auth(mechanism=_Echo(fail=True)))
    feed(conn, b"334 " + base64.b64encode(b"x") + b"\r\n")
    assert conn.send(AuthContinue()) == b"*\r\n"


def test_endless_challenges_are_cancelled(parser_cls: Any) -> None:
    conn = _tls(parser_cls, max_auth_rounds=2)
    conn.send(Auth(mechanism=_Echo()))
    challenge = b"334 " + base64.b64encode(b"again") + b"\r\n"
    sent = []
    for _ in range(3):
        feed(conn, challenge)
        sent.append(conn.send(AuthContinue()))
    assert sent[:2] == [base64.b64encode(b"reply:again") + b"\r\n"] * 2
    assert sent[2] == b"*\r\n"
    with pytest.raises(RemoteProtocolError, match="keeps challenging"):
        feed(conn, challenge)


def test_unverified_server_after_235_is_an_error(parser_cls: Any) -> None:
    class _Strict(_Echo):
        def finish(self) -> None:
            raise SASLError("server signature not verified")

    conn = _tls(parser_cls)
    conn.send(Auth(mechanism=_Strict()))
    with pytest.raises(RemoteProtocolError, match="signature"):
        feed(conn, b"235 ok\r\n")


def test_only_auth_continue_after_challenge(parser_cls: Any) -> None:
    conn = _tls(parser_cls)
    conn.send(Auth(mechanism=_Echo()))
    feed(conn, b"334 \r\n")
    with pytest.raises(LocalProtocolError, match="AUTH_CHALLENGED"):
        conn.send(Noop())


def test_auth_needs_a_mechanism() -> None:
    with pytest.raises(LocalProtocolError):
        Auth(mechanism=object())  # type: ignore[arg-type]


# -- after the client cancelled with "*", no credentials ever follow ------------------


def _cancelled_auth(parser_cls: Any, mechanism: ClientMechanism) -> Any:
    conn = greeted(parser_cls, b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n", tls_policy=TLSPolicy.IMPLICIT)
    conn.send(Auth(mechanism=mechanism))
    assert names(feed(conn, b"334 !!not-base64\r\n")) == ["AuthChallenge"]
    assert conn.send(AuthContinue()) == b"*\r\n"
    return conn


@pytest.mark.parametrize(
    "mechanism",
    [Plain("user", "p" * 400), Plain("user", "secret")],
    ids=["plain-initial-response-deferred", "plain"],
)
def test_challenge_after_cancel_is_a_protocol_error(
    parser_cls: Any, mechanism: ClientMechanism
) -> None:
    """RFC 4954 §4: a "*" must get 501; a new 334 never gets the held-back credentials."""
    conn = _cancelled_auth(parser_cls, mechanism)
    with pytest.raises(RemoteProtocolError, match="keeps challenging"):
        feed(conn, b"334 \r\n")
    assert conn.state is ClientState.ERROR


def test_login_password_never_follows_a_cancel(parser_cls: Any) -> None:
    from smtpproto.sasl import Login

    conn = _cancelled_auth(parser_cls, Login("user", "secretpw"))
    password_prompt = b"334 " + base64.b64encode(b"Password:") + b"\r\n"
    with pytest.raises(RemoteProtocolError):
        feed(conn, password_prompt)
    with pytest.raises(LocalProtocolError, match="ERROR state"):  # sticky, nothing sent
        conn.send(AuthContinue())


def test_501_after_cancel_then_a_new_auth_works(parser_cls: Any) -> None:
    conn = _cancelled_auth(parser_cls, Plain("user", "secret"))
    assert names(feed(conn, b"501 5.7.0 cancelled\r\n")) == ["AuthFailed"]
    conn.send(Auth(mechanism=Plain("user", "secret")))
    assert names(feed(conn, b"235 2.7.0 ok\r\n")) == ["AuthSucceeded"]


def test_garbage_line_after_starttls_220_is_refused_at_once(parser_cls: Any) -> None:
    """A bad line behind the 220 fails the parser; the boundary check still sees it."""
    conn = _starttls(parser_cls)
    with pytest.raises(RemoteProtocolError):
        feed(conn, b"220 go ahead\r\nnot a reply\r\n")
    assert conn.state is ClientState.ERROR


def test_replies_before_a_grammar_error_are_reported_first(parser_cls: Any) -> None:
    conn = greeted(parser_cls)
    conn.send(Noop())
    conn.receive_data(b"250 2.0.0 ok\r\nHTTP/1.1 400 Bad\r\n")
    assert type(conn.next_event()).__name__ == "CommandReply"
    with pytest.raises(RemoteProtocolError, match="reply code"):
        conn.next_event()
