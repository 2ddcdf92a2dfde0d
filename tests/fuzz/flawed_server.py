"""A strict SMTP server with planted flaws, switchable one by one, for the fuzzer's tests.

Run it on its own::

    python tests/fuzz/flawed_server.py --flaw smuggle-lf --port 0 --log /tmp/flaws.log
    python tests/fuzz/flawed_server.py --list

It prints ``THRESHOLDS {...}`` and then ``LISTENING <port>`` on stdout. ``servers.py``
starts it as a subprocess (a crash flaw really ends the process).

With no flaw it is a correct, strict RFC 5321 MTA, so it catches a fuzzer's false
positives: CRLF-terminated command lines of at most 512 octets (RFC 5321 §4.5.3.1.4,
longer ones get 500 and are discarded); HELO/EHLO required before MAIL, STARTTLS and
AUTH; the RFC 5321 §4.1.2 path grammar (source routes accepted and ignored, address
literals checked, a domain required except for ``<postmaster>``); ESMTP PIPELINING
(replies are sent when the input runs dry, RFC 2920 §3.1), SIZE (RFC 1870), 8BITMIME,
ENHANCEDSTATUSCODES, CHUNKING (RFC 3030), STARTTLS with a self-signed certificate
(RFC 3207: text pipelined behind STARTTLS is discarded, all state is reset after the
handshake, a close_notify ends the connection), AUTH PLAIN and LOGIN offered only under
TLS (RFC 4954: 503 twice or in a transaction, 501 for bad base64 or ``*``, 535 for bad
credentials); with ``--require-auth`` MAIL needs AUTH (530). Limits: a random number of
5xx replies per connection, then ``421 4.7.0`` and close; a random recipient limit
(452); a random SIZE; an idle timeout (``421 4.4.2``). Bare CR or LF in message data is
kept or refused with 550 after the real end of data, chosen per run. Every threshold
and policy choice is drawn from ``--seed`` (``flaws.thresholds``) and printed.

The planted flaws and the rule each breaks are listed in ``flaws.py``. When a flaw's
trigger is reached the server writes ``FLAW-TRIGGERED <name>`` to the log file (and to
stderr) before misbehaving.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
import os
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__:
    from .flaws import FLAWS, SMUGGLE_SEQUENCES, Thresholds, catalogue_markdown, thresholds
else:  # run as a script: python tests/fuzz/flawed_server.py
    from flaws import (  # type: ignore[no-redef]
        FLAWS,
        SMUGGLE_SEQUENCES,
        Thresholds,
        catalogue_markdown,
        thresholds,
    )

HOSTNAME = "flawed.test"
AUTH_USER = "fuzzuser"
AUTH_PASSWORD = "fuzzpass"
IDLE_TIMEOUT = 30.0
COMMAND_LIMIT = 512  # RFC 5321 §4.5.3.1.4, CRLF included
READ_LIMIT = 8192  # an unterminated line is discarded beyond this
SHELL_METACHARACTERS = frozenset("|;&$`<>(){}'\"\\ *!")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"\Z')
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")
_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\Z")


class Closed(Exception):
    """The session ends (EOF, QUIT, 421, TLS failure)."""


class Reject(Exception):
    """A command's argument is refused with this reply."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclasses.dataclass
class Config:
    """One server: the flaws switched on, the drawn thresholds, the TLS context, the log."""

    flaws: frozenset[str]
    limits: Thresholds
    tls: ssl.SSLContext
    log: Path | None
    require_auth: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def note(self, line: str) -> None:
        """Append ``line`` to the log file and stderr."""
        with self.lock:
            print(line, file=sys.stderr, flush=True)
            if self.log is not None:
                with self.log.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")


def make_tls_context(folder: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate for localhost (trustme or openssl)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        import trustme
    except ImportError:
        cert, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
        )
        context.load_cert_chain(cert, key)
    else:
        trustme.CA().issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def check_ipv6(text: str) -> bool:
    """RFC 5321 §4.1.3 IPv6-addr: 8 groups, or fewer with one ``::``."""
    if text.count("::") > 1 or ":::" in text:
        return False
    groups = text.split(":")
    if "." in groups[-1]:
        if _IPV4.match(groups[-1]) is None:
            return False
        groups = [*groups[:-1], "0", "0"]
    hexes = [g for g in groups if g]
    if any(len(g) > 4 or not all(c in "0123456789abcdefABCDEF" for c in g) for g in hexes):
        return False
    return len(groups) == 8 if "::" not in text else len(hexes) <= 7


