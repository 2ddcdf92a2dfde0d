"""The built-in asyncio SMTP server and the testing helpers built on it.

Public as ``smtpproto.server`` (``SMTPServer``) and ``smtpproto.testing``
(``run_server``, the ``smtp_server`` pytest fixture). The protocol is the server
engine's (``smtpproto.server_engine``); this package moves bytes and stores messages.
"""
