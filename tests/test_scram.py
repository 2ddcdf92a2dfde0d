"""SCRAM client (RFC 5802, RFC 7677): published vectors and every failure path."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.sasl import (
    DEFAULT_SCRAM_MAX_ITERATIONS,
    ChannelBinding,
    SASLError,
    Scram,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
)

# RFC 5802 §5
SHA1_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SHA1_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SHA1_CLIENT_FINAL = (
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
)
SHA1_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
# RFC 7677 §3
SHA256_NONCE = "rOprNGfwEbeRWgbNEkqO"
SHA256_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
SHA256_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SHA256_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

CB = ChannelBinding(type="tls-server-end-point", data=b"\xaa" * 32)


def sha1() -> Scram:
    return ScramSHA1("user", "pencil", _nonce=SHA1_NONCE)


def sha256() -> Scram:
    return ScramSHA256("user", "pencil", _nonce=SHA256_NONCE)


@pytest.mark.parametrize(
    ("build", "nonce", "server_first", "client_final", "server_final"),
    [
        (sha1, SHA1_NONCE, SHA1_SERVER_FIRST, SHA1_CLIENT_FINAL, SHA1_SERVER_FINAL),
        (sha256, SHA256_NONCE, SHA256_SERVER_FIRST, SHA256_CLIENT_FINAL, SHA256_SERVER_FINAL),
    ],
    ids=["rfc5802-sha1", "rfc7677-sha256"],
)
def test_published_vectors(
    build: Callable[[], Scram],
    nonce: str,
    server_first: bytes,
    client_final: bytes,
    server_final: bytes,
) -> None:
    mech = build()
    assert mech.initial_response() == f"n,,n=user,r={nonce}".encode()
    assert mech.respond(server_first) == client_final
    assert mech.respond(server_final) == b""
    mech.finish()
    with pytest.raises(SASLError, match="after the exchange completed"):
        mech.respond(b"v=x")


def test_server_signature_mismatch_fails() -> None:
    mech = sha256()
    mech.respond(SHA256_SERVER_FIRST)
    with pytest.raises(SASLError, match="signature mismatch"):
        mech.respond(b"v=" + base64.b64encode(b"\x00" * 32))
    with pytest.raises(SASLError, match="without proving"):
        mech.finish()


def test_235_without_server_signature_fails() -> None:
    mech = sha1()
    with pytest.raises(SASLError, match="without proving"):
        mech.finish()
    mech.respond(SHA1_SERVER_FIRST)
    with pytest.raises(SASLError, match="without proving"):
        mech.finish()


@pytest.mark.parametrize(
    ("server_first", "match"),
    [
        (b"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096", None),  # baseline
        (b"r=OTHERNONCE3rfc,s=QSXCR+Q6sek8bf92,i=4096", "does not extend"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", "does not extend"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL\x7f,s=QSXCR+Q6sek8bf92,i=4096", "invalid characters"),
        (b"e=unknown-user", "server error: 'unknown-user'"),
        (b"m=ext,r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=4096", "extension"),
        (b"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3,i=4096", "expected r=, s=, i="),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92", "expected r=, s=, i="),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=!!!,i=4096", "salt is not valid base64"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=,i=4096", "salt is empty"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=4095", "outside the accepted"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=1000001", "outside the accepted"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=-4096", "malformed iteration"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=4e3", "malformed iteration"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=99999999999", "malformed iteration"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=\xff4096", "not UTF-8"),
        ("r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=٤٠٩٦".encode(), "malformed iter"),
        (b"r=fyko+d2lbbFgONRv9qkxdawL3,,s=QSXCR+Q6sek8bf92,i=4096", "malformed attribute"),
        (b"garbage", "malformed attribute"),
        (b"", "malformed attribute"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_malformed_server_first(server_first: bytes, match: str | None) -> None:
    mech = sha1()
    if match is None:
        assert mech.respond(server_first).startswith(b"c=biws,")
        return
    with pytest.raises(SASLError, match=match):
        mech.respond(server_first)
    with pytest.raises(SASLError):  # a failed exchange stays failed
        mech.respond(SHA1_SERVER_FIRST)


def test_iteration_bounds_are_inclusive_and_configurable() -> None:
    base = b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i="
    assert ScramSHA1("u", "p", _nonce=SHA1_NONCE).respond(base + b"4096")
    low = ScramSHA1("u", "p", _nonce=SHA1_NONCE, min_iterations=1)
    assert low.respond(base + b"1")
    high = ScramSHA1("u", "p", _nonce=SHA1_NONCE, max_iterations=4096)
    with pytest.raises(SASLError, match=r"4096\.\.4096"):
        high.respond(base + b"4097")
    assert DEFAULT_SCRAM_MAX_ITERATIONS == 1_000_000


@pytest.mark.parametrize(
    ("server_final", "match"),
    [
        (b"e=invalid-proof", "server error: 'invalid-proof'"),
        (b"x=1", "expected v= or e="),
        (b"v=!!notbase64", "not valid base64"),
        (b"v", "malformed attribute"),
    ],
)
def test_bad_server_final(server_final: bytes, match: str) -> None:
    mech = sha1()
    mech.respond(SHA1_SERVER_FIRST)
    with pytest.raises(SASLError, match=match):
        mech.respond(server_final)
    with pytest.raises(SASLError):
        mech.finish()


def test_server_final_with_extension_is_accepted() -> None:
    mech = sha1()
    mech.respond(SHA1_SERVER_FIRST)
    assert mech.respond(SHA1_SERVER_FINAL + b",x=ext") == b""
    mech.finish()


def test_server_error_text_is_escaped() -> None:
    mech = sha1()
    with pytest.raises(SASLError) as info:
        mech.respond(b"e=\x1b[31mred")
    assert "\x1b" not in str(info.value)


def test_username_escaping_authzid_and_saslprep() -> None:
    mech = ScramSHA256("a,b=c\u00ad", "pencil", authzid="adm=in", _nonce="abc")
    assert mech.initial_response() == b"n,a=adm=3Din,n=a=2Cb=3Dc,r=abc"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"username": "u\x00"}, "username"),
        ({"password": "p\n"}, "password"),
        ({"authzid": "a\r"}, "authzid"),
        ({"username": "\u00ad"}, "empty after SASLprep"),
        ({"password": "p\u0007w"}, "SASLprep"),
        ({"username": "\u0627\u0031"}, "SASLprep"),
        ({"_nonce": "a,b"}, "nonce"),
        ({"_nonce": ""}, "nonce"),
    ],
)
def test_constructor_refusals(kwargs: dict[str, str], match: str) -> None:
    args = {"username": "user", "password": "pencil"} | kwargs
    with pytest.raises(SASLError, match=match):
        ScramSHA256(args.pop("username"), args.pop("password"), **args)  # type: ignore[arg-type]  # only str-valued keywords here


def test_factory_picks_the_class() -> None:
    assert type(Scram("u", "p")) is ScramSHA256
    assert type(Scram("u", "p", hash_name="sha1")) is ScramSHA1
    assert type(Scram("u", "p", channel_binding=CB)) is ScramSHA256
    plus = Scram("u", "p", hash_name="sha1", channel_binding=CB, server_supports_plus=True)
    assert type(plus) is ScramSHA1Plus
    assert plus.name == "SCRAM-SHA-1-PLUS"
    with pytest.raises(SASLError, match="unsupported SCRAM hash"):
        Scram("u", "p", hash_name="md5")
    with pytest.raises(SASLError, match="uses sha1"):
        ScramSHA1("u", "p", hash_name="sha256")
    with pytest.raises(SASLError, match="needs channel binding"):
        ScramSHA256Plus("u", "p")


def test_gs2_flags_follow_rfc5802_section_6() -> None:
    assert ScramSHA256("u", "p", _nonce="n").initial_response().startswith(b"n,,")
    assert ScramSHA256("u", "p", channel_binding=CB, _nonce="n").initial_response()[:3] == b"y,,"
    advertised = ScramSHA256("u", "p", channel_binding=CB, server_supports_plus=True)
    assert advertised.initial_response()[:3] == b"n,,"
    plus = ScramSHA256Plus("u", "p", channel_binding=CB, _nonce="n")
    assert plus.initial_response() == b"p=tls-server-end-point,,n=u,r=n"


def test_plus_binds_the_channel_data_into_c() -> None:
    plus = ScramSHA256Plus("user", "pencil", channel_binding=CB, _nonce=SHA256_NONCE)
    final = plus.respond(SHA256_SERVER_FIRST)
    cbind = base64.b64encode(b"p=tls-server-end-point,," + CB.data)
    assert final.startswith(b"c=" + cbind + b",r=")


def test_channel_binding_validation() -> None:
    with pytest.raises(SASLError, match="unsupported channel binding"):
        ChannelBinding(type="tls-unique", data=b"x")  # type: ignore[arg-type]  # tested
    with pytest.raises(SASLError, match="non-empty"):
        ChannelBinding(type="tls-exporter", data=b"")


def test_nonce_is_random_and_printable() -> None:
    first = ScramSHA256("u", "p").initial_response()
    second = ScramSHA256("u", "p").initial_response()
    assert first != second
    nonce = first.split(b",r=")[1]
    assert len(nonce) >= 24
    assert b"," not in nonce


@given(password=st.text(min_size=1, max_size=20).map(lambda s: "pw" + s))
def test_secrets_cover_the_password_and_proof(password: str) -> None:
    try:
        mech = ScramSHA1("user", password, _nonce=SHA1_NONCE)
    except SASLError as exc:
        assert password not in str(exc)
        return
    final = mech.respond(SHA1_SERVER_FIRST)
    proof = base64.b64decode(final.rsplit(b",p=", 1)[1])
    assert proof in mech.secrets
    assert password not in repr(mech)


@pytest.mark.parametrize(("count", "accepted"), [(5000, True), (5001, False)])
def test_max_iterations_at_and_past_the_bound(count: int, accepted: bool) -> None:
    # The default bound (DEFAULT_SCRAM_MAX_ITERATIONS) is refused one past it above;
    # here the comparison itself, with a bound cheap enough to run PBKDF2 at.
    mech = ScramSHA1("user", "pencil", max_iterations=5000, _nonce="fyko+d2lbbFgONRv9qkxdawL")
    server_first = b"r=fyko+d2lbbFgONRv9qkxdawL3,s=QSXCR+Q6sek8bf92,i=%d" % count
    if accepted:
        assert mech.respond(server_first).startswith(b"c=biws,")
    else:
        with pytest.raises(SASLError, match=r"outside the accepted range 4096\.\.5000"):
            mech.respond(server_first)
