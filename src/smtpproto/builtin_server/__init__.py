"""The built-in asyncio SMTP server and the testing helpers built on it.

Public as ``smtpproto.server`` (``SMTPServer``, and its policy seam ``Backend`` /
``Session``) and ``smtpproto.testing`` (``run_server``, the ``smtp_server`` pytest
fixture). The protocol is the server engine's (``smtpproto.server_engine``). Modules:
``backend`` decides every reply (no I/O, reusable by any front end), ``server`` moves
bytes on asyncio, ``storage`` keeps messages (memory, maildir, mbox), ``transcript``
describes client events for the log, ``testing`` runs the server on a thread.
"""
