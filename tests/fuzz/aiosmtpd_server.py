"""Serve aiosmtpd with STARTTLS on 127.0.0.1, for the fuzzer's tests (any aiosmtpd version).

Run with the interpreter of the venv that holds the aiosmtpd under test::

    python tests/fuzz/aiosmtpd_server.py --cert cert.pem --key key.pem [--port 0]

It prints ``VERSION <aiosmtpd version>`` and ``LISTENING <port>`` on stdout and serves
until killed. The handler accepts every recipient and stores nothing (a sink), the
defaults of ``aiosmtpd.smtp.SMTP`` otherwise (no AUTH mechanism is configured, so none
is offered). Standard library and aiosmtpd only, so it runs in the aiosmtpd 1.4.4 venv.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from typing import Any

import aiosmtpd
from aiosmtpd.smtp import SMTP


class SinkHandler:
    """Accept every recipient and every message."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, context: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(SinkHandler(), hostname="aiosmtpd.test", tls_context=context),
        host,
        port,
    )
    print(f"VERSION {aiosmtpd.__version__}", flush=True)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    asyncio.run(serve(args.host, args.port, context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
