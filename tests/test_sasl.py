"""SASL client mechanisms other than SCRAM (tests/test_scram.py), names and choosing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.sasl import (
    MECHANISM_PREFERENCE,
    Anonymous,
    ChannelBinding,
    ClientMechanism,
    CramMD5,
    External,
    Login,
    OAuthBearer,
    Plain,
    SASLError,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
    choose_mechanism,
    validate_mechanism_name,
)
from smtpproto.wire.errors import LocalProtocolError

RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
CB = ChannelBinding(type="tls-exporter", data=b"\x01" * 32)


# --- PLAIN (RFC 4616) -------------------------------------------------------------------


def test_plain_rfc4616_examples() -> None:
    # RFC 4616 §4: "\0tim\0tanstaaftanstaaf" and "Ursel\0Kurt\0xipj3plmq".
    assert Plain("tim", "tanstaaftanstaaf").initial_response() == b"\x00tim\x00tanstaaftanstaaf"
    assert Plain("Kurt", "xipj3plmq", authzid="Ursel").initial_response() == (
        b"Ursel\x00Kurt\x00xipj3plmq"
    )


def test_plain_utf8_and_no_further_challenge() -> None:
    mech = Plain("jürgen", "pässword")
    assert mech.initial_response() == "\x00jürgen\x00pässword".encode()
    with pytest.raises(SASLError, match="challenge"):
        mech.respond(b"")
    mech.finish()


@pytest.mark.parametrize("bad", ["a\x00b", "a\rb", "a\nb"])
@pytest.mark.parametrize("field", ["username", "password", "authzid"])
def test_plain_refuses_nul_cr_lf(field: str, bad: str) -> None:
    kwargs = {"username": "u", "password": "p", "authzid": ""} | {field: bad}
    with pytest.raises(SASLError, match=field):
        Plain(**kwargs)


@pytest.mark.parametrize(("username", "password"), [("", "p"), ("u", "")])
def test_plain_refuses_empty_fields(username: str, password: str) -> None:
    with pytest.raises(SASLError, match="non-empty"):
        Plain(username, password)


def test_sasl_error_is_a_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError):
        Plain("u\x00", "p")


# --- LOGIN ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "challenges",
    [(b"Username:", b"Password:"), (b"User Name\x00", b"Password\x00"), (b"", b""), (b"x", b"y")],
)
def test_login_answers_in_order_whatever_the_text(challenges: tuple[bytes, bytes]) -> None:
    mech = Login("tim", "secret")
    assert mech.initial_response() is None
    assert mech.respond(challenges[0]) == b"tim"
    assert mech.respond(challenges[1]) == b"secret"
    mech.finish()


def test_login_third_challenge_and_early_success_fail() -> None:
    mech = Login("tim", "secret")
    mech.respond(b"Username:")
    with pytest.raises(SASLError, match="before the password"):
        mech.finish()
    mech.respond(b"Password:")
    with pytest.raises(SASLError, match="more than two"):
        mech.respond(b"Again:")


@pytest.mark.parametrize("bad", ["\x00", "\r", "\n"])
def test_login_refuses_control_characters(bad: str) -> None:
    with pytest.raises(SASLError, match="username"):
        Login(f"a{bad}", "p")
    with pytest.raises(SASLError, match="password"):
        Login("a", f"p{bad}")


# --- CRAM-MD5 (RFC 2195) ----------------------------------------------------------------


def test_cram_md5_rfc2195_example() -> None:
    mech = CramMD5("tim", "tanstaaftanstaaf")
    assert mech.initial_response() is None
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert mech.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    mech.finish()


def test_cram_md5_failure_paths() -> None:
    mech = CramMD5("tim", "pw")
    with pytest.raises(SASLError, match="without a challenge"):
        mech.finish()
    with pytest.raises(SASLError, match="empty"):
        mech.respond(b"")
    mech.respond(b"<1@x>")
    with pytest.raises(SASLError, match="second"):
        mech.respond(b"<2@x>")
    with pytest.raises(SASLError, match="username"):
        CramMD5("t\nim", "pw")


# --- XOAUTH2 and OAUTHBEARER (RFC 7628) -------------------------------------------------


def test_xoauth2_google_example() -> None:
    # Google's published example for user someuser@example.com.
    mech = XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert base64.b64encode(mech.initial_response()) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGN"
        b"rQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )
    mech.finish()


def test_oauthbearer_rfc7628_section_4_1_example() -> None:
    mech = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=143)
    assert base64.b64encode(mech.initial_response()) == (
        b"bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVh"
        b"cmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    )
    mech.finish()


def test_oauthbearer_without_host_and_escaped_user() -> None:
    mech = OAuthBearer("a,b=c@x", "tok")
    assert mech.initial_response() == b"n,a=a=2Cb=3Dc@x,\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_empty_username_omits_the_authzid() -> None:
    # RFC 7628 §3.1: the GS2 authzid is optional; "a=" with an empty saslname is invalid.
    assert OAuthBearer("", "tok").initial_response() == b"n,,\x01auth=Bearer tok\x01\x01"


@pytest.mark.parametrize(
    "build",
    [lambda: Login("", "p"), lambda: CramMD5("", "p"), lambda: XOAuth2("", "tok")],
    ids=["LOGIN", "CRAM-MD5", "XOAUTH2"],
)
def test_empty_username_refused(build: Callable[[], ClientMechanism]) -> None:
    with pytest.raises(SASLError, match="username must not be empty"):
        build()


RFC7628_ERROR = {
    "status": "invalid_token",
    "scope": "example_scope",
    "openid-configuration": "https://example.com/.well-known/openid-configuration",
}


@pytest.mark.parametrize(("cls", "answer"), [(OAuthBearer, b"\x01"), (XOAuth2, b"")])
def test_oauth_failure_flow(cls: type[OAuthBearer] | type[XOAuth2], answer: bytes) -> None:
    # RFC 7628 §4.3 / Google: 334 with base64 JSON, client answers, server sends 535.
    mech = cls("user@example.com", RFC7628_TOKEN)
    assert mech.error_details is None
    assert mech.respond(json.dumps(RFC7628_ERROR).encode()) == answer
    assert mech.error_details == RFC7628_ERROR
    with pytest.raises(SASLError, match="after the error report"):
        mech.respond(b"{}")
    with pytest.raises(SASLError, match="after reporting an error"):
        mech.finish()


@pytest.mark.parametrize("challenge", [b"not json", b"[1, 2]", b"\xff\xfe", b""])
def test_oauth_failure_flow_with_unparsable_details(challenge: bytes) -> None:
    mech = XOAuth2("u@example.com", "tok")
    assert mech.respond(challenge) == b""
    assert mech.error_details is None


@pytest.mark.parametrize("token", ["", "a b", "tok\x01", "tok\r\n", "é", "=abc"])
@pytest.mark.parametrize("cls", [OAuthBearer, XOAuth2])
def test_oauth_refuses_bad_tokens(cls: type[OAuthBearer] | type[XOAuth2], token: str) -> None:
    with pytest.raises(SASLError, match="b64token"):
        cls("u@example.com", token)


@pytest.mark.parametrize("user", ["u\x01", "u\x00", "u\r", "u\n"])
@pytest.mark.parametrize("cls", [OAuthBearer, XOAuth2])
def test_oauth_refuses_bad_usernames(cls: type[OAuthBearer] | type[XOAuth2], user: str) -> None:
    with pytest.raises(SASLError, match="username"):
        cls(user, "tok")


@pytest.mark.parametrize(
    ("host", "port"), [("h\x01", None), ("h\n", None), (None, 0), (None, 65536)]
)
def test_oauthbearer_refuses_bad_host_or_port(host: str | None, port: int | None) -> None:
    with pytest.raises(SASLError):
        OAuthBearer("u", "tok", host=host, port=port)


# --- EXTERNAL and ANONYMOUS -------------------------------------------------------------


def test_external_and_anonymous() -> None:
    assert External().initial_response() == b""
    assert External("admin").initial_response() == b"admin"
    assert Anonymous().initial_response() == b""
    assert Anonymous("sirhc@example.com").initial_response() == b"sirhc@example.com"
    for mech in (External(), Anonymous()):
        with pytest.raises(SASLError, match="challenge"):
            mech.respond(b"")
        mech.finish()
        assert mech.secrets == ()
    with pytest.raises(SASLError, match="authzid"):
        External("a\x00b")
    with pytest.raises(SASLError, match="255"):
        Anonymous("x" * 256)
    assert Anonymous("x" * 255).initial_response() == b"x" * 255


# --- mechanism names (RFC 4422 §3.1) ----------------------------------------------------


@pytest.mark.parametrize("name", ["PLAIN", "SCRAM-SHA-256-PLUS", "X_1", "A" * 20])
def test_valid_mechanism_names(name: str) -> None:
    assert validate_mechanism_name(name) == name


@pytest.mark.parametrize("name", ["", "plain", "A" * 21, "A B", "A\r\n", "É", "A.B"])
def test_invalid_mechanism_names(name: str) -> None:
    with pytest.raises(SASLError, match="invalid SASL mechanism name"):
        validate_mechanism_name(name)


def test_user_mechanism_class_name_is_validated_and_usable() -> None:
    with pytest.raises(SASLError):

        class Bad(ClientMechanism):  # pragma: no cover - the class statement raises
            name = "bad name"

            def initial_response(self) -> bytes | None:
                return None

            def respond(self, challenge: bytes) -> bytes:
                return b""

    class Token(ClientMechanism):
        name = "X-TOKEN"

        def initial_response(self) -> bytes | None:
            return b"t"

        def respond(self, challenge: bytes) -> bytes:
            raise SASLError("no challenge expected")

    mech = Token()
    assert mech.initial_response() == b"t"
    assert repr(mech) == "<Token X-TOKEN>"
    assert mech.secrets == ()
    mech.finish()


# --- choose_mechanism -------------------------------------------------------------------

ALL_PASSWORD = list(MECHANISM_PREFERENCE)


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (ALL_PASSWORD, ScramSHA256),
        (["LOGIN", "PLAIN", "CRAM-MD5", "SCRAM-SHA-1"], ScramSHA1),
        (["LOGIN", "PLAIN", "CRAM-MD5"], CramMD5),
        (["LOGIN", "PLAIN"], Plain),
        (["login"], Login),
        (["SCRAM-SHA-256-PLUS", "PLAIN"], Plain),  # -PLUS needs channel binding data
        (["GSSAPI", "NTLM", "bad name!"], type(None)),
        ([], type(None)),
    ],
)
def test_choose_with_password(offered: list[str], expected: type[object]) -> None:
    chosen = choose_mechanism(offered, username="u", password="p")
    assert type(chosen) is expected


def test_choose_with_channel_binding() -> None:
    chosen = choose_mechanism(ALL_PASSWORD, username="u", password="p", channel_binding=CB)
    assert isinstance(chosen, ScramSHA256Plus)
    assert chosen.initial_response().startswith(b"p=tls-exporter,,")
    only_sha1_plus = ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"]
    chosen = choose_mechanism(only_sha1_plus, username="u", password="p", channel_binding=CB)
    assert isinstance(chosen, ScramSHA1Plus)
    # Server offers no -PLUS: the client says it could bind ("y", RFC 5802 §6).
    chosen = choose_mechanism(["SCRAM-SHA-256"], username="u", password="p", channel_binding=CB)
    assert isinstance(chosen, ScramSHA256)
    assert chosen.initial_response().startswith(b"y,,")
    # Server offers -PLUS for another hash only: it does support binding, so "n".
    offered = ["SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"]
    chosen = choose_mechanism(offered, username="u", password="p", channel_binding=CB)
    assert isinstance(chosen, ScramSHA256)
    assert chosen.initial_response().startswith(b"n,,")


def test_choose_with_token() -> None:
    offered = ["XOAUTH2", "OAUTHBEARER", "PLAIN"]
    assert type(choose_mechanism(offered, username="u", token="t")) is OAuthBearer
    assert type(choose_mechanism(["XOAUTH2", "PLAIN"], username="u", token="t")) is XOAuth2
    assert choose_mechanism(["PLAIN"], username="u", token="t") is None
    both = choose_mechanism(["PLAIN"], username="u", token="t", password="p")
    assert type(both) is Plain
    assert choose_mechanism(offered, username="u") is None
    assert choose_mechanism(offered, password="p") is None


def test_choose_propagates_credential_errors() -> None:
    with pytest.raises(SASLError, match="password"):
        choose_mechanism(["PLAIN"], username="u", password="p\x00")


# --- secrets never leak -----------------------------------------------------------------

secret_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=30
).map(lambda s: "S3cr" + s)
b64token = st.from_regex(r"[A-Za-z0-9\-._~+/]{12,30}", fullmatch=True).map(lambda s: "T0k" + s)


@given(password=secret_text)
def test_password_never_in_repr_or_str(password: str) -> None:
    mechs: list[ClientMechanism] = [
        Plain("user", password),
        Login("user", password),
        CramMD5("user", password),
        ScramSHA1("user", password),
        ScramSHA256Plus("user", password, channel_binding=CB),
    ]
    for mech in mechs:
        assert password not in repr(mech)
        assert password not in str(mech)
        assert password.encode() in mech.secrets or any(
            password.encode() in s for s in mech.secrets
        )


@given(token=b64token)
def test_token_never_in_repr_and_is_a_secret(token: str) -> None:
    for mech in (XOAuth2("user", token), OAuthBearer("user", token, host="h", port=25)):
        assert token not in repr(mech)
        assert token.encode() in mech.secrets
        assert mech.initial_response() in mech.secrets


@given(password=secret_text, bad=st.sampled_from(["\x00", "\r", "\n"]))
def test_error_messages_never_contain_the_password(password: str, bad: str) -> None:
    for build in (Plain, Login, CramMD5, ScramSHA256):
        with pytest.raises(SASLError) as info:
            build("user", password + bad)
        assert password not in str(info.value)
        assert password not in repr(info.value)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception its ``__cause__``/``__context__`` reach."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        item = todo.pop()
        if item is not None and item not in seen:
            seen.append(item)
            todo += [item.__cause__, item.__context__]
    return seen


#: Every str a client mechanism takes, by (mechanism, field), built with ``value``.
SURROGATE_FIELDS: dict[str, Callable[[str], ClientMechanism]] = {
    "PLAIN username": lambda v: Plain(v, "pw"),
    "PLAIN password": lambda v: Plain("user", v),
    "PLAIN authzid": lambda v: Plain("user", "pw", authzid=v),
    "LOGIN username": lambda v: Login(v, "pw"),
    "LOGIN password": lambda v: Login("user", v),
    "CRAM-MD5 username": lambda v: CramMD5(v, "pw"),
    "CRAM-MD5 password": lambda v: CramMD5("user", v),
    "SCRAM username": lambda v: ScramSHA256(v, "pw"),
    "SCRAM password": lambda v: ScramSHA256("user", v),
    "SCRAM authzid": lambda v: ScramSHA1("user", "pw", authzid=v),
    "XOAUTH2 username": lambda v: XOAuth2(v, "tok"),
    "OAUTHBEARER username": lambda v: OAuthBearer(v, "tok"),
    "OAUTHBEARER host": lambda v: OAuthBearer("user", "tok", host=v),
    "EXTERNAL authzid": External,
    "ANONYMOUS trace": Anonymous,
}


@given(
    field=st.sampled_from(sorted(SURROGATE_FIELDS)),
    secret=secret_text,
    surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    at=st.integers(min_value=0, max_value=40),
)
def test_a_lone_surrogate_in_any_field_is_a_sasl_error_that_never_holds_it(
    field: str, secret: str, surrogate: str, at: int
) -> None:
    """A value decoded with surrogateescape (``--password-env`` from an environment
    variable with undecodable octets) raised UnicodeEncodeError from PLAIN, LOGIN and
    CRAM-MD5, whose ``.object`` (and repr) held the password, the CLI exiting 70 as
    for a bug; now a SASLError naming the field, no exception in its chain holding it."""
    value = secret[:at] + surrogate + secret[at:]
    with pytest.raises(SASLError, match="no UTF-8 form") as info:
        SURROGATE_FIELDS[field](value)
    for error in _chain(info.value):
        shown = repr(error) + str(error) + repr(vars(error)) + repr(error.args)
        assert secret[:8] not in shown and value not in getattr(error, "object", "")


def test_auth_command_refuses_a_mechanism_object_with_a_bad_name() -> None:
    # The name goes on the AUTH line: the Auth constructor checks RFC 4422 §3.1 grammar
    # even for an object whose name was changed after its class was defined.
    from smtpproto.client_engine.events import Auth
    from smtpproto.sasl import Plain
    from smtpproto.wire.errors import LocalProtocolError

    for bad in ("PLAIN\r\nRSET", "PLAIN\x00", "plain", "", "X" * 21, None):
        mechanism = Plain("user", "pw")
        mechanism.name = bad  # type: ignore[misc,assignment]  # deliberately wrong
        with pytest.raises(LocalProtocolError, match="valid name"):
            Auth(mechanism=mechanism)
    mechanism = Plain("user", "pw")
    mechanism.name = "X" * 20  # type: ignore[misc]  # the longest valid name
    assert Auth(mechanism=mechanism).mechanism is mechanism