class Session:
    """One SMTP connection, read and answered in a blocking loop on its own thread."""

    def __init__(self, sock: socket.socket, config: Config) -> None:
        self.sock = sock
        self.config = config
        self.limits = config.limits
        self.buf = b""
        self.out: list[bytes] = []
        self.tls = False
        self.cleartext_after_tls = False
        self.errors = 0
        self.batch = 0
        self.helo: str | None = None
        self.stale = False  # the pre-TLS state kept by the starttls-state-kept flaw
        self.authenticated = False
        self.auth_failed = False
        self.reset()

    # -- flaws --------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self.config.flaws

    def trigger(self, name: str) -> None:
        self.config.note(f"FLAW-TRIGGERED {name}")

    def crash(self, name: str) -> None:
        """Log and end the whole process abruptly, without a reply."""
        self.trigger(name)
        os._exit(70)

    def hang(self, name: str) -> None:
        """Log, then read and discard until the client goes away; never answer again."""
        self.trigger(name)
        self.flush()
        self.sock.settimeout(None)
        while self.sock.recv(65536):
            pass
        raise Closed

    # -- transport ----------------------------------------------------------------------

    def reply(self, code: int, *lines: str, eol: str = "\r\n") -> None:
        texts = list(lines) or [""]
        for index, text in enumerate(texts):
            sep = " " if index == len(texts) - 1 else "-"
            self.out.append(f"{code}{sep}{text}{eol}".encode())
        if code >= 500:
            self.errors += 1

    def flush(self) -> None:
        if self.out:
            self.sock.sendall(b"".join(self.out))
            self.out.clear()
        self.batch = 0

    def recv(self) -> bytes:
        self.flush()
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            self.reply(421, "4.4.2 flawed.test Idle timeout, closing connection")
            self.flush()
            raise Closed from None
        except (OSError, ssl.SSLError):
            raise Closed from None
        if not data and self.tls and self.has("cleartext-after-close-notify"):
            try:
                self.sock = self.sock.unwrap()  # type: ignore[attr-defined]
            except (OSError, ssl.SSLError):
                raise Closed from None
            self.tls = False
            self.cleartext_after_tls = True
            return self.recv()
        if not data:
            raise Closed
        return data

    def read_line(self) -> tuple[bytes, int]:
        """The next line (with its terminator) and its full length (overlong lines cut)."""
        discarded = 0
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line, self.buf = self.buf[: end + 1], self.buf[end + 1 :]
                return line, discarded + len(line)
            if len(self.buf) > READ_LIMIT:
                discarded += len(self.buf)
                self.buf = b""
            self.buf += self.recv()

    def read_exact(self, size: int) -> None:
        """Read and drop ``size`` octets (a BDAT chunk)."""
        while len(self.buf) < size:
            size -= len(self.buf)
            self.buf = self.recv()
        self.buf = self.buf[size:]

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        self.sock.settimeout(IDLE_TIMEOUT)
        try:
            self.reply(220, f"{HOSTNAME} ESMTP flawed server ready")
            while True:
                line, length = self.read_line()
                if self.buf:
                    self.batch += 1
                    if self.batch > self.limits.pipeline_burst and self.has("crash-pipeline-burst"):
                        self.crash("crash-pipeline-burst")
                self.command(line, length)
                if self.errors >= self.limits.error_limit:
                    if self.has("crash-error-limit"):
                        self.crash("crash-error-limit")
                    self.reply(421, "4.7.0 flawed.test Too many errors, closing connection")
                    raise Closed
        except Closed:
            pass
        except (OSError, ssl.SSLError):
            return
        try:
            self.flush()
        except (OSError, ssl.SSLError):
            return

    def reset(self) -> None:
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.bdat_used = False

    def command(self, raw: bytes, length: int) -> None:
        if self.has("quadratic-line"):
            if length > 200:
                self.trigger("quadratic-line")
            time.sleep(min(length * length * 1e-7, 20.0))
        if length > self.limits.long_line and self.has("crash-long-line"):
            self.crash("crash-long-line")
        if length > COMMAND_LIMIT:
            self.reply(500, "5.5.2 Line too long")
            return
        if self.cleartext_after_tls:
            self.trigger("cleartext-after-close-notify")
        if b"\x00" in raw:
            if self.has("crash-nul"):
                self.crash("crash-nul")
            self.reply(500, "5.5.2 NUL in command")
            return
        if b"%n" in raw and self.has("crash-format-string"):
            self.crash("crash-format-string")
        if not raw.endswith(b"\r\n") or b"\r" in raw[:-2]:
            self.reply(500, "5.5.2 Command lines end with CRLF, bare CR or LF refused")
            return
        text = raw[:-2].decode("latin-1")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if not text.isascii() and verb not in ("MAIL", "RCPT", "EHLO", "HELO"):
            self.reply(500, "5.5.2 8-bit octets in a command")
            return
        if verb == self.limits.hang_verb and self.has("hang-verb"):
            self.hang("hang-verb")
        handler = getattr(self, f"do_{verb.lower()}", None) if verb.isalpha() else None
        if handler is None:
            self.reply(500, "5.5.1 Command unrecognized")
            return
        try:
            handler(arg)
        except Reject as reject:
            self.reply(reject.code, reject.text)

    # -- syntax helpers -----------------------------------------------------------------

    def domain(self, text: str, *, literal: bool = True) -> str:
        """Check a Domain or address-literal (RFC 5321 §4.1.2/§4.1.3)."""
        if len(text) > self.limits.long_domain and self.has("crash-long-domain"):
            self.crash("crash-long-domain")
        if text.startswith("[") and text.endswith("]") and literal:
            inner = text[1:-1]
            if inner[:5].upper() == "IPV6:":
                if (":::" in inner[5:] or inner.count(":") > 8) and self.has("crash-ipv6-literal"):
                    self.crash("crash-ipv6-literal")
                if not check_ipv6(inner[5:]):
                    raise Reject(501, "5.1.3 Bad IPv6 address literal")
                return text
            match = _IPV4.match(inner)
            if match is None:
                raise Reject(501, "5.1.3 Bad address literal")
            if any(int(octet) > 255 for octet in match.groups()):
                if self.has("crash-bad-ipv4-literal"):
                    self.crash("crash-bad-ipv4-literal")
                raise Reject(501, "5.1.3 Bad IPv4 address literal")
            return text
        labels = text.split(".")
        if len(labels) > self.limits.many_labels and self.has("crash-many-labels"):
            self.crash("crash-many-labels")
        if len(text) > 255 or not all(_LABEL.match(label) for label in labels):
            raise Reject(501, "5.1.3 Bad domain syntax")
        return text

    def path(self, text: str, *, null_ok: bool) -> tuple[str, str]:
        """Split ``<path> params``; check the path (RFC 5321 §4.1.2); return both parts."""
        text = text.lstrip(" ")
        if not text.startswith("<") or ">" not in text:
            raise Reject(501, "5.5.4 Syntax: path must be in angle brackets")
        end = text.index(">") if not text.startswith('<"') else text.find(">", text.rfind('"'))
        address, params = text[1:end], text[end + 1 :]
        if params and not params.startswith(" "):
            raise Reject(501, "5.5.4 Syntax error after the path")
        if address == "" and null_ok:
            return "", params.strip(" ")
        if not address.isascii():
            if self.has("8bit-address"):
                self.trigger("8bit-address")
                return address, params.strip(" ")
            raise Reject(553, "5.6.7 8-bit address without SMTPUTF8")
        if address.startswith("@"):
            if self.has("crash-source-route"):
                self.crash("crash-source-route")
            route, colon, address = address.partition(":")
            if not colon:
                raise Reject(501, "5.1.3 Bad source route")
            for hop in route.split(","):
                if not hop.startswith("@"):
                    raise Reject(501, "5.1.3 Bad source route")
                self.domain(hop[1:], literal=True)
        local, at, domain = address.rpartition("@")
        if not at:
            if not null_ok and address.lower() == "postmaster":
                return address, params.strip(" ")
            if self.has("shell-local-part") and SHELL_METACHARACTERS.intersection(address):
                self.trigger("shell-local-part")
                return address, params.strip(" ")
            raise Reject(501, "5.1.3 Address needs a domain")
        if len(local) > self.limits.long_local and self.has("crash-long-local-part"):
            self.crash("crash-long-local-part")
        if local.startswith('"') and self.has("crash-quoted-local-part"):
            self.crash("crash-quoted-local-part")
        if not (_DOT_STRING.match(local) or _QUOTED.match(local)):
            raise Reject(501, "5.1.3 Bad local part syntax")
        if len(local) > 64:
            raise Reject(501, "5.1.3 Local part too long")
        self.domain(domain)
        return address, params.strip(" ")

    def params(self, text: str, known: frozenset[str]) -> dict[str, str]:
        """Parse ``esmtp-param *(SP esmtp-param)``; 555 for an unknown keyword."""
        result: dict[str, str] = {}
        for item in text.split(" ") if text else []:
            keyword, eq, value = item.partition("=")
            if len(value) > self.limits.long_param and self.has("crash-long-param"):
                self.crash("crash-long-param")
            if not _KEYWORD.match(keyword) or (eq and not _VALUE.match(value)):
                raise Reject(501, "5.5.4 Bad ESMTP parameter syntax")
            if keyword.upper() not in known:
                if self.has("unknown-param"):
                    self.trigger("unknown-param")
                    continue
                raise Reject(555, f"5.5.4 Unsupported parameter {keyword.upper()}")
            if keyword.upper() in result:
                raise Reject(501, "5.5.4 Duplicate parameter")
            result[keyword.upper()] = value
        return result

    # -- commands -----------------------------------------------------------------------

    def greet(self, arg: str) -> str:
        if not arg.isascii():
            if self.has("crash-8bit-helo"):
                self.crash("crash-8bit-helo")
            raise Reject(501, "5.5.2 8-bit octets in the domain")
        if len(arg) > self.limits.long_ehlo and self.has("hang-long-ehlo"):
            self.hang("hang-long-ehlo")
        if not arg and self.has("ehlo-no-domain"):
            self.trigger("ehlo-no-domain")
            return ""
        if not arg or " " in arg:
            raise Reject(501, "5.5.4 Syntax: EHLO domain or address literal")
        self.domain(arg)
        self.stale = False
        return arg

    def do_helo(self, arg: str) -> None:
        self.helo = self.greet(arg)
        if self.sender is not None and self.has("ehlo-keeps-envelope"):
            self.trigger("ehlo-keeps-envelope")
        else:
            self.reset()
        self.reply(250, f"{HOSTNAME} Hello {self.helo}")

    def do_ehlo(self, arg: str) -> None:
        self.helo = self.greet(arg)
        if self.sender is not None and self.has("ehlo-keeps-envelope"):
            self.trigger("ehlo-keeps-envelope")
        else:
            self.reset()
        lines = [f"{HOSTNAME} Hello {self.helo}", "PIPELINING", f"SIZE {self.limits.max_size}"]
        lines += ["8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"]
        lines.append("AUTH PLAIN LOGIN" if self.tls else "STARTTLS")
        if self.tls and self.has("bad-multiline-after-tls"):
            self.trigger("bad-multiline-after-tls")
            self.out.extend(f"250-{line}\r\n".encode() for line in lines)
            return
        self.reply(250, *lines)

    def do_starttls(self, arg: str) -> None:
        if self.tls and self.has("crash-starttls-twice"):
            self.crash("crash-starttls-twice")
        if arg:
            raise Reject(501, "5.5.4 Syntax: STARTTLS")
        if self.tls:
            raise Reject(503, "5.5.1 TLS already active")
        if self.helo is None:
            raise Reject(503, "5.5.1 Send EHLO first")
        if self.sender is not None:
            if self.has("crash-starttls-in-transaction"):
                self.crash("crash-starttls-in-transaction")
            raise Reject(503, "5.5.1 STARTTLS not allowed in a mail transaction")
        self.reply(220, "2.0.0 Ready to start TLS")
        pending, self.buf = self.buf, b""
        self.flush()
        try:
            self.sock = self.config.tls.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError):
            raise Closed from None
        self.tls = True
        if pending and self.has("starttls-injection"):
            self.trigger("starttls-injection")
            self.buf = pending
        if self.has("starttls-state-kept"):
            self.stale = True  # logged when the old state is used (need_helo, AUTH)
            return
        self.helo = None
        self.authenticated = False
        self.auth_failed = False
        self.reset()

    def need_helo(self) -> None:
        if self.helo is None:
            raise Reject(503, "5.5.1 Send HELO/EHLO first")
        if self.stale:
            self.trigger("starttls-state-kept")

    def do_mail(self, arg: str) -> None:
        self.need_helo()
        if not arg.upper().startswith("FROM:"):
            raise Reject(501, "5.5.4 Syntax: MAIL FROM:<address>")
        if self.sender is not None:
            if not self.has("nested-mail"):
                raise Reject(503, "5.5.1 Nested MAIL command")
            self.trigger("nested-mail")
        if self.config.require_auth and not self.authenticated:
            if not (self.auth_failed and self.has("auth-bypass-after-failure")):
                raise Reject(530, "5.7.0 Authentication required")
            self.trigger("auth-bypass-after-failure")
        address, rest = self.path(arg[5:], null_ok=True)
        params = self.params(rest, frozenset({"SIZE", "BODY", "AUTH"}))
        if "BODY" in params and params["BODY"].upper() not in ("7BIT", "8BITMIME"):
            raise Reject(501, "5.5.4 BODY must be 7BIT or 8BITMIME")
        if "SIZE" in params:
            size = params["SIZE"]
            if not size.isdigit() or len(size) > 20:
                raise Reject(501, "5.5.4 Bad SIZE value")
            if int(size) >= 2**31 and self.has("crash-size-huge"):
                self.crash("crash-size-huge")
            if int(size) > self.limits.max_size:
                if not self.has("size-limit-ignored"):
                    raise Reject(552, "5.3.4 Message size exceeds fixed limit")
                self.trigger("size-limit-ignored")
        self.reset()
        self.sender = address
        self.reply(250, "2.1.0 Sender OK")

    def do_rcpt(self, arg: str) -> None:
        self.need_helo()
        if not arg.upper().startswith("TO:"):
            raise Reject(501, "5.5.4 Syntax: RCPT TO:<address>")
        if self.sender is None:
            if not self.has("rcpt-before-mail"):
                raise Reject(503, "5.5.1 Need MAIL before RCPT")
            self.trigger("rcpt-before-mail")
        address, rest = self.path(arg[3:], null_ok=False)
        self.params(rest, frozenset())
        if len(self.recipients) >= self.limits.many_rcpt and self.has("crash-many-rcpt"):
            self.crash("crash-many-rcpt")
        if len(self.recipients) >= self.limits.max_rcpt:
            raise Reject(452, "4.5.3 Too many recipients")
        if self.has("quadratic-rcpt"):
            if len(self.recipients) > 10:
                self.trigger("quadratic-rcpt")
            time.sleep(min(len(self.recipients) * 0.002, 2.0))
        self.recipients.append(address)
        if self.batch >= 1 and len(self.recipients) == 2 and self.has("pipeline-drop-reply"):
            self.trigger("pipeline-drop-reply")
            return
        self.reply(250, "2.1.5 Recipient OK")

    def transaction_ready(self, flaw_without_rcpt: str) -> None:
        self.need_helo()
        if self.sender is None and not self.recipients:
            if not self.has("data-without-mail"):
                raise Reject(503, "5.5.1 Need MAIL and RCPT first")
            self.trigger("data-without-mail")
        elif not self.recipients:
            if not self.has(flaw_without_rcpt):
                raise Reject(503, "5.5.1 Need RCPT first")
            self.trigger(flaw_without_rcpt)

    def do_data(self, arg: str) -> None:
        if arg:
            raise Reject(501, "5.5.4 Syntax: DATA")
        if self.bdat_used:
            if not self.has("data-after-bdat"):
                raise Reject(503, "5.5.1 DATA after BDAT")
            self.trigger("data-after-bdat")
        self.transaction_ready("data-without-rcpt")
        self.reply(354, "End data with <CR><LF>.<CR><LF>")
        content = self.read_data()
        self.message_done(content)

    def read_data(self) -> bytes:
        """Read up to the end of data; a ``smuggle-*`` flaw adds its own sequence."""
        data = b"\r\n" + self.buf
        ends = {"": b"\r\n.\r\n"}
        ends.update({n: s for n, s in SMUGGLE_SEQUENCES.items() if self.has(n)})
        while True:
            found = [(data.find(seq), name, seq) for name, seq in ends.items()]
            hits = sorted(
                (i, len(name) > 0, -len(seq), name, seq) for i, name, seq in found if i >= 0
            )
            if hits:
                index, _, _, name, seq = hits[0]
                if name:
                    self.trigger(name)
                self.buf = data[index + len(seq) :]
                return data[2 : index + 2] if index >= 0 else b""
            data += self.recv()

    def message_done(self, content: bytes) -> None:
        lines = content.split(b"\n")
        if content == b"" and self.has("crash-empty-message"):
            self.crash("crash-empty-message")
        if max(map(len, lines)) > self.limits.long_data_line and self.has("crash-long-data-line"):
            self.crash("crash-long-data-line")
        bare = re.search(rb"\r(?!\n)|(?<!\r)\n", content[:-2] if content else b"")
        recipients = len(self.recipients)
        self.reset()
        if len(content) > self.limits.max_size:
            self.reply(552, "5.3.4 Message size exceeds fixed limit")
        elif bare is not None and self.limits.reject_bare_eol:
            self.reply(550, "5.6.0 Bare CR or LF in message data refused")
        else:
            self.reply(250, f"2.0.0 Message accepted for {recipients} recipient(s)")

    def do_bdat(self, arg: str) -> None:
        size_text, _, last = arg.partition(" ")
        negative = size_text.startswith("-") and size_text[1:].isdigit()
        if negative and self.has("crash-bdat-negative"):
            self.crash("crash-bdat-negative")
        if not size_text.isdigit() or len(size_text) > 18 or last.upper() not in ("", "LAST"):
            raise Reject(501, "5.5.4 Syntax: BDAT size [LAST]")
        size = int(size_text)
        if size >= 2**31 and self.has("crash-bdat-huge"):
            self.crash("crash-bdat-huge")
        try:
            self.transaction_ready("bdat-without-rcpt")
        except Reject:
            self.read_exact(size)
            raise
        self.read_exact(size)
        self.bdat_used = True
        if last:
            recipients = len(self.recipients)
            self.reset()
            self.reply(250, f"2.0.0 Message accepted for {recipients} recipient(s)")
        else:
            self.reply(250, f"2.0.0 {size} octets received")

    def do_rset(self, arg: str) -> None:
        if arg:
            raise Reject(501, "5.5.4 Syntax: RSET")
        if self.sender is not None and self.has("unsolicited-reply"):
            self.trigger("unsolicited-reply")
            self.reply(250, "2.0.0 OK")
        if self.sender is not None and self.has("rset-keeps-envelope"):
            self.trigger("rset-keeps-envelope")  # the envelope stays: RCPT goes on
        else:
            self.reset()
        self.reply(250, "2.0.0 OK")

    def do_noop(self, arg: str) -> None:
        self.reply(250, "2.0.0 OK")

    def do_quit(self, arg: str) -> None:
        if arg:
            raise Reject(501, "5.5.4 Syntax: QUIT")
        self.reply(221, "2.0.0 Bye")
        raise Closed

    def do_help(self, arg: str) -> None:
        if self.has("reply-code-mismatch"):
            self.trigger("reply-code-mismatch")
            self.out.append(b"214-Commands: EHLO HELO MAIL RCPT DATA BDAT RSET\r\n")
            self.out.append(b"211 NOOP QUIT HELP VRFY STARTTLS AUTH\r\n")
            return
        self.reply(214, "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET", "NOOP QUIT HELP")

    def do_vrfy(self, arg: str) -> None:
        if not arg:
            raise Reject(501, "5.5.4 Syntax: VRFY address")
        if self.has("bare-lf-reply"):
            self.trigger("bare-lf-reply")
            self.reply(252, "2.5.2 Cannot VRFY user", eol="\n")
            return
        self.reply(252, "2.5.2 Cannot VRFY user, but will accept message")

    def do_expn(self, arg: str) -> None:
        raise Reject(502, "5.5.1 EXPN not implemented")

    def auth_line(self) -> bytes:
        """Read one AUTH response line; ``*`` cancels; invalid base64 is refused."""
        raw, length = self.read_line()
        if length > COMMAND_LIMIT * 24:
            raise Reject(500, "5.5.2 Line too long")
        text = raw.rstrip(b"\r\n")
        if text == b"*":
            raise Reject(501, "5.7.0 Authentication cancelled")
        return self.decode(text)

    def decode(self, text: bytes) -> bytes:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            if self.has("crash-auth-base64"):
                self.crash("crash-auth-base64")
            raise Reject(501, "5.5.2 Invalid base64") from None

    def do_auth(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if self.helo is None:
            if not self.has("auth-before-ehlo"):
                raise Reject(503, "5.5.1 Send EHLO first")
            self.trigger("auth-before-ehlo")
        elif self.stale:
            self.trigger("starttls-state-kept")
        if self.authenticated:
            if not self.has("auth-twice"):
                raise Reject(503, "5.5.1 Already authenticated")
            self.trigger("auth-twice")
        if self.sender is not None:
            raise Reject(503, "5.5.1 AUTH not allowed in a mail transaction")
        if not self.tls:
            if not self.has("auth-unadvertised"):
                raise Reject(538, "5.7.11 Encryption required for requested authentication")
            self.trigger("auth-unadvertised")
        if mechanism not in ("PLAIN", "LOGIN"):
            raise Reject(504, "5.5.4 Unrecognized authentication type")
        self.auth_failed = True  # until proven otherwise: a Reject below leaves it set
        if mechanism == "PLAIN":
            if initial == "=":
                response = b""
            elif initial:
                response = self.decode(initial.encode())
            else:
                self.reply(334, "")
                response = self.auth_line()
            parts = response.split(b"\0")
            user, password = (parts[1], parts[2]) if len(parts) == 3 else (b"", b"")
        else:
            if initial:
                user = self.decode(initial.encode())
            else:
                self.reply(334, "VXNlcm5hbWU6")
                user = self.auth_line()
            self.reply(334, "UGFzc3dvcmQ6")
            password = self.auth_line()
        if user == AUTH_USER.encode() and password == AUTH_PASSWORD.encode():
            self.authenticated = True
            self.auth_failed = False
            self.reply(235, "2.7.0 Authentication successful")
        else:
            raise Reject(535, "5.7.8 Authentication credentials invalid")


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        Session(self.request, server.config).run()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], config: Config) -> None:
        self.config = config
        super().__init__(address, _Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flaw", action="append", default=[], choices=sorted(FLAWS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--require-auth", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--markdown", action="store_true", help="print FLAWS.md and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(catalogue_markdown(), end="")
        return 0
    if args.list:
        for name, flaw in FLAWS.items():
            print(f"{name:32} {flaw.kind:10} {flaw.trigger}  [{flaw.reference}]")
        return 0
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    limits = thresholds(seed)
    with tempfile.TemporaryDirectory() as folder:
        context = make_tls_context(Path(folder))
        config = Config(frozenset(args.flaw), limits, context, args.log, args.require_auth)
        with _Server((args.host, args.port), config) as server:
            print("THRESHOLDS " + json.dumps(dataclasses.asdict(limits)), flush=True)
            print(f"FLAWS {' '.join(sorted(config.flaws)) or '-'}", flush=True)
            print(f"LISTENING {server.server_address[1]}", flush=True)
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
