"""Hand-written dialogues that reach each planted flaw, and what the clean server answers.

``DIALOGUES[name]`` is a list of client writes; ``TLS`` starts the handshake (after the
220 to STARTTLS) and ``CLOSE_NOTIFY`` sends a TLS close_notify and goes on in cleartext.
``CLEAN[name]`` is a regular expression the clean server's output matches for the same
dialogue (``None``: the clean server rightly sends nothing more, e.g. it waits for a
BDAT chunk of 2 GiB). ``converse`` plays a dialogue on 127.0.0.1 with bounded waits.
"""

from __future__ import annotations

import re
import socket
import ssl
import time

from .flaws import SMUGGLE_SEQUENCES

TLS = "TLS"
CLOSE_NOTIFY = "CLOSE_NOTIFY"
Write = bytes | str

E = b"EHLO client.test\r\n"
M = b"MAIL FROM:<a@client.test>\r\n"
R = b"RCPT TO:<b@client.test>\r\n"
D = b"DATA\r\n"
STARTTLS = (E, b"STARTTLS\r\n", TLS, E)
AUTH_OK = b"AUTH PLAIN AGZ1enp1c2VyAGZ1enpwYXNz\r\n"  # \0fuzzuser\0fuzzpass
AUTH_BAD = b"AUTH PLAIN AGZ1enp1c2VyAHdyb25n\r\n"  # \0fuzzuser\0wrong


def _rcpts(count: int) -> bytes:
    return b"".join(b"RCPT TO:<r%d@client.test>\r\n" % n for n in range(count))


_LONG_DOMAIN = b".".join([b"d" * 60] * 4) + b".test"  # 249 octets, valid
_MANY_LABELS = b".".join([b"l"] * 40) + b".test"

