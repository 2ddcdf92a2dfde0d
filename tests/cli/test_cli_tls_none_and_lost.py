"""Two command-line gaps, through the real CLI in a subprocess.

* A TLS option given with ``send --tls none`` (or ``probe --no-starttls``) was silently
  ignored: ``--insecure``, ``--cafile``, ``--tls-cert``/``--tls-key``,
  ``--tls-min-version``, ``--tls-sni``. It is a usage error (exit 2, one line) before
  connecting, like every other option the chosen path would ignore.
* A server that greets (or not) and then closes the connection was exit 9 (protocol
  error) where docs/cli.md documents exit 3 for a connection lost before the content's
  end: the library reports the hang-up as ``SMTPConnectError`` ("connection lost")
  however it is noticed, so the CLI exits 3. Against a real socket peer on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from .helpers import assert_clean_failure, run_cli

ENVELOPE = ("--from", "a@example.org", "--to", "b@example.org", "--body", "hi")
#: Nothing listens there: had the options been accepted, the run would be exit 3.
NOWHERE = ("--server", "127.0.0.1:1")

TLS_ONLY = [
    ("--insecure",),
    ("--cafile", "ca.pem"),
    ("--tls-cert", "cert.pem"),
    ("--tls-cert", "cert.pem", "--tls-key", "key.pem"),
    ("--tls-min-version", "1.2"),
    ("--tls-min-version", "1.3"),
    ("--tls-sni", "mx.example.org"),
]


@pytest.mark.parametrize("option", TLS_ONLY, ids=lambda o: "+".join(o))
def test_tls_options_with_tls_none_are_a_usage_error(option: tuple[str, ...]) -> None:
    result = run_cli("send", *NOWHERE, "--tls", "none", *option, *ENVELOPE)
    assert_clean_failure(result, 2, "--tls none makes no TLS connection: not with", option[0])


def test_every_tls_option_is_named() -> None:
    every = ("--insecure", "--tls-cert", "c", "--tls-min-version", "1.3", "--tls-sni", "x")
    result = run_cli("send", *NOWHERE, "--tls", "none", *every, *ENVELOPE)
    assert_clean_failure(result, 2, "not with --insecure, --tls-cert, --tls-min-version, --tls-sni")


@pytest.mark.parametrize("tls", ["opportunistic", "required", "implicit"])
def test_tls_options_with_tls_are_accepted(tls: str) -> None:
    # Past the option checks: the connection to a closed port fails (exit 3).
    result = run_cli("send", *NOWHERE, "--tls", tls, "--tls-min-version", "1.3", *ENVELOPE)
    assert_clean_failure(result, 3)


@pytest.mark.parametrize("option", [("--insecure",), ("--cafile", "ca.pem")])
def test_probe_tls_options_with_no_starttls_are_a_usage_error(option: tuple[str, ...]) -> None:
    result = run_cli("probe", "127.0.0.1:1", "--no-starttls", *option)
    assert_clean_failure(result, 2, "--no-starttls makes no TLS connection", option[0])


@contextlib.contextmanager
def _hanging_up(replies: list[bytes]) -> Iterator[int]:
    """A peer that writes ``replies[0]`` on connect, then reads a line and writes the
    next reply for each, and closes once they are used up (at most 5 s per read)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10.0)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5.0)
                reader = conn.makefile("rb")
                for index, reply in enumerate(replies):
                    if index:
                        reader.readline()
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(10.0)


@pytest.mark.parametrize(
    "replies",
    [
        [],  # closes without a greeting
        [b"220 hello\r\n"],  # greets, closes while EHLO waits
        [b"220 hello\r\n", b"250 mx\r\n"],  # closes while MAIL waits
        [b"220 hello\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n"],  # while DATA waits
        [b"220 hello\r\n", b"250-mx\r\n250-SIZ"],  # mid-reply
    ],
    ids=["no-greeting", "greeting", "ehlo", "rcpt", "mid-reply"],
)
def test_a_server_closing_before_the_content_is_exit_3(replies: list[bytes]) -> None:
    with _hanging_up(replies) as port:
        result = run_cli("send", "--server", f"127.0.0.1:{port}", "--tls", "none", *ENVELOPE)
    assert_clean_failure(result, 3, "connection lost")
