"""Unauthorised pipelining against the built-in server, with real clients (issue 11, item 4).

The built-in server refuses a command written before the reply it had to wait for
(``forbid_unauth_pipelining``, on by default): conforming clients — smtplib, aiosmtplib,
swaks with and without ``--pipeline``, Postfix's smtp-source, our three adapters —
deliver as before; a client that writes a whole transaction at once without PIPELINING
(or after EHLO) gets ``554 5.5.0`` and is disconnected, and nothing is stored. With the
option off the same burst is served and the transcript notes it.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from interop.peers import find_postfix_tool
from interop.peers_exim import find_exim
from smtpproto.server import Session
from smtpproto.server_engine.events import EhloReceived
from smtpproto.server_engine.replies import ehlo_reply
from smtpproto.testing import RunningServer, run_server
from smtpproto.wire.reply import Reply

TIMEOUT = 15
BODY = b"Subject: sync\r\n\r\nhello\r\n"
BURST = (
    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\nSubject: x\r\n\r\nspam\r\n.\r\nQUIT\r\n"
)


class NoPipelining(Session):
    """The built-in policy without PIPELINING in the EHLO reply."""

    def ehlo(self, event: EhloReceived) -> Reply:
        reply = super().ehlo(event)
        kept = [line.decode() for line in reply.raw_lines[1:] if line != b"PIPELINING"]
        return ehlo_reply(self.hostname, kept)


def _replies(reader: object, stop: Callable[[bytes], bool]) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(40):
        line = reader.readline()  # type: ignore[attr-defined]
        lines.append(line)
        if not line or stop(line):
            break
    return lines


def _burst(server: RunningServer, after_ehlo: bytes) -> list[bytes]:
    """Greeting, EHLO (waited for), then ``after_ehlo`` in one write; every reply."""
    with (
        socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw,
        raw.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"220 ")
        raw.sendall(b"EHLO bot.test\r\n")
        _replies(reader, lambda line: line[3:4] == b" ")
        raw.sendall(after_ehlo)
        return _replies(reader, lambda line: line[:4] in (b"221 ", b"554 "))


@pytest.mark.parametrize("session_class", [Session, NoPipelining])
def test_a_bot_writing_ahead_is_refused_and_stores_nothing(session_class: type[Session]) -> None:
    lines: list[str] = []
    with run_server(starttls=False, session_class=session_class, transcript=lines.append) as server:
        replies = _burst(server, BURST if session_class is NoPipelining else b"NOOP\r\n" + BURST)
        assert server.messages == []
    assert replies[-1].startswith(b"554 5.5.0 Error: SMTP protocol synchronization")
    assert "* connection closed" in lines
    assert any("RFC 2920" in line for line in lines)


def test_with_the_option_off_the_burst_is_served_and_noted() -> None:
    lines: list[str] = []
    with run_server(
        starttls=False,
        session_class=NoPipelining,
        transcript=lines.append,
        forbid_unauth_pipelining=False,
    ) as server:
        replies = _burst(server, BURST)
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert replies[-1].startswith(b"221 ") and message.data.endswith(b"spam\r\n")
    notes = [line for line in lines if "had to wait for" in line]
    assert len(notes) == 4  # RCPT, DATA, the message, QUIT: MAIL came after EHLO's reply


@pytest.mark.parametrize("session_class", [Session, NoPipelining])
def test_smtplib_in_lock_step(session_class: type[Session]) -> None:
    with (
        run_server(starttls=False, session_class=session_class) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        client.ehlo("client.test")
        assert client.noop()[0] == 250
        assert client.verify("bob")[0] == 252
        assert client.help()  # HELP, then RSET and a transaction
        assert client.rset()[0] == 250
        client.sendmail("a@x.test", ["b@y.test"], BODY)
        client.sendmail("a@x.test", ["c@y.test"], BODY)
        assert len(server.wait_for_messages(2, timeout=TIMEOUT)) == 2


def test_aiosmtplib() -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")

    async def send(port: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=TIMEOUT) as c:
            await c.sendmail("a@x.test", ["b@y.test", "c@y.test"], BODY)
            await c.sendmail("a@x.test", ["d@y.test"], BODY)

    with run_server(starttls=False) as server:
        asyncio.run(send(server.port))
        assert len(server.wait_for_messages(2, timeout=TIMEOUT)) == 2


@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("session_class", [Session, NoPipelining])
def test_swaks(tmp_path: Path, pipeline: bool, session_class: type[Session]) -> None:
    """``--pipeline`` pipelines when PIPELINING is advertised and falls back to
    lock-step when it is not: both deliver."""
    data = tmp_path / "message.eml"
    data.write_bytes(BODY[:-2].replace(b"\r\n", b"\n"))
    with run_server(starttls=False, session_class=session_class) as server:
        command = [
            "swaks", "--server", f"{server.host}:{server.port}", "--ehlo", "client.test",
            "--from", "a@x.test", "--to", "b@y.test,c@y.test", "--data", f"@{data}",
            "--timeout", str(TIMEOUT),
        ] + (["--pipeline"] if pipeline else [])  # fmt: skip
        result = subprocess.run(command, capture_output=True, timeout=TIMEOUT * 2, check=False)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.recipients == ("b@y.test", "c@y.test")


@pytest.mark.parametrize("session_class", [Session, NoPipelining])
def test_postfix_smtp_source(session_class: type[Session]) -> None:
    tool = find_postfix_tool("smtp-source")
    with run_server(starttls=False, session_class=session_class) as server:
        result = subprocess.run(
            [str(tool), "-d", "-m", "3", "-r", "2", "-f", "a@x.test", "-t", "b@y.test",
             f"{server.host}:{server.port}"],
            capture_output=True,
            timeout=TIMEOUT * 2,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert len(server.wait_for_messages(3, timeout=TIMEOUT)) == 3


_EXIM_CLIENT_CONFIG = """\
exim_path = {exim}
primary_hostname = client.test
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
keep_environment =
host_lookup =
check_spool_space = 0
begin routers
to_server:
  driver = manualroute
  route_list = * {host}::{port} byname
  transport = to_server
  self = send