DIALOGUES: dict[str, list[Write]] = {
    **{
        name: [E, M, R, D, b"hello" + seq + b"NOOP\r\n\r\n.\r\n"]
        for name, seq in SMUGGLE_SEQUENCES.items()
    },
    "starttls-injection": [E, b"STARTTLS\r\nNOOP\r\n", TLS, b"QUIT\r\n"],
    "cleartext-after-close-notify": [*STARTTLS, CLOSE_NOTIFY, b"NOOP\r\n"],
    "starttls-state-kept": [E, b"STARTTLS\r\n", TLS, M],
    "crash-starttls-twice": [*STARTTLS, b"STARTTLS\r\n"],
    "rcpt-before-mail": [E, R],
    "data-without-rcpt": [E, M, D],
    "data-without-mail": [E, D],
    "nested-mail": [E, M, M],
    "rset-keeps-envelope": [E, M, b"RSET\r\n", R],
    "ehlo-keeps-envelope": [E, M, E, R],
    "data-after-bdat": [E, M, R, b"BDAT 3\r\nabc", D],
    "bdat-without-rcpt": [E, M, b"BDAT 3 LAST\r\nabc"],
    "auth-twice": [*STARTTLS, AUTH_OK, AUTH_OK],
    "auth-before-ehlo": [AUTH_OK],
    "auth-unadvertised": [E, AUTH_OK],
    "auth-bypass-after-failure": [*STARTTLS, AUTH_BAD, M],
    "shell-local-part": [E, M, b"RCPT TO:<|touch /tmp/pwned>\r\n"],
    "unknown-param": [E, b"MAIL FROM:<a@client.test> XFOO=BAR\r\n"],
    "size-limit-ignored": [E, b"MAIL FROM:<a@client.test> SIZE=22020096\r\n"],
    "ehlo-no-domain": [b"EHLO\r\n"],
    "8bit-address": [E, "MAIL FROM:<é@client.test>\r\n".encode()],
    "pipeline-drop-reply": [E, M + R + b"RCPT TO:<c@client.test>\r\nRSET\r\n"],
    "unsolicited-reply": [E, M, b"RSET\r\n"],
    "bad-multiline-after-tls": list(STARTTLS),
    "reply-code-mismatch": [b"HELP\r\n"],
    "bare-lf-reply": [b"VRFY someone\r\n"],
    "crash-long-line": [b"NOOP " + b"x" * 3100 + b"\r\n"],
    "crash-many-rcpt": [E, M, _rcpts(41)],
    "crash-nul": [b"NOOP\x00\r\n"],
    "crash-long-domain": [E, b"MAIL FROM:<a@" + _LONG_DOMAIN + b">\r\n"],
    "crash-many-labels": [E, b"MAIL FROM:<a@" + _MANY_LABELS + b">\r\n"],
    "crash-ipv6-literal": [E, b"MAIL FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>\r\n"],
    "crash-bad-ipv4-literal": [E, b"MAIL FROM:<a@[300.1.1.1]>\r\n"],
    "crash-format-string": [b"NOOP %n%n%n\r\n"],
    "crash-auth-base64": [*STARTTLS, b"AUTH PLAIN !!!!\r\n"],
    "crash-bdat-huge": [E, M, R, b"BDAT 2147483648\r\n"],
    "crash-bdat-negative": [E, M, R, b"BDAT -5\r\n"],
    "crash-size-huge": [E, b"MAIL FROM:<a@client.test> SIZE=2147483648\r\n"],
    "crash-pipeline-burst": [b"NOOP\r\n" * 61 + b"QUIT\r\n"],
    "crash-long-local-part": [E, b"MAIL FROM:<" + b"a" * 201 + b"@client.test>\r\n"],
    "crash-source-route": [E, b"MAIL FROM:<@relay.test:a@client.test>\r\n"],
    "crash-quoted-local-part": [E, b'MAIL FROM:<"a b"@client.test>\r\n'],
    "crash-error-limit": [b"XYZZY\r\n" * 26],
    "crash-empty-message": [E, M, R, D, b".\r\n"],
    "crash-long-data-line": [E, M, R, D, b"x" * 6100 + b"\r\n.\r\n"],
    "crash-8bit-helo": [b"EHLO \xff.test\r\n"],
    "crash-long-param": [E, b"MAIL FROM:<a@client.test> AUTH=" + b"x" * 401 + b"\r\n"],
    "crash-starttls-in-transaction": [E, M, b"STARTTLS\r\n"],
    "hang-verb": [b"HELP x\r\n", b"VRFY x\r\n", b"EXPN x\r\n"],
    "hang-long-ehlo": [b"EHLO " + _LONG_DOMAIN + b"\r\n"],
    "quadratic-rcpt": [E, M, _rcpts(12)],
    "quadratic-line": [b"NOOP " + b"x" * 300 + b"\r\n"],
}

