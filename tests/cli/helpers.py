"""Run ``python -m smtpproto`` as a user would: a subprocess with a timeout.

Every run is bounded by ``timeout`` seconds (a hung CLI fails the test instead of
hanging the suite). ``assert_clean_failure`` checks the promise of the command line:
a one-line error on stderr, the documented exit code, never a traceback.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

#: Generous bound for one CLI run (the built-in demo session takes well under a second).
RUN_TIMEOUT = 60.0


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: ours, UTF-8 I/O, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("SMTPPROTO_SERVE_AUTH", None)
    if extra:
        env.update(extra)
    return env


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smtpproto *args`` and capture its text output."""
    return subprocess.run(
        [sys.executable, "-m", "smtpproto", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=cli_env(env),
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    """Exit ``code``, no traceback, one error line on stderr containing ``fragments``."""
    detail = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == code, detail
    assert "Traceback" not in result.stderr, detail
    assert "Traceback" not in result.stdout, detail
    errors = [line for line in result.stderr.splitlines() if line.startswith("smtpproto")]
    assert len(errors) == 1, detail
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), detail


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """``smtpproto serve`` in a subprocess; its stdout is collected by a reader thread.

    ``wait_for(text)`` blocks (bounded) until a line containing ``text`` appeared.
    ``stop()`` sends SIGINT (Ctrl-C) and returns the exit code; the process is killed
    if it does not stop within the timeout, which fails the caller's assertion.
    """

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "smtpproto", "serve", "--port", str(self.port), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=cli_env(env),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = RUN_TIMEOUT) -> str:
        """The first line (from now or already seen) containing ``text``."""
        for line in self.seen:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {text!r}; got:\n" + "\n".join(self.seen))
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line

    def output(self) -> str:
        """Everything printed so far."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return "\n".join(self.seen)

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (or ``sig``); the exit code (the process is killed after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
            raise AssertionError(f"serve did not stop on {signal.Signals(sig).name}") from None
        self._reader.join(timeout)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        self.process.stderr.close()
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code

    def __enter__(self) -> ServeProcess:
        try:
            self.wait_for("press Ctrl-C")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.stop()


class OneLineServer:
    """A TCP server thread on 127.0.0.1 that answers every connection with ``reply``
    (for example an HTTP error: a peer that does not speak SMTP) and then closes.

    Bounded: the listening socket has a timeout and the thread stops at ``close``.
    """

    def __init__(self, reply: bytes, *, linger: float = 0.5) -> None:
        self.reply = reply
        self.linger = linger
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5.0)
                try:
                    conn.sendall(self.reply)
                    time.sleep(self.linger)  # let the client read before the close
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()

    def __enter__(self) -> OneLineServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ScriptedSMTPServer:
    """A minimal line-based SMTP peer on 127.0.0.1 for refusals the built-in server
    never gives: ``replies`` maps a verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"."``
    for the end of the content) to the reply line(s) to send; every other command gets
    ``250 ok``; a list of replies is used one per command, in order. No PIPELINING,
    CHUNKING or STARTTLS is advertised. ``"."`` mapped to
    ``b""`` closes the connection instead of answering (delivery status unknown).
    Serves one connection; every socket operation has a timeout.
    """

    def __init__(self, replies: Mapping[str, bytes | list[bytes]]) -> None:
        self.replies = dict(replies)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(RUN_TIMEOUT)
        self.port: int = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(RUN_TIMEOUT)
            reader = conn.makefile("rb")
            try:
                self._session(conn, reader)
            except OSError:
                pass
            finally:
                reader.close()

    def _session(self, conn: socket.socket, reader: Any) -> None:
        conn.sendall(b"220 scripted ESMTP\r\n")
        in_data = False
        for raw in reader:
            self.received.append(raw)
            if in_data:
                if raw != b".\r\n":
                    continue
                in_data = False
                verb = "."
            else:
                verb = raw.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode()
            planned = self.replies.get(verb)
            reply = planned.pop(0) if isinstance(planned, list) and planned else planned
            if reply == b"":
                return
            if not isinstance(reply, bytes):
                reply = {
                    "EHLO": b"250-scripted\r\n250 8BITMIME\r\n",
                    "DATA": b"354 go ahead\r\n",
                    "QUIT": b"221 bye\r\n",
                }.get(verb, b"250 ok\r\n")
            conn.sendall(reply)
            if verb == "DATA" and reply.startswith(b"354"):
                in_data = True
            if verb == "QUIT":
                return

    def close(self) -> None:
        self.sock.close()
        self._thread.join(5.0)

    def __enter__(self) -> ScriptedSMTPServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FakeDNSServer:
    """A DNS server on 127.0.0.1 (UDP) answering from ``records``: ``{(name, type):
    [rdata text, ...]}`` such as ``{("example.test", "MX"): ["10 mx.example.test."]}``.
    A name absent from every key is NXDOMAIN; a known name without the asked type gets
    an empty answer (NODATA). Built with dnspython; one thread, bounded by timeouts.
    """

    def __init__(self, records: Mapping[tuple[str, str], list[str]]) -> None:
        self.records = {
            (name.lower().rstrip("."), kind): list(v) for (name, kind), v in records.items()
        }
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.questions: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, wire: bytes) -> bytes:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, kind))
        if not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, kind) in self.records:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, "IN", kind, self.records[name, kind])
            )
        return response.to_wire()  # type: ignore[no-any-return]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            try:
                self.sock.sendto(self._answer(wire), peer)
            except Exception:  # a malformed query: no answer, as a real server may do
                continue

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.sock.close()

    def __enter__(self) -> FakeDNSServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