begin transports
to_server:
  driver = smtp
  port = {port}
  allow_localhost
  hosts_try_chunking = *
  {tls}
  tls_verify_hosts =
  tls_try_verify_hosts =
"""


@pytest.mark.parametrize("starttls", [False, True])
def test_exim_as_a_client(starttls: bool) -> None:
    """Exim's smtp transport (PIPELINING, CHUNKING, STARTTLS when offered) delivers to
    the built-in server with ``forbid_unauth_pipelining`` on: ``exim -odf`` queues
    nothing, so each run is one delivery attempt made in the foreground. Its folder is
    not under pytest's (mode 0700): Exim gives up root for its spool and log."""
    exim = find_exim()
    root = Path(tempfile.mkdtemp(prefix="smtpproto-exim-client-"))
    try:
        _exim_delivers_twice(exim, root, starttls)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _exim_delivers_twice(exim: Path, tmp_path: Path, starttls: bool) -> None:
    user = pwd.getpwnam("Debian-exim")
    tmp_path.chmod(0o755)
    for sub in ("spool", "log"):
        (tmp_path / sub).mkdir()
        os.chown(tmp_path / sub, user.pw_uid, user.pw_gid)
    lines: list[str] = []
    with run_server(starttls=starttls, transcript=lines.append) as server:
        config = tmp_path / "exim.conf"
        config.write_text(
            _EXIM_CLIENT_CONFIG.format(
                exim=exim,
                root=tmp_path,
                host=server.host,
                port=server.port,
                tls="" if starttls else "hosts_avoid_tls = *",
            )
        )
        config.chmod(0o644)  # Exim refuses a -C file that others could write
        for _ in range(2):
            result = subprocess.run(
                [str(exim), "-C", str(config), "-odf", "-f", "a@x.test", "b@y.test", "c@y.test"],
                input=b"Subject: from exim\n\nhello\n",
                capture_output=True,
                timeout=TIMEOUT * 2,
                check=False,
            )
            assert result.returncode == 0, result.stderr.decode()
        messages = server.wait_for_messages(2, timeout=TIMEOUT)
    assert [message.recipients for message in messages] == [("b@y.test", "c@y.test")] * 2
    assert not any("RFC 2920" in line for line in lines)
    assert ("STARTTLS" in "".join(lines)) is starttls


@pytest.mark.parametrize("length", [512, 513, 998, 999, 1000, 5000, 8192])
def test_a_long_content_line_is_stored_as_sent(length: int) -> None:
    """The built-in server is liberal with content lines (docs/testing-server.md): over
    the 1000-octet limit of RFC 5321 §4.5.3.1.6 up to ``max_data_line`` octets."""
    content = b"Subject: long\r\n\r\n" + b"a" * length + b"\r\n"
    with (
        run_server(starttls=False) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        client.sendmail("a@x.test", ["b@y.test"], content)
        (message,) = server.wait_for_messages(1, timeout=TIMEOUT)
    assert message.data.endswith(content)


def test_a_content_line_over_max_data_line_closes_the_session() -> None:
    content = b"Subject: long\r\n\r\n" + b"a" * 8193 + b"\r\n"
    with (
        run_server(starttls=False) as server,
        smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client,
    ):
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("a@x.test", ["b@y.test"], content)
        assert server.messages == []
    assert caught.value.smtp_code == 500 and b"5.5.2" in caught.value.smtp_error
