"""The I/O adapters: blocking sockets, asyncio and trio clients, and their TLS helpers.

Thin by rule (docs/design.md §1): connect, wrap TLS, move bytes, apply the deadlines
the engine publishes and map transport errors. Every protocol decision is the session
drivers' (``smtpproto.drivers``). Users import them as ``smtpproto.blocking``,
``smtpproto.asyncio_client`` and ``smtpproto.trio_client``.
"""
