"""HAProxy as a PROXY protocol *receiver*, in front of an SMTP server, on 127.0.0.1.

Theory of operation
-------------------
HAProxy wrote the PROXY protocol; its ``accept-proxy`` listener is the reference
receiver. ``start_haproxy_proxy(backend)`` runs ``haproxy -db`` (foreground) with a
private configuration: one TCP frontend on a free loopback port with ``accept-proxy``,
relaying every connection to ``backend`` (an SMTP server of the test's), and a log line
per connection on stdout, which a reader thread collects (``log()``,
``wait_for_log``)::

    proxied src=<client ip>:<port> dst=<ip>:<port> authority=<TLV 0x02> uid=<TLV 0x05>

``src``/``dst`` are what HAProxy took from the header; ``authority`` and ``uid`` the
PP2_TYPE_AUTHORITY and PP2_TYPE_UNIQUE_ID TLVs (``-`` when absent). A header HAProxy
does not accept (a wrong CRC32C checksum, ...) logs "Received an invalid PROXY protocol
header" and the connection is closed. ``tcp-request session`` (evaluated after the
header) rejects the proxied clients in ``REFUSED``: the connection is closed at once.

``PeerMissing`` when HAProxy is not installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .peers import (
    HOST,
    INSTALL_HINT,
    STARTUP_TIMEOUT,
    PeerFailed,
    PeerMissing,
    free_port,
    poll,
    stop_process,
    wait_for_port,
)

REFUSED = ("192.0.2.66", "2001:db8::66")

_CONFIG = """\
global
    log stdout format raw local0
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 20s
    timeout server 20s
frontend smtp
    bind {host}:{port} accept-proxy
{rejects}
    log-format "proxied src=%ci:%cp dst=%fi:%fp authority=%[fc_pp_authority] uid=%[fc_pp_unique_id]"
    default_backend smtp
backend smtp
    server backend {backend_host}:{backend_port}
"""


@dataclasses.dataclass
class HaproxyPeer:
    """The running HAProxy: where it listens, and the lines it logged."""

    host: str
    port: int
    lines: list[str]

    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """Wait until a logged line contains ``text`` (HAProxy logs at the session end)."""
        poll(lambda: text in self.log(), timeout, f"{text!r} in HAProxy's log")
        return self.log()


def find_haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise PeerMissing(f"HAProxy is not installed; {INSTALL_HINT}")
    return found


@contextlib.contextmanager
def start_haproxy_proxy(backend: tuple[str, int]) -> Iterator[HaproxyPeer]:
    """Run HAProxy in front of ``backend`` for the duration of the ``with`` block."""
    haproxy = find_haproxy()
    folder = Path(tempfile.mkdtemp(prefix="smtpproto-haproxy-"))
    port = free_port()
    rejects = "".join(
        f"    tcp-request session reject if {{ src {address} }}\n" for address in REFUSED
    )
    config = folder / "haproxy.cfg"
    config.write_text(
        _CONFIG.format(
            host=HOST,
            port=port,
            rejects=rejects.rstrip("\n"),
            backend_host=backend[0],
            backend_port=backend[1],
        )
    )
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        try:
            wait_for_port(port, process=process)
        except PeerFailed as exc:
            raise PeerFailed(f"HAProxy did not start: {exc}; output: {lines}") from None
        yield HaproxyPeer(HOST, port, lines)
    finally:
        stop_process(process)
        reader.join(STARTUP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)
