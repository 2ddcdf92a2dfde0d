"""Session drivers: ``login``, ``sendmail``, ``send_message``, ``send_many``, ... written once.

Each driver is a generator over a ``ClientConnection`` that yields requests (``Write``,
``Read``, ``UpgradeTLS``) for an adapter to carry out, so the blocking, asyncio and trio
clients share every protocol decision (docs/design.md §1). ``core.DriverCore`` holds
the connection and the plumbing; ``mail`` (over ``mail_checks``, ``mail_prepare``
and ``mail_steps``), ``batch`` and ``session`` add the operations. Also the adapters'
exception hierarchy (``exceptions``) and the envelope of an ``EmailMessage``
(``envelope``).
"""