_MESSAGE = rb"(250 2\.0\.0 Message|550 5\.6\.0)"
CLEAN: dict[str, str | bytes | None] = {
    **{name: _MESSAGE for name in SMUGGLE_SEQUENCES},
    "starttls-injection": rb"221 2\.0\.0",
    "cleartext-after-close-notify": None,
    "starttls-state-kept": rb"503 5\.5\.1 Send HELO",
    "crash-starttls-twice": rb"503 5\.5\.1 TLS already",
    "rcpt-before-mail": rb"503 5\.5\.1 Need MAIL",
    "data-without-rcpt": rb"503 5\.5\.1 Need RCPT",
    "data-without-mail": rb"503 5\.5\.1 Need MAIL",
    "nested-mail": rb"503 5\.5\.1 Nested",
    "rset-keeps-envelope": rb"503 5\.5\.1 Need MAIL",
    "ehlo-keeps-envelope": rb"503 5\.5\.1 Need MAIL",
    "data-after-bdat": rb"503 5\.5\.1 DATA after BDAT",
    "bdat-without-rcpt": rb"503 5\.5\.1 Need RCPT",
    "auth-twice": rb"503 5\.5\.1 Already",
    "auth-before-ehlo": rb"503 5\.5\.1 Send EHLO",
    "auth-unadvertised": rb"538 5\.7\.11",
    "auth-bypass-after-failure": rb"535 5\.7\.8[^\n]*\n530 5\.7\.0",
    "shell-local-part": rb"501 5\.1\.3 Address needs a domain",
    "unknown-param": rb"555 5\.5\.4",
    "size-limit-ignored": rb"552 5\.3\.4",
    "ehlo-no-domain": rb"501 5\.5\.4",
    "8bit-address": rb"553 5\.6\.7",
    "pipeline-drop-reply": rb"(250 2\.1\.5[^\n]*\n){2}250 2\.0\.0 OK",
    "unsolicited-reply": rb"2\.1\.0 Sender OK\r\n250 2\.0\.0 OK\r\n\Z",
    "bad-multiline-after-tls": rb"250 AUTH PLAIN LOGIN\r\n\Z",
    "reply-code-mismatch": rb"214 NOOP",
    "bare-lf-reply": rb"252 2\.5\.2 Cannot VRFY user, but will accept message\r\n",
    "crash-long-line": rb"500 5\.5\.2 Line too long",
    "crash-many-rcpt": rb"(250 2\.1\.5[^\n]*\n){41}",
    "crash-nul": rb"500 5\.5\.2 NUL",
    "crash-long-domain": rb"250 2\.1\.0",
    "crash-many-labels": rb"250 2\.1\.0",
    "crash-ipv6-literal": rb"501 5\.1\.3 Bad IPv6",
    "crash-bad-ipv4-literal": rb"501 5\.1\.3 Bad IPv4",
    "crash-format-string": rb"250 2\.0\.0 OK",
    "crash-auth-base64": rb"501 5\.5\.2 Invalid base64",
    "crash-bdat-huge": None,
    "crash-bdat-negative": rb"501 5\.5\.4",
    "crash-size-huge": rb"552 5\.3\.4",
    "crash-pipeline-burst": rb"(250 2\.0\.0 OK\r\n){61}221 2\.0\.0",
    "crash-long-local-part": rb"501 5\.1\.3 Local part too long",
    "crash-source-route": rb"250 2\.1\.0",
    "crash-quoted-local-part": rb"250 2\.1\.0",
    "crash-error-limit": rb"421 4\.7\.0",
    "crash-empty-message": rb"250 2\.0\.0 Message",
    "crash-long-data-line": rb"250 2\.0\.0 Message",
    "crash-8bit-helo": rb"501 5\.5\.2",
    "crash-long-param": rb"250 2\.1\.0",
    "crash-starttls-in-transaction": rb"503 5\.5\.1 STARTTLS",
    "hang-verb": rb"214.*252.*502",
    "hang-long-ehlo": rb"250-flawed\.test",
    "quadratic-rcpt": rb"(250 2\.1\.5[^\n]*\n){12}",
    "quadratic-line": rb"250 2\.0\.0 OK",
}


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _read_until(sock: socket.socket, got: bytes, pattern: bytes, deadline: float) -> bytes:
    """Read until ``pattern`` matches the whole output, EOF or ``deadline``."""
    while re.search(pattern, got, re.DOTALL) is None and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got


def converse(port: int, writes: list[Write], until: str | bytes | None, wait: float = 5.0) -> bytes:
    """Play ``writes`` on a fresh connection; return everything the server sent.

    After each write, wait (at most 1 s) for an answer; after the last one, read until
    ``until`` matches the whole output (or ``wait`` seconds pass); ``until=None``: stop.
    """
    deadline = time.monotonic() + wait
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    try:
        got = _read_until(sock, b"", rb"^220 [^\n]*\n", deadline)
        for write in writes:
            if write == TLS:
                got = _read_until(sock, got, rb"220 2\.0\.0 Ready[^\n]*\n", deadline)
                sock.settimeout(wait)
                sock = _client_context().wrap_socket(sock)
            elif write == CLOSE_NOTIFY:
                assert isinstance(sock, ssl.SSLSocket)
                try:
                    sock = sock.unwrap()
                except (OSError, ssl.SSLError):
                    return got  # the server ended the connection: the correct answer
            else:
                assert isinstance(write, bytes)
                sock.sendall(write)
                # Wait for the answer (bounded), so the next write is a segment of its own.
                more = re.escape(got) + rb".*\n\Z"
                got = _read_until(sock, got, more, min(deadline, time.monotonic() + 1.0))
        if until is None:
            return got
        pattern = until.encode() if isinstance(until, str) else until
        return _read_until(sock, got, pattern, deadline)
    finally:
        sock.close()
