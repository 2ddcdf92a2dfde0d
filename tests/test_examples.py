"""Every script in examples/ runs as written against the built-in server it starts,
and prints what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Lines each example must print (substrings), in order.
EXPECTED = {
    "sending.py": [
        "blocking: delivered to bob@example.org",
        "asyncio: delivered to bob@example.org",
        "server received 'blocking' for bob@example.org",
        "server received 'asyncio' for bob@example.org",
    ],
    "tls.py": [
        "required: sent over TLSv1.",
        "required, unknown certificate: SMTPTLSError: SSLCertVerificationError",
        "required, no STARTTLS offered: SMTPTLSError: TLS is required",
        "opportunistic, no STARTTLS offered: sent in cleartext: None",
        "messages the cleartext server stored: 1",
    ],
    "auth.py": [
        "strongest offered: 235",
        "PLAIN, chosen by the caller: authenticated",
        "wrong password: 535",
        "messages stored: 1",
    ],
    "per_recipient.py": [
        "delivered: bob@example.org",
        "refused nobody@example.org (retry never): 550 (permanent failure)",
        "refused full@example.org (retry later): 452 (transient failure)",
        "nobody accepted, nothing sent: {'nobody@example.org': Reply(550,",
        "the server stored one copy, for bob@example.org",
    ],
    "vendoring.py": [
        "vendored as myframework._smtp",
        "greeting: [Greeting(reply=Reply(220,",
        "EHLO: EhloAccepted",
        "DATA: ReadyForContent",
        "delivered to: ('bob@example.org',)",
        "the policy kept 1 message",
        "top-level packages of the vendored modules: ['myframework']",
    ],
    "proxy_header.py": [
        "v1: b'PROXY TCP4 192.0.2.7 198.51.100.25 50123 25\\r\\n'",
        "v2: <PROXY v2: PROXY TCP6 2001:db8::7 2001:db8::25 50123 25; 52 octets>",
        "refused before sending: PROXY source 192.0.2.7 and destination 2001:db8::25",
        "the server was told: PROXY TCP4 192.0.2.7 198.51.100.25 50123 25",
        "delivered to: bob@example.org",
        "messages the server stored: 1",
    ],
    "pool_batch.py": [
        "blocking: 8 outcomes, 7 delivered",
        "message 4 refused: 1 of 1 recipient(s) refused: <nobody@example.org>: 550",
        "asyncio: 2 batches at once, 10 delivered",
        "the server stored 18 messages, 18 distinct",
        "MAIL refused past MAILMAX: 0; connections opened: ",
    ],
    "custom_adapter.py": [
        "open: 250 TLS: True",
        "login: 235",
        "sendmail delivered to: ('bob@example.org',)",
        "quit: 221",
        "the server stored 19 octets",
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    position = 0
    for expected in EXPECTED[name]:
        found = [i for i, line in enumerate(lines) if expected in line and i >= position]
        assert found, f"{name}: no line with {expected!r} after line {position}:\n{result.stdout}"
        position = found[0] + 1
