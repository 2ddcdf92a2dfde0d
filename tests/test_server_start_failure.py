"""A server that cannot listen removes the certificate directory it made.

Before, ``SMTPServer.start`` made the self-signed certificate in a temporary directory,
then ``create_server`` failed (address in use) and the directory stayed on disk until the
``TemporaryDirectory`` was garbage-collected (a ``ResourceWarning`` in whichever later
test that happened); ``run_server`` never calls ``close`` after a failed start.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import pytest

from smtpproto.server import SMTPServer
from smtpproto.testing import run_server


def test_failed_start_removes_the_certificate_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = SMTPServer(host="127.0.0.1", port=port)
        with pytest.raises(OSError):
            asyncio.run(server.start())
        assert server.tls_context is not None  # the certificate was made first
        assert server.cert_path is None
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(OSError), run_server(host="127.0.0.1", port=port):
            pass
        assert list(tmp_path.iterdir()) == []
