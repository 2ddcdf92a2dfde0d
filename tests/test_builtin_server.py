"""The built-in server (smtpproto.server / smtpproto.testing) with real clients.

CPython smtplib, aiosmtplib and swaks deliver messages over 127.0.0.1 and the stored
bytes are compared exactly. A missing peer fails the test unless
``SMTPPROTO_ALLOW_MISSING_PEERS=1`` is set (then it skips).
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest

from smtpproto.builtin_server.rules import Rule
from smtpproto.server import SMTPServer, make_self_signed
from smtpproto.testing import RunningServer, run_server, smtp_server

__all__ = ["smtp_server"]  # the fixture, imported so the tests below can use it

USERS = {"alice": "wonderland"}
BODY = (
    b"From: a@x.test\r\nTo: b@y.test\r\nSubject: test\r\n\r\n"
    b".leading dot\r\n\xc3\xa9t\xc3\xa9\r\nend\r\n"
)
TIMEOUT = 15


def missing(message: str) -> NoReturn:
    """Fail with ``message``, or skip when ``SMTPPROTO_ALLOW_MISSING_PEERS=1``."""
    if os.environ.get("SMTPPROTO_ALLOW_MISSING_PEERS") == "1":
        pytest.skip(f"{message}; SMTPPROTO_ALLOW_MISSING_PEERS=1")
    pytest.fail(message + "; set SMTPPROTO_ALLOW_MISSING_PEERS=1 to skip", pytrace=False)


def require(name: str) -> Any:
    """Import a peer module or find a peer command; fail loudly when it is missing."""
    if name != "swaks":
        try:
            return __import__(name)
        except ImportError:
            missing(f"{name} is not installed (pip install {name})")
    swaks = shutil.which("swaks")
    if swaks is None:
        missing("swaks is not installed (apt-get install -y swaks libnet-ssleay-perl)")
    support = subprocess.run(
        [swaks, "--support"], capture_output=True, timeout=TIMEOUT, check=False
    )
    if b"=== TLS supported" not in support.stdout + support.stderr:
        missing("swaks lacks TLS support (apt-get install -y libnet-ssleay-perl)")
    return swaks


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=TIMEOUT)


def smtplib_send(server: RunningServer, mechanism: str | None, body: bytes = BODY) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
        client.starttls(context=server.ssl_context())
        if mechanism is not None:
            client.ehlo()
            client.user, client.password = "alice", "wonderland"
            authobject = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login}[mechanism]
            client.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
        client.sendmail("a@x.test", ["b@y.test", "c@y.test"], body)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_auth_byte_exact(mechanism: str) -> None:
    with run_server(users=USERS, require_auth=True) as server:
        smtplib_send(server, mechanism)
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.sender == "a@x.test"
    assert message.recipients == ("b@y.test", "c@y.test")
    assert message.data == BODY


def test_smtplib_cram_md5_and_wrong_password() -> None:
    with run_server(users=USERS) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.starttls(context=server.ssl_context())
            client.login("alice", "wonderland")  # smtplib prefers CRAM-MD5
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.starttls(context=server.ssl_context())
            with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
                client.login("alice", "wrong")
            assert caught.value.smtp_code == 535


def test_auth_needs_tls_and_required_auth_refuses_mail() -> None:
    with run_server(users=USERS, require_auth=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert not client.has_extn("auth") and client.has_extn("starttls")
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                client.sendmail("a@x.test", ["b@y.test"], BODY)
            assert caught.value.smtp_code == 530
        assert server.messages == []


def test_aiosmtplib_starttls_auth_byte_exact() -> None:
    aiosmtplib = require("aiosmtplib")

    async def send(server: RunningServer) -> None:
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            start_tls=True,
            tls_context=server.ssl_context(),
            timeout=TIMEOUT,
        )
        async with client:
            await client.login("alice", "wonderland")
            await client.sendmail("a@x.test", ["b@y.test"], BODY)

    with run_server(users=USERS, require_auth=True) as server:
        asyncio.run(asyncio.wait_for(send(server), TIMEOUT))
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.data == BODY and message.recipients == ("b@y.test",)


@pytest.mark.parametrize("auth", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_starttls_auth(tmp_path: Path, auth: str) -> None:
    swaks = require("swaks")
    data = tmp_path / "message.eml"
    # swaks ends the data with "\r\n.\r\n" itself: the file has no final line end
    data.write_bytes(BODY[:-2].replace(b"\r\n", b"\n"))
    with run_server(users=USERS) as server:
        command = [
            swaks, "--server", f"{server.host}:{server.port}", "--ehlo", "client.test",
            "--from", "a@x.test", "--to", "b@y.test", "--tls", "--auth", auth,
            "--auth-user", "alice", "--auth-password", "wonderland",
            "--data", str(data), "--timeout", str(TIMEOUT),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, timeout=TIMEOUT * 2, check=False)
        assert result.returncode == 0, result.stdout.decode(errors="replace")[-2000:]
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.data == BODY  # swaks turned LF into CRLF
    assert message.recipients == ("b@y.test",)


def test_fixture_defaults(smtp_server: RunningServer) -> None:
    assert smtp_server.host == "127.0.0.1" and smtp_server.port > 0
    assert smtp_server.cert_path is not None and smtp_server.cert_path.exists()
    smtplib_send(smtp_server, None)
    assert smtp_server.wait_for_messages(1, timeout=TIMEOUT)[0].data == BODY
    with pytest.raises(TimeoutError):
        smtp_server.wait_for_messages(2, timeout=0.2)


def test_plaintext_pipelined_behind_starttls_never_runs() -> None:
    lines: list[str] = []
    with run_server(transcript=lines.append) as server, connect(server) as raw:
        with raw.makefile("rb") as reader:  # closed before the socket moves into TLS
            assert reader.readline().startswith(b"220 ")
            raw.sendall(b"EHLO client.test\r\n")
            for _ in range(20):
                if reader.readline().startswith(b"250 "):
                    break
            raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nQUIT\r\n")
            assert reader.readline().startswith(b"220 ")
        context = server.ssl_context()
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"NOOP\r\n")
            assert tls.recv(1024).startswith(b"250 ")  # QUIT never ran
            tls.sendall(b"MAIL FROM:<a@x.test>\r\n")
            assert tls.recv(1024).startswith(b"503 ")  # EHLO again after TLS
    assert any("plaintext octets after STARTTLS discarded" in line for line in lines)
    assert not any("evil" in line for line in lines)


def test_maildir_and_mbox_storage(tmp_path: Path) -> None:
    body = b"Subject: s\r\n\r\nFrom here\r\n>From there\r\n"
    with run_server(maildir=tmp_path / "Maildir", mbox=tmp_path / "mbox") as server:
        smtplib_send(server, None, body)
        server.wait_for_messages(1, timeout=TIMEOUT)
    (stored,) = list((tmp_path / "Maildir" / "new").iterdir())
    assert stored.read_bytes() == body
    box = mailbox.mbox(str(tmp_path / "mbox"))
    try:
        (message,) = list(box)
    finally:
        box.close()
    assert message.get_from().startswith("a@x.test ")
    assert message["Subject"] == "s"
    # mboxrd: every ">*From " body line gets one more ">"; LF line ends
    assert (tmp_path / "mbox").read_bytes().endswith(b"\n\n>From here\n>>From there\n\n")


def test_size_limit_and_lmtp() -> None:
    with (
        run_server(max_message_size=100, starttls=False) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@x.test", ["b@y.test"], b"x" * 200 + b"\r\n")
        assert refused.value.smtp_code == 552  # declared SIZE (RFC 1870)
        client.mail("a@x.test")  # no SIZE declared: the content is counted
        client.rcpt("b@y.test")
        assert client.data(b"x" * 200 + b"\r\n")[0] == 552
        assert server.messages == []
    with (
        run_server(lmtp=True, starttls=False) as server,
        connect(server) as raw,
        raw.makefile("rb") as reader,
    ):
        # smtplib.LMTP reads one reply after DATA; RFC 2033 section 4.2 gives one per recipient.
        # Pipelined as RFC 2920 section 3.1 allows: after the greeting and the LHLO reply.
        assert reader.readline()[:4] == b"220 "
        raw.sendall(b"LHLO client.test\r\n")
        codes = [reader.readline()[:4] for _ in range(9)]  # 9 LHLO lines
        raw.sendall(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n")
        codes += [reader.readline()[:4] for _ in range(4)]
        assert codes[-5:] == [b"250 ", b"250 ", b"250 ", b"250 ", b"354 "]  # LHLO, 3 x 250
        raw.sendall(BODY.replace(b"\r\n.", b"\r\n..") + b".\r\nQUIT\r\n")  # dot-stuffed
        assert [reader.readline()[:4] for _ in range(3)] == [b"250 ", b"250 ", b"221 "]
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
        assert message.recipients == ("b@y.test", "c@y.test") and message.data == BODY


def test_idle_timeout_sends_421() -> None:
    with (
        run_server(timeout=0.3, starttls=False) as server,
        connect(server) as raw,
        raw.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"220 ")
        assert reader.readline().startswith(b"421 4.3.2")
        assert reader.readline() == b""


def test_missing_openssl_means_no_starttls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMTPPROTO_CERT_TOOL", "openssl")  # others: test_server_certificates.py
    monkeypatch.setattr("smtpproto.builtin_server.certificates.shutil.which", lambda name: None)
    with run_server() as server:
        assert server.cert_path is None
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
    assert "STARTTLS not offered" in capsys.readouterr().err


def test_given_certificate_and_async_api(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path, "mx.test")

    async def scenario() -> None:
        async with SMTPServer(certfile=cert, keyfile=key, hostname="mx.test") as server:
            assert server.cert_path == cert
            reader, writer = await asyncio.open_connection(server.host, server.port)
            assert (await reader.readline()).startswith(b"220 mx.test")
            writer.write(b"QUIT\r\n")
            assert (await reader.readline()).startswith(b"221 ")
            writer.close()
            with pytest.raises(TimeoutError):
                await server.wait_for_messages(1, timeout=0.1)

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    ssl.create_default_context(cafile=str(cert))  # the certificate is valid PEM


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        SMTPServer(mechanisms=["GSSAPI"])
    with pytest.raises(ValueError):
        SMTPServer(certfile="cert.pem")


def test_pipelined_bdat_over_a_socket_is_byte_exact() -> None:
    chunk = b"\x00\xff\r\n.\r\nQUIT\r\n"
    with (
        run_server(starttls=False) as server,
        connect(server) as raw,
        raw.makefile("rb") as reader,
    ):
        # Pipelined as RFC 2920 section 3.1 allows: after the greeting and the EHLO reply.
        lines = [reader.readline()]  # 220
        raw.sendall(b"EHLO client.test\r\n")
        lines += [reader.readline() for _ in range(9)]  # 9 EHLO lines
        raw.sendall(
            b"MAIL FROM:<a@x.test> BODY=BINARYMIME\r\nRCPT TO:<b@y.test>\r\n"
            + b"BDAT %d\r\n" % len(chunk)
            + chunk
            + b"BDAT 4 LAST\r\ntailQUIT\r\n"
        )
        lines += [reader.readline() for _ in range(5)]  # 5 replies
        assert [line[:4] for line in lines[-5:]] == [b"250 ", b"250 ", b"250 ", b"250 ", b"221 "]
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.data == chunk + b"tail"


def test_address_in_use_is_reported() -> None:
    with (
        run_server(starttls=False) as first,
        pytest.raises(OSError),
        run_server(starttls=False, port=first.port),
    ):
        pass


@pytest.mark.parametrize("chunking", [False, True])
def test_our_blocking_client_scram_pipelining_byte_exact(chunking: bool) -> None:
    from smtpproto.blocking import SMTPClient

    lines: list[str] = []
    with run_server(users=USERS, require_auth=True, transcript=lines.append) as server:
        client = SMTPClient(
            server.host, server.port, tls="required", ssl_context=server.ssl_context(), timeout=5
        )
        with client:
            client.login("alice", "wonderland")
            result = client.sendmail("a@x.test", ["b@y.test", "c@y.test"], BODY, chunking=chunking)
        assert result is not None
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.data == BODY and message.recipients == ("b@y.test", "c@y.test")
    assert "C: AUTH SCRAM-SHA-256 <initial response hidden>" in lines  # strongest offered
    assert any(line.startswith("C: <message") and "BDAT" in line for line in lines) == chunking


def test_concurrent_clients_share_the_receive_buffer_without_mixing_octets() -> None:
    # Every connection's transport reads into the server's one receive buffer; each
    # read is copied out before the next callback runs, so interleaved clients (large
    # messages, read in many pieces, with STARTTLS on half of them) stay apart.
    import aiosmtplib

    async def scenario() -> list[bytes]:
        async with SMTPServer() as server:
            assert server.cert_path is not None
            context = ssl.create_default_context(cafile=str(server.cert_path))

            async def one(n: int) -> None:
                line = b"%03d " % n + bytes([65 + n % 26]) * 70 + b"\r\n"
                body = b"Subject: %d\r\n\r\n" % n + line * 2000
                await aiosmtplib.send(
                    body,
                    sender=f"s{n}@x.test",
                    recipients=[f"r{n}@y.test"],
                    hostname="127.0.0.1",
                    port=server.port,
                    start_tls=n % 2 == 0,
                    use_tls=False,
                    tls_context=context,
                    timeout=30,
                )

            await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(12))), 60)
            return [message.data for message in await server.wait_for_messages(12)]

    received = asyncio.run(scenario())
    for n in range(12):
        line = b"%03d " % n + bytes([65 + n % 26]) * 70 + b"\r\n"
        assert (b"Subject: %d\r\n\r\n" % n + line * 2000) in received


def test_a_delayed_reply_does_not_resume_reading_while_the_peer_reads_no_replies() -> None:
    # The transport said pause_writing (its write buffer is full: the client sends but
    # does not read) while a rule held a reply back; sending that reply must not resume
    # reading, or the client could make the server buffer replies without bound.
    async def scenario() -> tuple[bool, bool]:
        rules = [Rule(stage="mail", delay=0.2)]
        async with SMTPServer(rules=rules) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                await reader.readuntil(b"\r\n")
                writer.write(b"HELO client.test\r\n")
                await reader.readuntil(b"\r\n")  # the 250 to HELO
                writer.write(b"MAIL FROM:<a@b.test>\r\n")
                (session,) = server._sessions
                for _ in range(500):  # until the MAIL reply is held back
                    if session._delayed is not None:
                        break
                    await asyncio.sleep(0.01)
                assert session._delayed is not None
                session.pause_writing()  # what the transport says when the peer stops reading
                line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
                assert line.startswith(b"250 2.1.0")
                transport = session._transport
                assert transport is not None
                after_reply = transport.is_reading()
                session.resume_writing()
                return after_reply, transport.is_reading()
            finally:
                writer.close()
                await writer.wait_closed()

    assert asyncio.run(scenario()) == (False, True)


async def _start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext) -> None:
    """``StreamWriter.start_tls`` (Python 3.11+); on 3.10 what it does, by hand."""
    if sys.version_info >= (3, 11):
        await writer.start_tls(context, server_hostname="localhost")
        return
    protocol = writer.transport.get_protocol()
    upgraded = await asyncio.get_running_loop().start_tls(
        writer.transport, protocol, context, server_hostname="localhost"
    )
    assert upgraded is not None
    writer._transport = upgraded  # type: ignore[attr-defined]  # what 3.11's start_tls sets
    protocol._transport = upgraded  # type: ignore[attr-defined]


def test_writing_paused_before_starttls_does_not_outlive_the_plaintext_transport() -> None:
    # pause_writing came from the plaintext transport (its resume_writing then goes to
    # asyncio's TLS protocol, never here); once TLS is up, a reply a rule delayed must
    # still resume reading, or the session stalls until the idle timeout.
    async def scenario() -> bytes:
        rules = [Rule(stage="mail", delay=0.05)]  # the MAIL reply is delayed
        async with SMTPServer(rules=rules) as server:
            assert server.cert_path is not None
            context = ssl.create_default_context(cafile=str(server.cert_path))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                await reader.readuntil(b"\r\n")
                (session,) = server._sessions
                session.pause_writing()  # the plaintext transport's write buffer was full
                assert session._transport is not None
                session._transport.resume_reading()  # STARTTLS was read in that batch
                writer.write(b"EHLO client.test\r\n")
                await reader.readuntil(b"250 STARTTLS\r\n")
                writer.write(b"STARTTLS\r\n")
                await reader.readuntil(b"\r\n")
                await _start_tls(writer, context)
                replies = []
                for command in (b"EHLO client.test", b"MAIL FROM:<a@b.test>", b"NOOP"):
                    writer.write(command + b"\r\n")  # NOOP: read only if reading resumed
                    line = b"250-"
                    while line[3:4] == b"-":
                        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
                    replies.append(line[:3])
                return b" ".join(replies)
            finally:
                writer.close()
                await writer.wait_closed()

    assert asyncio.run(scenario()) == b"250 250 250"
