"""``smtpproto serve`` says which tool made its STARTTLS certificate."""

from __future__ import annotations

import ssl

import pytest

from smtpproto.builtin_server.certificates import CERT_TOOL_ENV

from .helpers import ServeProcess


@pytest.mark.parametrize("tool", ["trustme", "cryptography", "openssl"])
def test_serve_prints_which_tool_made_the_certificate(tool: str) -> None:
    with ServeProcess(env={CERT_TOOL_ENV: tool}) as serve:
        cert = serve.wait_for("STARTTLS certificate:").split(": ", 1)[1]
        assert serve.wait_for("certificate source:") == f"certificate source: {tool}"
        ssl.create_default_context(cafile=cert)  # a PEM a client can trust
        assert serve.stop() == 0
    assert "Traceback" not in serve.stderr
