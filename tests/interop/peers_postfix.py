"""A private Postfix ``smtpd`` on 127.0.0.1: behind the HAProxy PROXY protocol
(``start_postfix_proxy``), or with XCLIENT and STARTTLS (``start_postfix_xclient``).

Theory of operation
-------------------
Each starter writes a throw-away Postfix instance into a temporary folder
(its own ``config_directory``, ``queue_directory`` and ``data_directory``; nothing of
``/etc/postfix`` is used), creates its queue with ``postfix -c DIR check``, runs its
``master`` in the foreground (``postfix start-fg``) and stops it on exit (``postfix
stop``, then SIGTERM/SIGKILL of the foreground process), whatever happened inside.

The instance has one ``smtpd`` on a free loopback port (and one with implicit TLS,
``smtpd_tls_wrappermode``, on ``tls_port``, with a fresh trustme certificate) with
``smtpd_upstream_proxy_protocol = haproxy`` (Postfix 2.10 reads v1, 3.5 and later v2):
every connection must start with a PROXY header, and smtpd takes the client address
from it. ``smtpd_client_restrictions`` refuses the proxied clients in ``REFUSED``
(192.0.2.66, 2001:db8::66) with "proxied client refused", so a test sees the address
Postfix took: a refusal at RCPT that names it, or a 250 for any other address. Mail
for example.org is accepted and thrown away (``discard``); the log goes to a file
(``maillog_file``), which ``log()`` returns. No DNS is asked: peer names are not looked
up (``smtpd_peername_lookup = no``); the log names the client with its port
(``smtpd_client_port_logging``).

``start_postfix_xclient()`` has no PROXY: 127.0.0.0/8 may send XCLIENT
(``smtpd_authorized_xclient_hosts``, Postfix XCLIENT_README), STARTTLS offers a fresh
trustme certificate (``tls``), and the log shows the client as XCLIENT made it: the
``client=NAME[ADDR]`` line of each message queued.

Postfix's ``master`` runs as root and drops to the ``postfix`` user: without root, or
without Postfix, ``PeerMissing``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
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
    stop_process,
    wait_for_port,
)

POSTFIX = Path("/usr/sbin/postfix")
#: The proxied client addresses the instance refuses (everything else is accepted).
REFUSED = ("192.0.2.66", "2001:db8::66")
REFUSAL_TEXT = "proxied client refused"
#: Seconds smtpd waits for the PROXY header (its default is 5 s).
PROXY_TIMEOUT = 10

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = {host}
inet_protocols = all
myhostname = proxy-test.example
mydestination =
relay_domains = example.org
relay_transport = discard:proxy test
default_transport = discard:proxy test
alias_maps =
alias_database =
local_recipient_maps =
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
smtpd_peername_lookup = no
smtpd_client_port_logging = yes
smtpd_relay_restrictions = reject_unauth_destination
smtputf8_enable = no
biff = no
"""
_PROXY_CF = """\
smtpd_upstream_proxy_protocol = haproxy
smtpd_upstream_proxy_timeout = {timeout}s
smtpd_client_restrictions = check_client_access cidr:{root}/clients.cidr
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
"""
# The PROXY instance's second smtpd: implicit TLS (RFC 8314), the header read first.
_WRAPPER_CF = """\
{host}:{port} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
"""
_XCLIENT_CF = """\
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
"""
# The services smtpd and the queue need (master.cf(5)); no chroot.
_MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
discard   unix  - - n - - discard
error     unix  - - n - - error
retry     unix  - - n - - error
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclasses.dataclass
class PostfixPeer:
    """The running instance: where smtpd listens, and its log file; ``tls`` the
    certificate and its CA (STARTTLS for ``start_postfix_xclient``, implicit TLS on
    ``tls_port`` for ``start_postfix_proxy``)."""

    host: str
    port: int
    root: Path
    tls: TLSMaterial
    tls_port: int | None = None

    def log(self) -> str:
        try:
            return (self.root / "maillog").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """Wait until the log contains ``text`` (Postfix logs through postlogd)."""
        poll(lambda: text in self.log(), timeout, f"{text!r} in the Postfix log")
        return self.log()


def _postfix(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(POSTFIX), "-c", str(root), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=STARTUP_TIMEOUT * 3,
        check=False,
    )


@contextlib.contextmanager
def start_postfix_proxy() -> Iterator[PostfixPeer]:
    """Run the PROXY instance for the duration of the ``with`` block."""
    cidr = "".join(f"{address} REJECT {REFUSAL_TEXT}\n" for address in REFUSED)
    with _instance(proxy=True, files={"clients.cidr": cidr}) as peer:
        yield peer


@contextlib.contextmanager
def start_postfix_xclient() -> Iterator[PostfixPeer]:
    """Run the XCLIENT and STARTTLS instance for the duration of the ``with`` block."""
    with _instance(proxy=False, files={}) as peer:
        yield peer


@contextlib.contextmanager
def _instance(*, proxy: bool, files: dict[str, str]) -> Iterator[PostfixPeer]:
    """The instance's life: its folder, configuration, start and stop (see above)."""
    if not os.access(POSTFIX, os.X_OK) or shutil.which("postconf") is None:
        raise PeerMissing(f"Postfix ({POSTFIX}) is not installed; {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise PeerMissing("a private Postfix instance needs root (its master drops to postfix)")
    # Not pytest's tmp_path: its parent is mode 0700, and the postfix user must get in.
    root = Path(tempfile.mkdtemp(prefix="smtpproto-postfix-"))
    root.chmod(0o755)
    port = free_port()
    (root / "queue").mkdir()
    (root / "data").mkdir()
    shutil.chown(root / "data", user="postfix")
    main_cf = _MAIN_CF.format(root=root, host=HOST)
    master_cf = _MASTER_CF.format(host=HOST, port=port)
    tls = make_tls_material(root / "tls")
    tls_port = None
    if proxy:
        tls_port = free_port()
        main_cf += _PROXY_CF.format(
            root=root, timeout=PROXY_TIMEOUT, cert=tls.cert_path, key=tls.key_path
        )
        master_cf += _WRAPPER_CF.format(host=HOST, port=tls_port)
    else:
        main_cf += _XCLIENT_CF.format(cert=tls.cert_path, key=tls.key_path)
    (root / "main.cf").write_text(main_cf)
    (root / "master.cf").write_text(master_cf)
    for name, text in files.items():
        (root / name).write_text(text)
    process: subprocess.Popen[bytes] | None = None
    try:
        checked = _postfix(root, "check")  # creates the queue folders
        if checked.returncode != 0:
            raise PeerFailed(f"postfix check failed: {checked.stderr!r} {_tail(root)}")
        process = subprocess.Popen(
            [str(POSTFIX), "-c", str(root), "start-fg"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, process=process)
        except PeerFailed as exc:
            raise PeerFailed(f"Postfix smtpd did not start: {exc}; log: {_tail(root)}") from None
        yield PostfixPeer(HOST, port, root, tls, tls_port)
    finally:
        if process is not None:
            _postfix(root, "stop")
            stop_process(process)
        shutil.rmtree(root, ignore_errors=True)


def _tail(root: Path) -> str:
    try:
        return (root / "maillog").read_text(errors="replace")[-2000:]
    except FileNotFoundError:
        return "(no log)"
