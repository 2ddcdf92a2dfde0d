"""``send``/``probe`` ``--proxy*`` (swaks' PROXY options), run as a subprocess: against
a private Postfix smtpd that reads PROXY headers (``interop/peers_postfix.py``), which
must use the proxied address; byte for byte against swaks for the same options; and
every bad option as a usage error before connecting."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading

import pytest

from interop.conftest import postfix_proxy  # noqa: F401 -- the fixture, used by name
from interop.peers_postfix import REFUSAL_TEXT, PostfixPeer
from proxy_decoder import DecodeError, decode

from .helpers import RUN_TIMEOUT, assert_clean_failure, run_cli

ENVELOPE = ("--tls", "none", "--from", "a@example.net", "--to", "b@example.org", "--body", "x")


def _details(source: str, port: int, destination: str) -> tuple[str, ...]:
    return (
        "--proxy-source", source, "--proxy-source-port", str(port),
        "--proxy-dest", destination, "--proxy-dest-port", "25",
    )  # fmt: skip


@pytest.mark.parametrize("version", ["1", "2"])
def test_send_with_a_proxy_header_to_postfix(postfix_proxy: PostfixPeer, version: str) -> None:  # noqa: F811
    port = 40300 + int(version)
    result = run_cli(
        "send", "--server", f"127.0.0.1:{postfix_proxy.port}", *ENVELOPE,
        "--proxy-version", version, *_details("192.0.2.7", port, "198.51.100.25"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = "PROXY TCP4 192.0.2.7 198.51.100.25" if version == "1" else "<PROXY v2: PROXY TCP4"
    assert shown in result.stdout
    postfix_proxy.wait_for_log(f"client=unknown[192.0.2.7]:{port}")


def test_send_from_a_refused_proxied_address_is_exit_7(postfix_proxy: PostfixPeer) -> None:  # noqa: F811
    result = run_cli(
        "send", "--server", f"127.0.0.1:{postfix_proxy.port}", *ENVELOPE,
        "--proxy-version", "2", "--proxy", "TCP6 2001:db8::66 2001:db8::25 40310 25",
    )  # fmt: skip
    assert_clean_failure(result, 7, REFUSAL_TEXT, "unknown[2001:db8::66]")


def test_probe_with_a_v2_local_header(postfix_proxy: PostfixPeer) -> None:  # noqa: F811
    result = run_cli(
        "probe", f"127.0.0.1:{postfix_proxy.port}", "--no-starttls", "--json",
        "--proxy-version", "2", "--proxy-command", "LOCAL",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["banner"] == ["proxy-test.example ESMTP Postfix"]
    assert report.get("error") is None


class _HeaderRecorder:
    """Accepts one connection on 127.0.0.1, keeps the PROXY header it starts with,
    then refuses the session (554) and closes. Bounded in time."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(RUN_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.header = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.listener, self.listener.accept()[0] as conn:
            conn.settimeout(10)
            data = b""
            for _ in range(50):
                try:
                    self.header = data[: decode(data).length]
                    break
                except DecodeError:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            conn.sendall(b"554 5.7.0 recorded\r\n")

    def join(self) -> bytes:
        self.thread.join(RUN_TIMEOUT)
        assert not self.thread.is_alive()
        return self.header


@pytest.mark.parametrize(
    ("version", "family", "source", "destination"),
    [
        ("1", "TCP4", "192.0.2.7", "198.51.100.25"),
        ("1", "TCP6", "2001:db8::7", "2001:db8::25"),
        ("2", "AF_INET", "192.0.2.7", "198.51.100.25"),
        ("2", "AF_INET6", "2001:db8::7", "2001:db8::25"),
    ],
)
def test_the_same_header_as_swaks(version: str, family: str, source: str, destination: str) -> None:
    options = (
        "--proxy-version", version, "--proxy-family", family,
        *_details(source, 50123, destination),
    )  # fmt: skip
    assert shutil.which("swaks") is not None, "swaks is not installed (.ci/install-peers)"
    ours = _HeaderRecorder()
    result = run_cli("send", "--server", f"127.0.0.1:{ours.port}", *ENVELOPE, *options)
    assert_clean_failure(result, 3, "554")
    theirs = _HeaderRecorder()
    subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{theirs.port}", "--to", "b@example.org", *options],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    mine, swaks = ours.join(), theirs.join()
    assert mine != b""
    # swaks writes IPv6 in upper case, we in lower case (RFC 5952 §4.3); both are valid.
    assert (mine.lower(), decode(mine)) == (swaks.lower(), decode(swaks))


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (("--proxy-source", "192.0.2.7"), ("also needs --proxy-dest",)),
        (("--proxy", "TCP4 192.0.2.7 ::1 1 2"), ("not of one family",)),
        (("--proxy", "TCP4 192.0.2.7 192.0.2.8 1"), ("expected 'TCP4|TCP6",)),
        (("--proxy", "TCP4 192.0.2.7\r\n 192.0.2.8 1 2"), ("not an IPv4 or IPv6",)),
        (("--proxy", "UNKNOWN", "--proxy-source", "192.0.2.7"), ("not with --proxy-source",)),
        ((*_details("192.0.2.7", 1, "192.0.2.8"), "--proxy-family", "x"), ("--proxy-family",)),
        ((*_details("192.0.2.7", 1, "192.0.2.8"), "--proxy-family", "TCP6"), ("does not match",)),
        (
            (
                "--proxy-source",
                "h.example",
                "--proxy-source-port",
                "1",
                "--proxy-dest",
                "192.0.2.8",
                "--proxy-dest-port",
                "2",
            ),
            ("not an IPv4 or IPv6",),
        ),
        ((*_details("192.0.2.7", 1, "192.0.2.8"), "--proxy-source-port", "65536"), ("0 to 65535",)),
        (("--proxy", "TCP4 192.0.2.7 192.0.2.8 -1 2"), ("0 to 65535",)),
        (("--proxy-command", "LOCAL"), ("LOCAL command is version 2 only",)),
        (("--proxy-version", "2"), ("--proxy-version needs",)),
        (("--proxy-version", "2", "--proxy-command", "HEALTH"), ("'PROXY' or 'LOCAL'",)),
        (
            ("--proxy-version", "2", "--proxy-family", "UNIX", "--proxy-source", "/a"),
            ("also needs --proxy-dest",),
        ),
    ],
)
def test_bad_proxy_options_are_usage_errors_before_connecting(
    options: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    # Port 1 on 127.0.0.1: nothing listens, so exit 2 (not 3) means nothing was tried.
    result = run_cli("send", "--server", "127.0.0.1:1", *ENVELOPE, *options)
    assert_clean_failure(result, 2, *fragments)


@pytest.mark.parametrize(
    "options",
    [
        ("--proxy-source", "192.0.2.7"),
        ("--proxy", "TCP4 192.0.2.7 ::1 1 2"),
        ("--proxy-version", "2"),
    ],
)
def test_probe_checks_the_proxy_options_the_same_way(options: tuple[str, ...]) -> None:
    assert_clean_failure(run_cli("probe", "127.0.0.1:1", *options), 2, "proxy")


def test_the_demo_reads_no_proxy_header() -> None:
    result = run_cli("send", "--demo", "--proxy", "UNKNOWN")
    assert_clean_failure(result, 2, "needs --server or --unix-socket")
