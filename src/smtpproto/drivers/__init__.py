"""Session drivers: ``login``, ``sendmail``, ``send_message``, ``send_many``, ... written once.

Each driver is a generator over a ``ClientConnection`` that yields requests (``Write``,
``Read``, ``UpgradeTLS``) for an adapter to carry out, so the blocking, asyncio and trio
clients share every protocol decision (docs/design.md §1). Also the adapters' exception
hierarchy (``exceptions``) and the envelope of an ``EmailMessage`` (``envelope``).
"""
