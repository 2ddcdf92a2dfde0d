"""The one way the shared adapter tests open a client on the Exim peer
(``interop.peers_exim``, Exim at /opt/smtpproto-exim on 127.0.0.1): STARTTLS with the
peer's test CA, the name its certificate carries, the suite's 10-second timeout."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from interop.peers_exim import EximPeer

from .facade import SyncClient

#: Every wait of a client on the Exim peer (RFC 5321 §4.5.3.2 timeouts replaced).
EXIM_TIMEOUT = 10.0


def exim_client(
    make_client: Callable[..., SyncClient],
    exim: EximPeer,
    *,
    ssl_context: ssl.SSLContext | None = None,
    **options: Any,
) -> SyncClient:
    """An unconnected client of the adapter under test (``make_client``) for ``exim``;
    ``ssl_context`` replaces the one trusting the peer's CA (a client certificate
    loaded into it, say); ``options`` are the client's other keyword arguments."""
    return make_client(
        host=exim.host,
        port=exim.port,
        ssl_context=ssl_context if ssl_context is not None else exim.tls.client_context(),
        server_hostname="localhost",
        timeout=EXIM_TIMEOUT,
        **options,
    )
