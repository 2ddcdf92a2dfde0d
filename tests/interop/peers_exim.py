"""The private Exim 4 daemon on 127.0.0.1 for the interop tests (see ``peers.py``).

Theory of operation
-------------------
``.ci/install-peers`` unpacks Exim (``exim4-daemon-light``, which conflicts with the
postfix package) into ``/opt/smtpproto-exim``. ``start_exim`` writes a private
configuration into a fresh temporary folder that also holds the spool, the logs, a
trustme certificate and the maildir, and runs ``exim4 -C FILE -bdf -odi -oX PORT`` in the
foreground so the test process owns and always stops it. The folders Exim writes are
owned by ``Debian-exim`` (Exim's compiled-in user; it gives up root after accepting a
connection); the configuration stays root-owned and not writable by others, which Exim
demands of a ``-C`` file.

The maildir holds the content with LF line ends; the only header lines Exim adds are
``Return-path`` and ``Envelope-to`` (``received_header_text`` is empty, so no
``Received:``), which the reader removes and reports as the envelope. One file per
recipient.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .peers import (
    AUTH_PASSWORD,
    AUTH_USER,
    HOST,
    INSTALL_HINT,
    STARTUP_TIMEOUT,
    PeerFailed,
    PeerMissing,
    ReceivedMessage,
    TLSMaterial,
    free_port,
    make_tls_material,
    poll,
    stop_process,
    wait_for_port,
)

__all__ = ["EXIM_ROOT", "EximPeer", "find_exim", "start_exim"]

#: Where ``.ci/install-peers`` unpacks Exim.
EXIM_ROOT = Path(os.environ.get("SMTPPROTO_EXIM_ROOT", "/opt/smtpproto-exim"))

# -- Exim 4 -------------------------------------------------------------------------------

_EXIM_USER = "Debian-exim"

_EXIM_CONFIG = """\
# Private Exim configuration written by tests/interop/peers.py; nothing here is global.
exim_path = {exim}
primary_hostname = exim.test
qualify_domain = exim.test
local_interfaces = {host}
daemon_smtp_ports = {port}
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/exim.pid
keep_environment =
# No DNS or ident look-ups on loopback; no Received: header, so the maildir holds the
# content as sent plus Return-path/Envelope-to only.
host_lookup =
rfc1413_hosts =
received_header_text =
message_size_limit = 200M
check_spool_space = 0
chunking_advertise_hosts = *
smtputf8_advertise_hosts = *
dsn_advertise_hosts = *
pipelining_advertise_hosts = *
prdr_enable = true
tls_advertise_hosts = *
tls_certificate = {cert}
tls_privatekey = {key}
{client_certificates}
acl_smtp_rcpt = acl_rcpt

begin acl

acl_rcpt:
  accept

begin routers

to_maildir:
  driver = accept
  transport = maildir_delivery

begin transports

maildir_delivery:
  driver = appendfile
  directory = {root}/maildir
  maildir_format
  create_directory
  delivery_date_add = false
  envelope_to_add = true
  return_path_add = true
  user = {user}
  group = {user}
  mode = 0644

begin authenticators

plain_server:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = {plain_condition}
  server_set_id = $auth2
  {advertise}

login_server:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = {login_condition}
  server_set_id = $auth1
  {advertise}
{external}
"""

#: ``start_exim(external=True)``: ask every client for a certificate of the test CA
#: (optional: a client without one still connects) and offer AUTH EXTERNAL (RFC 4422
#: App. A) to a verified one; the identity is the certificate's CN, and an
#: authorisation identity, when the client sends one, must be that CN.
_EXIM_CLIENT_CERTIFICATES = """tls_verify_certificates = {ca}
tls_try_verify_hosts = *"""
_EXIM_EXTERNAL = """external_server:
  driver = external
  public_name = EXTERNAL
  server_advertise_condition = ${if eq{$tls_in_certificate_verified}{1}}
  server_param2 = ${certextract{subject,CN}{$tls_in_peercert}}
  server_condition = ${if or{{eq{$auth1}{}}{eq{$auth1}{$auth2}}}}
  server_set_id = $auth2"""


def find_exim() -> Path:
    """The private Exim binary ``.ci/install-peers`` unpacked; ``PeerMissing`` if absent."""
    exim = EXIM_ROOT / "usr" / "sbin" / "exim4"
    if not os.access(exim, os.X_OK):
        raise PeerMissing(f"Exim 4 is not unpacked at {exim}; {INSTALL_HINT}")
    try:
        pwd.getpwnam(_EXIM_USER)
    except KeyError:
        raise PeerMissing(f"the {_EXIM_USER} user does not exist; {INSTALL_HINT}") from None
    if os.geteuid() != 0:
        raise PeerMissing("the private Exim daemon must be started as root (exim -C FILE -bd)")
    return exim


@dataclasses.dataclass
class EximPeer:
    """A running Exim daemon with its own spool, log and maildir under ``root``."""

    host: str
    port: int
    root: Path
    tls: TLSMaterial
    process: subprocess.Popen[bytes]

    @property
    def maildir(self) -> Path:
        return self.root / "maildir"

    def log(self) -> str:
        """Exim's main and panic logs so far (for assertion messages)."""
        parts = []
        for name in ("mainlog", "paniclog", "rejectlog"):
            path = self.root / "log" / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text('utf-8', 'replace')}")
        return "\n".join(parts)

    def messages(self) -> list[ReceivedMessage]:
        """Delivered messages (one per recipient), oldest first by maildir file name."""
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        return [_parse_maildir_file(path.read_bytes()) for path in sorted(new.iterdir())]

    def wait_for_messages(
        self, count: int, timeout: float = STARTUP_TIMEOUT
    ) -> list[ReceivedMessage]:
        """Wait until at least ``count`` deliveries are in the maildir."""
        try:
            poll(lambda: len(self.messages()) >= count, timeout, f"{count} delivery(ies) at Exim")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log()}") from None
        return self.messages()


