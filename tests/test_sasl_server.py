"""Server verifiers: published vectors, full client<->server exchanges, every refusal."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smtpproto.sasl import (
    ChannelBinding,
    ClientMechanism,
    CramMD5,
    Login,
    OAuthBearer,
    Plain,
    SASLError,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
)
from smtpproto.sasl.saslprep import SASLprepError, saslprep
from smtpproto.sasl.server import (
    SERVER_MECHANISMS,
    Challenge,
    CramMD5Server,
    Failure,
    LoginServer,
    OAuthBearerServer,
    PlainServer,
    ScramSHA1PlusServer,
    ScramSHA1Server,
    ScramSHA256PlusServer,
    ScramSHA256Server,
    ServerMechanism,
    ServerStep,
    Success,
    XOAuth2Server,
)

USERS = {"user": "pencil", "tim": "tanstaaftanstaaf", "jürgen": "pässwörd", "I\u00adX": "x"}
CB = ChannelBinding(type="tls-exporter", data=b"\x42" * 32)
OTHER_CB = ChannelBinding(type="tls-exporter", data=b"\x43" * 32)


def exchange(client: ClientMechanism, server: ServerMechanism) -> ServerStep:
    """Run one exchange as the engine would; at most 5 round trips (never hangs)."""
    result = server.start(client.initial_response())
    for _ in range(5):
        if not isinstance(result, Challenge):
            break
        try:
            answer = client.respond(result.data)
        except SASLError as exc:  # the engine would send "*" and fail
            return Failure(reason=f"client aborted: {exc}")
        result = server.step(answer)
    assert not isinstance(result, Challenge), "exchange did not end"
    if isinstance(result, Success):
        if result.data is not None:  # delivered as a 334, answered by an empty line
            assert client.respond(result.data) == b""
        client.finish()
    return result


PAIRS = [
    (Plain, PlainServer),
    (Login, LoginServer),
    (CramMD5, CramMD5Server),
    (ScramSHA1, ScramSHA1Server),
    (ScramSHA256, ScramSHA256Server),
]


@pytest.mark.parametrize(("client_cls", "server_cls"), PAIRS)
@pytest.mark.parametrize("user", ["user", "tim", "jürgen"])
def test_right_password_succeeds(
    client_cls: type[Plain], server_cls: type[PlainServer], user: str
) -> None:
    result = exchange(client_cls(user, USERS[user]), server_cls(USERS.get))
    assert isinstance(result, Success)
    assert result.identity == user


@pytest.mark.parametrize(("client_cls", "server_cls"), PAIRS)
@pytest.mark.parametrize(("user", "password"), [("user", "pencil!"), ("nobody", "pencil")])
def test_wrong_password_or_unknown_user_fails(
    client_cls: type[Plain], server_cls: type[PlainServer], user: str, password: str
) -> None:
    result = exchange(client_cls(user, password), server_cls(USERS.get))
    assert result == Failure(reason="invalid credentials")


@pytest.mark.parametrize(
    ("client_cls", "server_cls"),
    [(ScramSHA1Plus, ScramSHA1PlusServer), (ScramSHA256Plus, ScramSHA256PlusServer)],
)
def test_plus_round_trip_and_channel_mismatch(
    client_cls: type[ScramSHA256Plus], server_cls: type[ScramSHA256PlusServer]
) -> None:
    ok = exchange(
        client_cls("user", "pencil", channel_binding=CB), server_cls(USERS.get, channel_binding=CB)
    )
    assert isinstance(ok, Success)
    # A man in the middle terminates TLS: the two sides see different channels.
    mitm = exchange(
        client_cls("user", "pencil", channel_binding=CB),
        server_cls(USERS.get, channel_binding=OTHER_CB),
    )
    assert mitm == Failure(reason="channel binding mismatch")
    other_type = ChannelBinding(type="tls-server-end-point", data=b"x")
    wrong_type = exchange(
        client_cls("user", "pencil", channel_binding=other_type),
        server_cls(USERS.get, channel_binding=CB),
    )
    assert wrong_type == Failure(reason="unsupported channel binding type")


def test_gs2_flag_rules_rfc5802_section_6() -> None:
    # "y" (client could bind, saw no -PLUS) to a server that offers -PLUS: downgrade.
    downgraded = exchange(
        ScramSHA256("user", "pencil", channel_binding=CB),
        ScramSHA256Server(USERS.get, channel_binding=CB),
    )
    assert isinstance(downgraded, Failure)
    assert "downgrade" in downgraded.reason
    # "y" to a server without binding support is fine, and so is "n".
    assert isinstance(
        exchange(ScramSHA256("user", "pencil", channel_binding=CB), ScramSHA256Server(USERS.get)),
        Success,
    )
    # A -PLUS server refuses a client that does not bind.
    plus_server = ScramSHA256PlusServer(USERS.get, channel_binding=CB)
    assert isinstance(exchange(ScramSHA256("user", "pencil"), plus_server), Failure)
    # A non-PLUS server refuses "p=".
    plain_server = ScramSHA256Server(USERS.get)
    refused = exchange(ScramSHA256Plus("user", "pencil", channel_binding=CB), plain_server)
    assert refused == Failure(reason="channel binding requested on a non-PLUS mechanism")


def test_scram_server_reproduces_rfc5802_vector() -> None:
    server = ScramSHA1Server(
        USERS.get, _salt=base64.b64decode("QSXCR+Q6sek8bf92"), _nonce="3rfcNHYJY1ZVvWVs7j"
    )
    first = server.start(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
    assert first == Challenge(
        data=b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    )
    final = server.step(
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    )
    assert final == Success(identity="user", data=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")


def test_scram_server_reproduces_rfc7677_vector() -> None:
    server = ScramSHA256Server(
        USERS.get,
        _salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
        _nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    )
    assert isinstance(server.start(None), Challenge)  # no initial response: empty 334
    server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    final = server.step(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == Success(identity="user", data=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


FIRST = b"n,,n=user,r=abc"


@pytest.mark.parametrize(
    ("client_first", "reason"),
    [
        (b"n", "GS2 header"),
        (b"n,n=user,r=abc", "authorization identity"),
        (b"x,,n=user,r=abc", "binding flag"),
        (b"n,b=adm,n=user,r=abc", "authorization identity"),
        (b"n,a=other,n=user,r=abc", "not permitted"),
        (b"n,,m=ext,n=user,r=abc", "mandatory"),
        (b"n,,r=abc,n=user", "malformed client-first"),
        (b"n,,n=,r=abc", "malformed client-first"),
        (b"n,,n=user,r=a\x7fc", "malformed client-first"),
        (b"n,,n=us=41er,r=abc", "saslname"),
        (b"n,,n=user,,r=abc", "malformed attribute"),
        (b"n,,n=\xff,r=abc", "not UTF-8"),
    ],
)
def test_scram_server_refuses_bad_client_first(client_first: bytes, reason: str) -> None:
    result = ScramSHA256Server(USERS.get).start(client_first)
    assert isinstance(result, Failure)
    assert reason in result.reason


@pytest.mark.parametrize(
    ("client_final", "reason"),
    [
        (b"c=biws,r=abcXYZ", "no proof"),
        (b"r=abcXYZ,c=biws,p=AAAA", "malformed client-final"),
        (b"c=eSws,r=abcXYZ,p=AAAA", "channel binding mismatch"),
        (b"c=biws,r=abcXYQ,p=AAAA", "nonce mismatch"),
        (b"c=biws,r=abcXYZ,p=AAAA", "wrong length"),
        (b"c=biws,r=abcXYZ,p=!!", "not valid base64"),
        (b"c=biws,r=abcXYZ,p=" + base64.b64encode(b"\x00" * 32), "invalid credentials"),
    ],
)
def test_scram_server_refuses_bad_client_final(client_final: bytes, reason: str) -> None:
    server = ScramSHA256Server(USERS.get, _nonce="XYZ")
    assert isinstance(server.start(FIRST), Challenge)
    result = server.step(client_final)
    assert isinstance(result, Failure)
    assert reason in result.reason


def test_scram_server_constructor_checks() -> None:
    with pytest.raises(SASLError, match="channel binding"):
        ScramSHA256PlusServer(USERS.get)
    with pytest.raises(SASLError, match="positive"):
        ScramSHA1Server(USERS.get, iterations=0)


def test_scram_authzid_equal_to_user_is_accepted() -> None:
    result = exchange(ScramSHA256("user", "pencil", authzid="user"), ScramSHA256Server(USERS.get))
    assert isinstance(result, Success)
    assert (result.identity, result.authzid) == ("user", "user")


def test_scram_saslprep_applies_to_stored_passwords() -> None:
    # Stored "I<SOFT HYPHEN>X" and typed "IX" are the same password after SASLprep.
    result = exchange(ScramSHA256("user", "IX"), ScramSHA256Server({"user": "I\u00adX"}.get))
    assert isinstance(result, Success)


# --- PLAIN / LOGIN / CRAM-MD5 specifics ---------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\x00tim", "malformed PLAIN"),
        (b"\x00tim\x00pw\x00", "malformed PLAIN"),
        (b"\x00\x00pw", "empty"),
        (b"\x00tim\x00", "empty"),
        (b"other\x00tim\x00tanstaaftanstaaf", "not permitted"),
        (b"\x00tim\x00\xff", "not UTF-8"),
    ],
)
def test_plain_server_refusals(message: bytes, reason: str) -> None:
    result = PlainServer(USERS.get).start(message)
    assert isinstance(result, Failure)
    assert reason in result.reason


def test_plain_server_without_initial_response_and_authzid() -> None:
    server = PlainServer(USERS.get)
    assert server.start(None) == Challenge(data=b"")
    assert server.step(b"tim\x00tim\x00tanstaaftanstaaf") == Success(identity="tim", authzid="tim")
    with pytest.raises(SASLError, match="not waiting"):
        server.step(b"again")


def test_login_server_prompts_and_initial_username() -> None:
    server = LoginServer(USERS.get)
    assert server.start(None) == Challenge(data=b"Username:")
    assert server.step(b"tim") == Challenge(data=b"Password:")
    assert server.step(b"tanstaaftanstaaf") == Success(identity="tim")
    shortcut = LoginServer(USERS.get)
    assert shortcut.start(b"tim") == Challenge(data=b"Password:")
    assert isinstance(LoginServer(USERS.get).start(b"\xff"), Failure)
    empty = LoginServer(USERS.get)
    empty.start(None)
    assert empty.step(b"") == Failure(reason="empty LOGIN user name")


def test_cram_md5_server_rfc2195_example() -> None:
    server = CramMD5Server(USERS.get, _challenge="<1896.697170952@postoffice.reston.mci.net>")
    assert server.start(None) == Challenge(data=b"<1896.697170952@postoffice.reston.mci.net>")
    assert server.step(b"tim b913a602c7eda7a495b4e6e7334d3890") == Success(identity="tim")


@pytest.mark.parametrize(
    "response",
    [
        b"tim",
        b" b913a602c7eda7a495b4e6e7334d3890",
        b"tim B913A602C7EDA7A495B4E6E7334D3890",
        b"tim b913a602c7eda7a495b4e6e7334d389",
        b"\xff b913a602c7eda7a495b4e6e7334d3890",
    ],
)
def test_cram_md5_server_refusals(response: bytes) -> None:
    server = CramMD5Server(USERS.get, _challenge="<1896.697170952@postoffice.reston.mci.net>")
    server.start(None)
    assert isinstance(server.step(response), Failure)


def test_cram_md5_server_challenges_are_unique_and_refuse_initial_response() -> None:
    first = CramMD5Server(USERS.get, hostname="mx.example").start(None)
    second = CramMD5Server(USERS.get, hostname="mx.example").start(None)
    assert isinstance(first, Challenge) and isinstance(second, Challenge)
    assert first.data != second.data
    assert first.data.startswith(b"<") and first.data.endswith(b"@mx.example>")
    assert isinstance(CramMD5Server(USERS.get).start(b""), Failure)


@pytest.mark.parametrize(("client_cls", "server_cls"), PAIRS)
def test_a_stored_password_with_a_lone_surrogate_fails_and_is_never_raised(
    client_cls: type[ClientMechanism], server_cls: type[ServerMechanism]
) -> None:
    """CRAM-MD5 raised UnicodeEncodeError holding the stored password (the built-in
    server logged its repr: "* policy error: UnicodeEncodeError('utf-8', 'StoredPW\\udcff',
    ..."); every verifier now fails the exchange as for a wrong password."""
    stored = {"alice": "StoredPW\udcff"}
    client = client_cls("alice", "StoredPW")  # type: ignore[call-arg]
    result = exchange(client, server_cls(stored.get))  # type: ignore[call-arg]
    assert isinstance(result, Failure)
    assert "StoredPW" not in repr(result)


# --- XOAUTH2 / OAUTHBEARER -----------------------------------------------------------------

TOKENS = {("user@example.com", "good.token")}


def check_token(user: str, token: str) -> bool:
    return (user, token) in TOKENS


@pytest.mark.parametrize(
    ("client_cls", "server_cls"), [(XOAuth2, XOAuth2Server), (OAuthBearer, OAuthBearerServer)]
)
def test_oauth_round_trips(
    client_cls: type[XOAuth2] | type[OAuthBearer],
    server_cls: type[XOAuth2Server] | type[OAuthBearerServer],
) -> None:
    good = exchange(client_cls("user@example.com", "good.token"), server_cls(check_token))
    assert good == Success(identity="user@example.com")
    # Failure flow: JSON challenge, the client's dummy answer, then failure (535).
    client = client_cls("user@example.com", "bad.token")
    assert exchange(client, server_cls(check_token)) == Failure(reason="invalid token")
    assert client.error_details == {"status": "invalid_token", "schemes": "bearer"}
    # Without an initial response the server asks with an empty challenge first.
    server = server_cls(check_token)
    assert server.start(None) == Challenge(data=b"")
    assert server.step(client_cls("user@example.com", "good.token").initial_response()) == (
        Success(identity="user@example.com")
    )


def test_oauthbearer_server_reads_rfc7628_example() -> None:
    message = base64.b64decode(
        "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVh"
        "cmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    )
    seen: list[tuple[str, str]] = []

    def record(user: str, token: str) -> bool:
        seen.append((user, token))
        return True

    assert OAuthBearerServer(record).start(message) == Success(identity="user@example.com")
    assert seen == [("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")]


@pytest.mark.parametrize(
    ("server_cls", "message"),
    [
        (XOAuth2Server, b"user=u\x01auth=Bearer t\x01"),  # missing final ^A
        (XOAuth2Server, b"user=u\x01auth=Basic t\x01\x01"),
        (XOAuth2Server, b"user=\x01auth=Bearer t\x01\x01"),
        (XOAuth2Server, b"auth=Bearer t\x01\x01"),
        (XOAuth2Server, b"user=u\x01user=v\x01auth=Bearer t\x01\x01"),
        (XOAuth2Server, b"user=\xff\x01auth=Bearer t\x01\x01"),
        (OAuthBearerServer, b"n,,\x01auth=Bearer t\x01\x01"),  # no user to check
        (OAuthBearerServer, b"p=tls-exporter,a=u,\x01auth=Bearer t\x01\x01"),
        (OAuthBearerServer, b"n,a=u,auth=Bearer t\x01\x01"),
        (OAuthBearerServer, b"n,a=u=41,\x01auth=Bearer t\x01\x01"),
        (OAuthBearerServer, b"n,a=u,\x01auth=Bearer \x01\x01"),
    ],
)
def test_oauth_servers_refuse_malformed_messages(
    server_cls: type[XOAuth2Server] | type[OAuthBearerServer], message: bytes
) -> None:
    assert isinstance(server_cls(lambda user, token: True).start(message), Failure)


OAUTH_CONTROLS = [*map(chr, range(0x20)), "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]


@given(
    server_cls=st.sampled_from([XOAuth2Server, OAuthBearerServer]),
    control=st.sampled_from([c for c in OAUTH_CONTROLS if c != "\x01"]),
    before=st.text("abc@.", min_size=1, max_size=5),
    after=st.text("xyz.", max_size=5),
)
def test_an_oauth_user_name_with_a_control_character_never_becomes_an_identity(
    server_cls: type[XOAuth2Server] | type[OAuthBearerServer],
    control: str,
    before: str,
    after: str,
) -> None:
    """``user=al\r\nice`` with a good token was Success(identity='al\r\nice'): a line
    break for the application's log or Received header (the password verifiers refuse
    it through SASLprep). Now a Failure, and check_token is never asked."""
    user = before + control + after
    if server_cls is XOAuth2Server:
        message = f"user={user}\x01auth=Bearer tok\x01\x01"
    else:
        message = f"n,a={user},\x01auth=Bearer tok\x01\x01"
    asked: list[str] = []

    def any_user(name: str, token: str) -> bool:
        asked.append(name)
        return token == "tok"

    step = server_cls(any_user).start(message.encode())
    assert step == Failure(reason=f"{server_cls.name} user name holds a control character")
    assert asked == []
    clean = message.replace(control, "").encode()
    assert server_cls(any_user).start(clean) == Success(identity=before + after)


# --- misuse and registry ------------------------------------------------------------------


def test_misuse_raises() -> None:
    server = PlainServer(USERS.get)
    with pytest.raises(SASLError, match="not waiting"):
        server.step(b"x")
    server.start(b"\x00tim\x00tanstaaftanstaaf")
    with pytest.raises(SASLError, match="already started"):
        server.start(None)


def test_registry_lists_every_verifier() -> None:
    assert list(SERVER_MECHANISMS) == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-1",
        "CRAM-MD5",
        "PLAIN",
        "LOGIN",
        "OAUTHBEARER",
        "XOAUTH2",
    ]


def _prep_ok(text: str) -> bool:
    """SASLprep accepts ``text`` and leaves something (a password of only characters
    mapped to nothing, such as U+00AD, is empty after SASLprep: no password at all)."""
    try:
        return bool(saslprep(text, allow_unassigned=True))
    except SASLprepError:
        return False


no_controls = st.text(min_size=1, max_size=10).filter(lambda s: not set(s) & {"\x00", "\r", "\n"})


@settings(max_examples=50, deadline=None)
@given(user=no_controls, password=no_controls)
@example(user="0", password="\xad")  # SASLprep maps U+00AD to nothing: no password
def test_plain_and_login_round_trip_any_credentials(user: str, password: str) -> None:
    # The lookup is keyed by the SASLprep'd user name; a name SASLprep rejects (or
    # empties) can never log in, like a password SASLprep rejects (RFC 4616 §2).
    prepped = saslprep(user, allow_unassigned=True) if _prep_ok(user) else ""
    db = {prepped: password}.get
    pairs: list[tuple[ClientMechanism, ServerMechanism]] = [
        (Plain(user, password), PlainServer(db)),
        (Login(user, password), LoginServer(db)),
    ]
    for client, server in pairs:
        result = exchange(client, server)
        if prepped and _prep_ok(password):
            assert result == Success(identity=prepped)
        else:
            assert result == Failure(reason="invalid credentials")


# Names SASLprep changes (RFC 4013 §2.1 soft hyphen mapped to nothing, §2.2 NFKC): every
# password mechanism looks up, and reports, the prepared form (module docstring).
NON_INVARIANT = [("I\u00adX", "IX"), ("\u2163ninja", "IVninja"), ("user\u3000x", "user x")]


@pytest.mark.parametrize(("client_cls", "server_cls"), PAIRS)
@pytest.mark.parametrize(("sent", "prepped"), NON_INVARIANT)
def test_every_mechanism_looks_up_the_saslprepped_user_name(
    client_cls: type[Plain], server_cls: type[PlainServer], sent: str, prepped: str
) -> None:
    seen: list[str] = []

    def lookup(name: str) -> str | None:
        seen.append(name)
        return {prepped: "pässwörd"}.get(name)

    result = exchange(client_cls(sent, "pässwörd"), server_cls(lookup))
    assert result == Success(identity=prepped, data=getattr(result, "data", None))
    assert seen == [prepped]


@pytest.mark.parametrize(("client_cls", "server_cls"), PAIRS)
def test_user_name_refused_by_saslprep_is_an_unknown_user(
    client_cls: type[Plain], server_cls: type[PlainServer]
) -> None:
    # U+0007 is prohibited output (RFC 4013 §2.3): never looked up, never logged in.
    # (The SCRAM client refuses to send such a name, so its server is fed by hand.)
    seen: list[str] = []

    def lookup(name: str) -> str | None:
        seen.append(name)
        return "pencil"

    if server_cls.name.startswith("SCRAM"):
        result = server_cls(lookup).start(b"n,,n=bell\x07,r=abc")
        assert result == Failure(reason="malformed client-first-message")
    else:
        result = exchange(client_cls("bell\x07", "pencil"), server_cls(lookup))
        assert result == Failure(reason="invalid credentials")
    assert seen == []


def test_plain_authzid_is_compared_after_saslprep() -> None:
    server = PlainServer({"IX": "pencil"}.get)
    assert exchange(Plain("I\u00adX", "pencil", authzid="IX"), server) == Success(
        identity="IX", authzid="IX"
    )
    other = exchange(Plain("IX", "pencil", authzid="IY"), PlainServer({"IX": "pencil"}.get))
    assert other == Failure(reason="authorization identity not permitted")
