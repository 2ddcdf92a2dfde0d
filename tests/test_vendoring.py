"""Vendoring works: the package copied under another name runs a whole session.

The copy lives in a temporary folder named ``vendored_smtp``; a subprocess imports it
from there, runs greeting, EHLO, a pipelined transaction with DATA, and QUIT through
its ``ClientConnection``, and checks that no module named ``smtpproto`` was loaded
(every internal import is relative). It runs with the pure-Python twins and, when the
compiled twins are built, with the copied extension modules too.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import smtpproto

SESSION = """
import sys
import vendored_smtp
from vendored_smtp.client_engine.connection import ClientConnection
from vendored_smtp.client_engine.events import (
    NEED_DATA, Content, Data, Ehlo, EndOfContent, Mail, Quit, Rcpt, TransactionResult,
)
from vendored_smtp.wire.twins import PARSER_IMPLEMENTATION

conn = ClientConnection()
server_replies = [
    b"220 mx ready\\r\\n",
    b"250-mx\\r\\n250 PIPELINING\\r\\n",
    b"250 ok\\r\\n250 ok\\r\\n354 go\\r\\n",
    b"250 queued\\r\\n",
    b"221 bye\\r\\n",
]
wire = []
events = []

def pump(data):
    conn.receive_data(data)
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(type(event).__name__)
        if type(event).__name__ == "ConnectionClosed":
            break

pump(server_replies[0])
wire.append(conn.send(Ehlo(hostname="client.example")))
pump(server_replies[1])
wire.append(conn.send(Mail(sender="a@example.org")))
wire.append(conn.send(Rcpt(recipient="b@example.org")))
wire.append(conn.send(Data()))
pump(server_replies[2])
wire.append(conn.send(Content(data=b"Subject: hi\\n\\n.body")))
wire.append(conn.send(EndOfContent()))
pump(server_replies[3])
wire.append(conn.send(Quit()))
pump(server_replies[4])
pump(b"")
assert b"".join(wire) == (
    b"EHLO client.example\\r\\nMAIL FROM:<a@example.org>\\r\\nRCPT TO:<b@example.org>\\r\\n"
    b"DATA\\r\\nSubject: hi\\r\\n\\r\\n..body\\r\\n.\\r\\nQUIT\\r\\n"
), wire
assert events[-3:] == ["TransactionResult", "CommandReply", "ConnectionClosed"], events
assert "smtpproto" not in sys.modules, "the vendored copy imported the original package"
print(PARSER_IMPLEMENTATION)
"""


def _vendor(tmp_path: Path) -> Path:
    source = Path(smtpproto.__file__).parent
    shutil.copytree(
        source,
        tmp_path / "vendored_smtp",
        ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.html"),
    )
    return tmp_path


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.pop("SMTPPROTO_NO_EXTENSIONS", None)
    environment.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + SESSION,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
        cwd=tmp_path,
    )


def test_vendored_copy_pure_python(tmp_path: Path) -> None:
    result = _run(_vendor(tmp_path), SMTPPROTO_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"


def test_vendored_copy_with_compiled_twins(tmp_path: Path) -> None:
    """The copied extension modules load under the new name (when they were built)."""
    source = Path(smtpproto.__file__).parent
    built = any(
        (source / "wire" / f"_speedups{suffix}").exists()
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )
    result = _run(_vendor(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("c" if built else "python")
