"""A private Postfix ``smtpd`` on 127.0.0.1, for the tests of XCLIENT (swaks'
``--xclient*``) against the real implementation (Postfix XCLIENT_README).

Theory of operation
-------------------
``start_postfix`` writes a whole Postfix configuration into a fresh temporary folder
(``main.cf``, a minimal ``master.cf`` whose only ``inet`` service is ``smtpd`` on a
free loopback port, its own queue and data folders, the log in ``maillog`` through
``postlogd``) and runs ``postfix -c FOLDER start``; the instance shares nothing with
the system's Postfix (which ``.ci/install-peers`` leaves stopped). Every message is
accepted for ``DOMAIN`` and discarded (the ``discard`` transport); what the tests
check is in the log: ``client=NAME[ADDR]`` is the client as XCLIENT made it, and the
``disconnect`` line counts each command. 127.0.0.1 is authorised for XCLIENT
(``smtpd_authorized_xclient_hosts``); STARTTLS uses a fresh trustme certificate.
The instance is stopped (``postfix stop``, then its master killed if need be) and the
folder removed when the ``with`` block ends. Start-up is bounded by
``STARTUP_TIMEOUT``; ``postfix start`` needs root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .peers import (
    HOST,
    INSTALL_HINT,
    STARTUP_TIMEOUT,
    PeerFailed,
    PeerMissing,
    TLSMaterial,
    free_port,
    make_tls_material,
    poll,
    wait_for_port,
)

__all__ = ["DOMAIN", "PostfixPeer", "start_postfix"]

#: The domain the private Postfix accepts mail for (and discards).
DOMAIN = "pf.example.test"
_POSTFIX = "/usr/sbin/postfix"
_SMTPD = "/usr/lib/postfix/sbin/smtpd"

_MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclasses.dataclass
class PostfixPeer:
    """A running private Postfix: ``host``/``port`` of its smtpd, its folder ``root``."""

    host: str
    port: int
    root: Path
    tls: TLSMaterial

    def log(self) -> str:
        """The instance's log so far."""
        path = self.root / "maillog"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """The first log line containing ``text``, waiting for it (bounded)."""
        try:
            poll(lambda: text in self.log(), timeout, f"{text!r} in the Postfix log")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log()}") from None
        return next(line for line in self.log().splitlines() if text in line)


def _main_cf(root: Path, tls: TLSMaterial) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = {HOST}
inet_protocols = ipv4
myhostname = mx.{DOMAIN}
mydestination = {DOMAIN}
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:{DOMAIN}
default_transport = discard:{DOMAIN}
relay_transport = discard:{DOMAIN}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_tls_security_level = may
smtpd_tls_cert_file = {tls.cert_path}
smtpd_tls_key_file = {tls.key_path}
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
biff = no
"""


def _postfix(root: Path, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [_POSTFIX, "-c", str(root / "conf"), command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=STARTUP_TIMEOUT * 3,
        check=False,
    )


def _kill_master(root: Path) -> None:
    """Kill the instance's master if ``postfix stop`` left it running."""
    pid_file = root / "queue" / "pid" / "master.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def start_postfix() -> Iterator[PostfixPeer]:
    """Run a private Postfix on a free loopback port for the ``with`` block."""
    if not (os.access(_POSTFIX, os.X_OK) and os.access(_SMTPD, os.X_OK)):
        raise PeerMissing(f"Postfix is not installed ({_POSTFIX}, {_SMTPD}); {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise PeerMissing("a private Postfix must be started as root (postfix -c DIR start)")
    root = Path(tempfile.mkdtemp(prefix="smtpproto-postfix-"))
    started = False
    try:
        root.chmod(0o755)
        tls = make_tls_material(root / "tls")
        (root / "conf").mkdir()
        (root / "queue").mkdir()
        (root / "data").mkdir()
        shutil.chown(root / "data", "postfix")
        port = free_port()
        (root / "conf" / "main.cf").write_text(_main_cf(root, tls))
        (root / "conf" / "master.cf").write_text(_MASTER_CF.format(host=HOST, port=port))
        peer = PostfixPeer(HOST, port, root, tls)
        result = _postfix(root, "start")
        started = True
        if result.returncode != 0:
            raise PeerFailed(f"postfix start failed: {result.stderr!r}\n{peer.log()}")
        wait_for_port(port)
        yield peer
    finally:
        if started:
            _postfix(root, "stop")
            _kill_master(root)
        shutil.rmtree(root, ignore_errors=True)
