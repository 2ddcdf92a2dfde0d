"""``smtpproto send`` never prints a password a server echoes (issue 11, security item 2).

A built-in server whose AUTH reply quotes the client's initial response (and the
password inside it) in its 535: neither the transcript nor the error line the CLI
prints shows it, because the client engine redacts every reply after AUTH.
"""

from __future__ import annotations

import base64

from smtpproto.server import Session
from smtpproto.server_engine.events import AuthCancelled, AuthRequested, AuthResponse
from smtpproto.testing import run_server
from smtpproto.wire.reply import Reply

from .helpers import run_cli

PASSWORD = "s3cret-Pa55w0rd"


class EchoingSession(Session):
    """Refuses AUTH with a 535 that repeats the credentials it received (as sent, and
    upper- and lower-cased, as a case-folding server would)."""

    def auth(self, event: AuthRequested | AuthResponse | AuthCancelled) -> Reply:
        if isinstance(event, AuthRequested) and event.initial_response:
            echoed = event.initial_response.replace(b"\0", b" ")
            encoded = base64.b64encode(event.initial_response)
            return Reply(
                535,
                (
                    b"5.7.8 bad: " + echoed,
                    b"5.7.8 BAD: " + echoed.upper(),
                    b"5.7.8 bad: " + echoed.lower(),
                    b"5.7.8 you sent " + encoded,
                ),
            )
        return super().auth(event)


def test_send_prints_no_echoed_password() -> None:
    with run_server(session_class=EchoingSession, users={"alice": "other"}) as server:
        result = run_cli(
            "send",
            "--server",
            f"127.0.0.1:{server.port}",
            "--tls",
            "required",
            "--cafile",
            str(server.cert_path),
            "--auth",
            "PLAIN",
            "--user",
            "alice",
            "--password-env",
            "SMTP_PW",
            "--from",
            "a@example.org",
            "--to",
            "b@example.org",
            "--body",
            "hi",
            env={"SMTP_PW": PASSWORD},
        )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "535" in output and "<redacted>" in output, output
    assert PASSWORD not in output, output
    assert PASSWORD.upper() not in output and PASSWORD.lower() not in output, output
    assert base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode() not in output, output
