"""The built-in server's certificate: each tool (trustme, cryptography, openssl) makes
one that a verifying client accepts, the choice can be forced, a missing tool falls
through to the next, and with none the server says so and offers no STARTTLS."""

from __future__ import annotations

import shutil
import ssl
import sys
from pathlib import Path

import pytest

from smtpproto.blocking import SMTPClient
from smtpproto.builtin_server.certificates import (
    CERT_TOOL_ENV,
    DEFAULT_TOOLS,
    TOOLS,
    NoCertificateTool,
    make_certificate,
)
from smtpproto.server import make_self_signed
from smtpproto.testing import run_server

MESSAGE = b"Subject: hi\r\n\r\nHello\r\n"


def handshake(cert: Path, key: Path, server_name: str) -> None:
    """A full TLS handshake in memory: the server loads the chain, the client trusts
    ``cert`` alone, checks the name and applies the strict X.509 rules (Python 3.13's
    default)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(cert), str(key))
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client = client_context.wrap_bio(client_in, client_out, server_hostname=server_name)
    done = {"client": False, "server": False}
    for _ in range(20):  # a TLS 1.3 handshake needs two or three flights
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def block_imports(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError


def hide_openssl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("openssl") is None


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1", "::1", "mx.test"])
def test_each_tool_makes_a_certificate_clients_verify(
    tool: str, server_name: str, tmp_path: Path
) -> None:
    made = make_certificate(tmp_path, "mx.test", tools=[tool])
    assert made.tool == tool
    assert made.cert == tmp_path / "cert.pem" and made.key == tmp_path / "key.pem"
    handshake(made.cert, made.key, server_name)


@pytest.mark.parametrize("tool", TOOLS)
def test_the_certificate_is_not_for_other_names(tool: str, tmp_path: Path) -> None:
    made = make_certificate(tmp_path, tools=[tool])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(made.cert, made.key, "other.test")


def test_cryptography_comes_first_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(CERT_TOOL_ENV, raising=False)
    assert DEFAULT_TOOLS == ("cryptography", "openssl")
    assert make_certificate(tmp_path).tool == "cryptography"


def test_without_cryptography_openssl_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(CERT_TOOL_ENV, raising=False)
    block_imports(monkeypatch, "cryptography")
    made = make_certificate(tmp_path)
    assert made.tool == "openssl"
    handshake(made.cert, made.key, "localhost")


def test_trustme_missing_is_reported_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    block_imports(monkeypatch, "trustme")
    made = make_certificate(tmp_path, tools=["trustme", "openssl"])
    assert made.tool == "openssl"
    with pytest.raises(NoCertificateTool, match="trustme: not installed"):
        make_certificate(tmp_path, tools=["trustme"])


@pytest.mark.parametrize("tool", TOOLS)
def test_self_signed_tools_name_the_host_in_the_subject(tool: str, tmp_path: Path) -> None:
    made = make_certificate(tmp_path, "mx.test", tools=[tool])
    context = ssl.create_default_context(cafile=str(made.cert))
    subjects = [cert["subject"] for cert in context.get_ca_certs()]
    own_anchor = any((("commonName", "mx.test"),) in subject for subject in subjects)
    assert own_anchor == (tool != "trustme")  # trustme's anchor is its CA


def test_with_nothing_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(CERT_TOOL_ENV, raising=False)
    block_imports(monkeypatch, "cryptography")
    hide_openssl(monkeypatch, tmp_path)
    with pytest.raises(NoCertificateTool) as caught:
        make_certificate(tmp_path)
    text = str(caught.value)
    assert "cryptography: not installed" in text
    assert "openssl: the openssl command was not found" in text
    assert "install the cryptography package (the certs extra)" in text
    assert isinstance(caught.value, OSError)
    with pytest.raises(OSError, match="the certs extra"):
        make_self_signed(tmp_path)


def test_a_forced_tool_that_is_missing_is_not_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CERT_TOOL_ENV, "openssl")
    hide_openssl(monkeypatch, tmp_path)
    with pytest.raises(NoCertificateTool, match="openssl: the openssl command was not found"):
        make_certificate(tmp_path)


def test_the_environment_sets_the_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CERT_TOOL_ENV, " openssl , trustme ")
    assert make_certificate(tmp_path).tool == "openssl"


@pytest.mark.parametrize("value", ["gnutls", "openssl,,trustme", "OPENSSL"])
def test_an_unknown_tool_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CERT_TOOL_ENV, value)
    with pytest.raises(ValueError, match="unknown certificate tool"):
        make_certificate(tmp_path)
    assert not (tmp_path / "cert.pem").exists()


def test_an_empty_tool_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown certificate tool"):
        make_certificate(tmp_path, tools=[])


def test_make_self_signed_keeps_its_shape(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path, "mx.test")
    handshake(cert, key, "mx.test")


@pytest.mark.parametrize("tool", TOOLS)
def test_the_server_uses_the_forced_tool_for_starttls(
    tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CERT_TOOL_ENV, tool)
    lines: list[str] = []
    with run_server(transcript=lines.append) as server:
        assert server.cert_tool == tool
        with SMTPClient(server.host, server.port, ssl_context=server.ssl_context()) as client:
            client.sendmail("a@example.com", ["b@example.org"], MESSAGE)
        (message,) = server.wait_for_messages(1, timeout=10)
    assert message.data == MESSAGE
    assert f"* certificate made by {tool}: {server.cert_path}" in lines
    assert any("TLS established" in line for line in lines)


def test_a_given_certificate_is_named_given(tmp_path: Path) -> None:
    made = make_certificate(tmp_path, tools=["cryptography"])
    with run_server(certfile=made.cert, keyfile=made.key) as server:
        assert server.cert_tool == "given"
        assert server.cert_path == made.cert


def test_the_server_without_any_tool_offers_no_starttls_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(CERT_TOOL_ENV, raising=False)
    block_imports(monkeypatch, "cryptography")
    hide_openssl(monkeypatch, tmp_path)
    with run_server() as server:
        assert server.cert_path is None and server.cert_tool is None
        with SMTPClient(server.host, server.port, tls="none") as client:
            assert client.capabilities is not None
            assert not client.capabilities.has("STARTTLS")
            client.sendmail("a@example.com", ["b@example.org"], MESSAGE)
        server.wait_for_messages(1, timeout=10)
    err = capsys.readouterr().err
    assert "STARTTLS not offered: no tool could make a self-signed certificate" in err
    assert "install the cryptography package" in err