def _parse_maildir_file(data: bytes) -> ReceivedMessage:
    """Remove the ``Return-path:`` and ``Envelope-to:`` lines Exim's transport prepends."""
    return_path, _, rest = data.partition(b"\n")
    envelope_to, _, content = rest.partition(b"\n")
    if not return_path.startswith(b"Return-path: ") or not envelope_to.startswith(b"Envelope-to: "):
        raise ValueError(f"not an Exim maildir delivery: {data[:200]!r}")
    recipients = envelope_to.removeprefix(b"Envelope-to: ").decode("utf-8", "surrogateescape")
    return ReceivedMessage(
        mail_from=return_path.removeprefix(b"Return-path: ").decode("utf-8", "surrogateescape")[
            1:-1
        ],
        rcpt_tos=tuple(address.strip() for address in recipients.split(",")),
        content=content,
    )


def _exim_credentials_check(user_variable: str, password_variable: str) -> str:
    """An Exim ``server_condition`` true when the variables hold the test account.

    ``AUTH_USER``/``AUTH_PASSWORD`` are plain ASCII letters, digits and ``-``, which need no
    quoting inside an expansion.
    """
    user, password = AUTH_USER, AUTH_PASSWORD
    for text in (user, password):
        if not text.replace("-", "").isalnum() or not text.isascii():
            raise ValueError(f"{text!r} would need quoting in an Exim expansion")
    return (
        "${if and {{eq{" + user_variable + "}{" + user + "}}"
        "{eq{" + password_variable + "}{" + password + "}}}}"
    )


@contextlib.contextmanager
def start_exim(*, auth_require_tls: bool = True, external: bool = False) -> Iterator[EximPeer]:
    """Run the private Exim 4 daemon on a free port for the duration of the ``with`` block.

    Advertises PIPELINING, CHUNKING, 8BITMIME, DSN, SMTPUTF8, PRDR, SIZE, STARTTLS (a fresh
    trustme certificate) and AUTH PLAIN/LOGIN for ``AUTH_USER``/``AUTH_PASSWORD`` (only
    after STARTTLS when ``auth_require_tls``). Every recipient is accepted and delivered
    (``-odi``: before the final 250) into one maildir. ``external``: STARTTLS asks for a
    client certificate of ``tls.ca`` (``tls.ca.issue_cert(common_name=...)`` makes one)
    and AUTH EXTERNAL is offered once one was verified; the identity is its CN (in the
    log: ``A=external_server:CN``).
    """
    exim = find_exim()
    user = pwd.getpwnam(_EXIM_USER)
    root = Path(tempfile.mkdtemp(prefix="smtpproto-exim-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        root.chmod(0o755)
        tls = make_tls_material(root / "tls")
        for sub in ("spool", "log", "maildir"):
            (root / sub).mkdir()
        for path in (root / "spool", root / "log", root / "maildir", tls.key_path):
            os.chown(path, user.pw_uid, user.pw_gid)
        tls.key_path.chmod(0o600)
        port = free_port()
        advertise = (
            "server_advertise_condition = ${if def:tls_in_cipher}" if auth_require_tls else ""
        )
        config = root / "exim.conf"
        config.write_text(
            _EXIM_CONFIG.format(
                exim=exim,
                host=HOST,
                port=port,
                root=root,
                cert=tls.cert_path,
                key=tls.key_path,
                user=_EXIM_USER,
                plain_condition=_exim_credentials_check("$auth2", "$auth3"),
                login_condition=_exim_credentials_check("$auth1", "$auth2"),
                advertise=advertise,
                client_certificates=(
                    _EXIM_CLIENT_CERTIFICATES.format(ca=tls.ca_path) if external else ""
                ),
                external=_EXIM_EXTERNAL if external else "",
            ),
            "utf-8",
        )
        # Exim refuses a configuration file that others could write.
        config.chmod(0o644)
        # -bdf: daemon in the foreground, so this process owns it; -odi: deliver at once.
        process = subprocess.Popen(
            [str(exim), "-C", str(config), "-bdf", "-odi", "-oX", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peer = EximPeer(HOST, port, root, tls, process)
        try:
            wait_for_port(port, process=process)
        except PeerFailed as exc:
            stop_process(process)
            stderr = process.stderr.read() if process.stderr else b""
            raise PeerFailed(
                f"exim did not start: {exc}; stderr: {stderr!r}\n{peer.log()}"
            ) from None
        yield peer
    finally:
        if process is not None:
            stop_process(process)
            if process.stderr is not None:
                process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)
